"""One catalogue of meaning: every feature and every contract field, with its unit and formula.

Each served number has exactly one entry here — name, label, unit, definition and the formula or
source it follows — and everything that describes a number reads it: the exporter, the OpenAPI
descriptions and the dashboard's labels (``as_document()`` is the JSON form). A test checks that
every feature ``compute_features`` emits and every contract column has one entry, and that no
entry is orphaned.

Pure Python on purpose: no numpy, no duckdb, so the read side can import it.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

Kind = Literal[
    "number", "integer", "boolean", "string", "date", "timestamp", "record", "records", "series"
]
Group = Literal[
    "snapshot", "volatility", "flow", "open_interest", "positioning", "activity", "history"
]

CONVENTIONS: dict[str, str] = {
    "volatility": "Implied and historical volatilities are annualised fractions (0.25 = 25 %); "
    "a difference of two vols (skew, butterfly, slope, spread) is a fraction too (0.01 = 1 vol "
    "point).",
    "time": "T runs to the 16:00 New York close of the expiration day, in years of 365 days; dte "
    "is whole calendar days from the snapshot's (UTC) date.",
    "forward": "F = S·e^{(r−q)T}, with the configured risk-free rate r and the ticker's "
    "continuous dividend yield q.",
    "greeks": "Black–Scholes–Merton: delta per $1 of the underlying, gamma the change of delta "
    "per $1, theta per calendar day, vega per 1 vol point (0.01 of σ), rho per 1 rate point "
    "(0.01 of r).",
    "gex": "Dealer gamma exposure in dollars of delta per 1 % move of the underlying, naive "
    "dealer convention (dealers long the calls and short the puts the public holds): calls +, "
    "puts −, ±Γ·OI·100·S²·0.01. Positive net GEX: dealer hedging dampens moves.",
    "prices": "Prices are per share in the underlying's currency; one contract is 100 shares.",
    "percent": "Names ending in _pct are percent (1.5 = 1.5 %); ranks and percentiles are 0–100.",
    "precision": "Exported numbers are rounded for what they are used for (the store keeps full "
    "precision): prices to the cent, strikes to 0.001, implied volatilities to 1e-5, greeks and "
    "ratios to 6 significant digits, counts whole; each contract and history field says which.",
    "missing": "A value the data cannot support is null and `missing` gives the reason; "
    "interpolated values are never extrapolated past the quotes.",
}


# Entries are NamedTuples, not frozen dataclasses: the API creates these classes at every cold
# start, where a dataclass costs several times more (it compiles each of its methods).
class Field(NamedTuple):
    """One field of a structured feature (a record, a list of records or a series of arrays)."""

    name: str
    unit: str
    definition: str
    optional: bool = False  # present only in some records (a reason, say)


class Feature(NamedTuple):
    """A feature of one ticker's snapshot, as ``compute_features`` emits it under ``values``."""

    name: str
    label: str
    group: Group
    kind: Kind
    unit: str
    definition: str
    formula: str
    fields: tuple[Field, ...] = ()


class Precision(NamedTuple):
    """How a contract field is rounded for export: to ``decimals`` places or ``significant``
    digits (neither: exported as is)."""

    decimals: int | None = None
    significant: int | None = None

    def apply(self, value: float | None) -> float | None:
        if value is None or not math.isfinite(value):
            return None
        if self.decimals is not None:
            return round(value, self.decimals)
        if self.significant is not None:
            return float(f"{value:.{self.significant}g}")
        return value

    def describe(self) -> str:
        if self.decimals is not None:
            return f"{self.decimals} decimal places"
        if self.significant is not None:
            return f"{self.significant} significant digits"
        return "exact"


class ContractField(NamedTuple):
    """A column of one contract in a chain (the store's and the export's contract rows)."""

    name: str
    label: str
    kind: Kind
    unit: str
    definition: str
    formula: str
    precision: Precision = Precision()


CENT = Precision(decimals=2)
IV_PRECISION = Precision(decimals=5)
GREEK_PRECISION = Precision(significant=6)
WHOLE = Precision(decimals=0)

_NO_DATA = "null (with a reason in missing) when the data cannot support it"

# ---- record fields shared by several features -----------------------------------------------
_EXPIRATION = Field("expiration", "date", "Expiration day, YYYY-MM-DD.")
_DTE = Field("dte", "days", "Calendar days from the snapshot's date to the expiration.")
_STRIKE = Field("strike", "$", "Strike price.")

FEATURES: tuple[Feature, ...] = (
    # ---- snapshot ------------------------------------------------------------------------
    Feature(
        "underlying_price",
        "Spot",
        "snapshot",
        "number",
        "$",
        "Price of the underlying at the snapshot.",
        "Provider's underlying quote (last or mid).",
    ),
    Feature(
        "contracts",
        "Contracts",
        "snapshot",
        "integer",
        "contracts",
        "Contract lines (expiry × strike × right) in the snapshot's chain, expired ones included.",
        "Row count of the chain.",
    ),
    Feature(
        "next_earnings",
        "Next earnings",
        "snapshot",
        "date",
        "date",
        "Next scheduled earnings announcement on or after the snapshot's day, within 120 "
        "days; null for tickers without one (ETFs) or when the calendar could not be read.",
        "Provider's earnings calendar (synthetic: the ticker's quarterly schedule; yfinance: "
        "Yahoo's earnings dates).",
    ),
    # ---- volatility ----------------------------------------------------------------------
    Feature(
        "atm_iv",
        "ATM IV",
        "volatility",
        "number",
        "fraction",
        "30-day constant-maturity at-the-money implied volatility (the configured target_days); "
        "the IV that IV rank, percentile and the daily history use. " + _NO_DATA + ".",
        "Per expiry, IV interpolated linearly in ln(K/F) at K = F from usable quotes within 10 % "
        "of F on both sides (mean of the call and put sides); across expiries, total variance "
        "σ²T linear in T between the bracketing expiries (flat in vol only within "
        "tenor_tolerance of the nearest expiry).",
    ),
    Feature(
        "atm_iv_30d",
        "ATM IV 30d",
        "volatility",
        "number",
        "fraction",
        "ATM implied volatility at a fixed 30-calendar-day tenor.",
        "As atm_iv, at T = 30/365.",
    ),
    Feature(
        "atm_iv_60d",
        "ATM IV 60d",
        "volatility",
        "number",
        "fraction",
        "ATM implied volatility at a fixed 60-calendar-day tenor.",
        "As atm_iv, at T = 60/365.",
    ),
    Feature(
        "atm_iv_90d",
        "ATM IV 90d",
        "volatility",
        "number",
        "fraction",
        "ATM implied volatility at a fixed 90-calendar-day tenor.",
        "As atm_iv, at T = 90/365.",
    ),
    Feature(
        "atm_iv_ratio_30_90",
        "IV 30/90",
        "volatility",
        "number",
        "ratio",
        "30-day over 90-day ATM IV: below 1 the term structure is in contango, above 1 in "
        "backwardation (near-term stress or an event).",
        "atm_iv_30d / atm_iv_90d.",
    ),
    Feature(
        "term_structure",
        "Term structure",
        "volatility",
        "records",
        "fraction",
        "ATM IV of every usable expiry (at least min_dte_days away), nearest first.",
        "Per-expiry ATM IV as in atm_iv.",
        (_EXPIRATION, _DTE, Field("atm_iv", "fraction", "ATM implied volatility of the expiry.")),
    ),
    Feature(
        "atm_iv_front",
        "Front ATM IV",
        "volatility",
        "number",
        "fraction",
        "ATM IV of the nearest usable expiry.",
        "Per-expiry ATM IV as in atm_iv.",
    ),
    Feature(
        "front_expiration",
        "Front expiry",
        "volatility",
        "date",
        "date",
        "Expiration of atm_iv_front.",
        "Nearest expiry at least min_dte_days away with an ATM IV.",
    ),
    Feature(
        "atm_iv_back",
        "Back ATM IV",
        "volatility",
        "number",
        "fraction",
        "ATM IV of the usable expiry nearest 90 days (back_days).",
        "Per-expiry ATM IV as in atm_iv.",
    ),
    Feature(
        "back_expiration",
        "Back expiry",
        "volatility",
        "date",
        "date",
        "Expiration of atm_iv_back.",
        "Usable expiry with T·365 nearest back_days.",
    ),
    Feature(
        "term_slope",
        "Term slope",
        "volatility",
        "number",
        "fraction",
        "Back minus front ATM IV; positive in contango. Null with a single usable expiry.",
        "atm_iv_back − atm_iv_front.",
    ),
    Feature(
        "skew_expiration",
        "Skew expiry",
        "volatility",
        "date",
        "date",
        "Expiration the 25Δ skew and butterfly are measured on.",
        "Usable expiry nearest 30 days (SpotGamma's RR25 convention).",
    ),
    Feature(
        "iv_25d_call",
        "25Δ call IV",
        "volatility",
        "number",
        "fraction",
        "IV of the 25-delta call on skew_expiration; null unless quoted call deltas lie on both "
        "sides of 0.25.",
        "IV linear in call delta at Δ = 0.25 between the bracketing strikes.",
    ),
    Feature(
        "iv_25d_put",
        "25Δ put IV",
        "volatility",
        "number",
        "fraction",
        "IV of the −25-delta put on skew_expiration; null unless quoted put deltas lie on both "
        "sides of −0.25.",
        "IV linear in put delta at Δ = −0.25 between the bracketing strikes.",
    ),
    Feature(
        "skew_25d",
        "RR25",
        "volatility",
        "number",
        "fraction",
        "25-delta risk reversal: negative when puts are bid over calls.",
        "IV(25Δ call) − IV(25Δ put) (SpotGamma).",
    ),
    Feature(
        "butterfly_25d",
        "BF25",
        "volatility",
        "number",
        "fraction",
        "25-delta butterfly: the smile's curvature over the ATM IV.",
        "(IV(25Δ call) + IV(25Δ put))/2 − ATM IV of skew_expiration.",
    ),
    # ---- flow ----------------------------------------------------------------------------
    Feature(
        "call_volume",
        "Call volume",
        "flow",
        "integer",
        "contracts",
        "Contracts traded in calls so far in the session, all expiries.",
        "Σ volume over calls.",
    ),
    Feature(
        "put_volume",
        "Put volume",
        "flow",
        "integer",
        "contracts",
        "Contracts traded in puts so far in the session, all expiries.",
        "Σ volume over puts.",
    ),
    Feature(
        "put_call_volume_ratio",
        "P/C volume",
        "flow",
        "number",
        "ratio",
        "Put volume over call volume; null without call volume.",
        "put_volume / call_volume (Cboe's put/call ratio).",
    ),
    Feature(
        "call_open_interest",
        "Call OI",
        "flow",
        "integer",
        "contracts",
        "Open calls, all expiries, as of the provider's OI date (usually the previous session); "
        "null when no contract has OI.",
        "Σ open_interest over calls with known OI.",
    ),
    Feature(
        "put_open_interest",
        "Put OI",
        "flow",
        "integer",
        "contracts",
        "Open puts, all expiries; null when no contract has OI.",
        "Σ open_interest over puts with known OI.",
    ),
    Feature(
        "put_call_oi_ratio",
        "P/C OI",
        "flow",
        "number",
        "ratio",
        "Put over call open interest; null when OI is missing or zero everywhere, or on calls.",
        "put_open_interest / call_open_interest.",
    ),
    Feature(
        "spread_pct",
        "Spread",
        "flow",
        "number",
        "percent",
        "Median bid-ask spread of two-sided quotes (bid > 0, ask > bid), relative to the mid.",
        "100 · median((ask − bid) / mid).",
    ),
    # ---- open interest change ------------------------------------------------------------
    Feature(
        "oi_previous_as_of",
        "Previous OI as of",
        "open_interest",
        "timestamp",
        "timestamp",
        "Time of the previous session's last snapshot the OI change is measured against.",
        "Latest snapshot on an earlier UTC day than this one.",
    ),
    Feature(
        "oi_change_total",
        "ΔOI",
        "open_interest",
        "integer",
        "contracts",
        "Day-over-day change of open interest over the contracts listed in both sessions; new "
        "listings and expired contracts are not counted.",
        "Σ (OI today − OI at the previous session's last snapshot) over matched contracts.",
    ),
    Feature(
        "oi_change_call",
        "ΔOI calls",
        "open_interest",
        "integer",
        "contracts",
        "oi_change_total over calls.",
        "Σ ΔOI over matched calls.",
    ),
    Feature(
        "oi_change_put",
        "ΔOI puts",
        "open_interest",
        "integer",
        "contracts",
        "oi_change_total over puts.",
        "Σ ΔOI over matched puts.",
    ),
    Feature(
        "oi_change_by_strike",
        "ΔOI by strike",
        "open_interest",
        "records",
        "contracts",
        "Day-over-day OI change per strike, all expiries summed, strikes within "
        "gex_strike_window (25 %) of spot.",
        "Σ ΔOI per strike over matched contracts.",
        (
            _STRIKE,
            Field("call_change", "contracts", "ΔOI of the calls at the strike."),
            Field("put_change", "contracts", "ΔOI of the puts at the strike."),
            Field("net_change", "contracts", "call_change + put_change."),
        ),
    ),
    # ---- positioning ---------------------------------------------------------------------
    Feature(
        "max_pain_by_expiry",
        "Max pain by expiry",
        "positioning",
        "records",
        "$",
        "Max-pain strike of every expiry with open interest > 0.",
        "argmin over strikes P of Σ_K [OI_c·max(P−K,0) + OI_p·max(K−P,0)]·100; ties to the "
        "lowest strike (maximum-pain.com).",
        (_EXPIRATION, Field("strike", "$", "Max-pain strike.")),
    ),
    Feature(
        "max_pain",
        "Max pain",
        "positioning",
        "number",
        "$",
        "Max-pain strike of the nearest usable expiry with open interest > 0.",
        "As max_pain_by_expiry.",
    ),
    Feature(
        "max_pain_expiration",
        "Max pain expiry",
        "positioning",
        "date",
        "date",
        "Expiration max_pain refers to.",
        "Nearest usable expiry with open interest > 0.",
    ),
    Feature(
        "gex_total",
        "Net GEX",
        "positioning",
        "number",
        "$ per 1 % move",
        "Net dealer gamma exposure of the whole chain (see the gex convention); null without a "
        "contract that has both gamma and OI > 0.",
        "Σ ±Γ·OI·100·S²·0.01, calls +, puts − (OpenBB, tradingvolatility).",
    ),
    Feature(
        "gex_by_strike",
        "GEX by strike",
        "positioning",
        "records",
        "$ per 1 % move",
        "Dealer gamma exposure per strike, all expiries summed, strikes within "
        "gex_strike_window (25 %) of spot; rounded to the cent.",
        "Σ ±Γ·OI·100·S²·0.01 per strike.",
        (
            _STRIKE,
            Field("call_gex", "$ per 1 % move", "GEX of the calls at the strike (≥ 0)."),
            Field("put_gex", "$ per 1 % move", "GEX of the puts at the strike (≤ 0)."),
            Field("net_gex", "$ per 1 % move", "call_gex + put_gex."),
        ),
    ),
    Feature(
        "call_wall",
        "Call wall",
        "positioning",
        "number",
        "$",
        "Strike with the largest call gamma exposure (all strikes, all expiries).",
        "argmax over strikes of call GEX.",
    ),
    Feature(
        "put_wall",
        "Put wall",
        "positioning",
        "number",
        "$",
        "Strike with the most negative put gamma exposure (all strikes, all expiries).",
        "argmin over strikes of put GEX.",
    ),
    Feature(
        "zero_gamma",
        "Zero gamma",
        "positioning",
        "number",
        "$",
        "Gamma-flip level: the spot at which the chain's net dealer GEX changes sign, nearest "
        "today's spot; null when the net keeps one sign over spot ±zero_gamma_range (10 %).",
        "Γ repriced at zero_gamma_points spots over S·(1 ± 10 %) with each contract's IV held "
        "fixed; net GEX(S') = Σ ±Γ(S')·OI·100·S'²·0.01; crossing linear between grid spots.",
    ),
    Feature(
        "gex_0dte_share",
        "0DTE GEX share",
        "positioning",
        "number",
        "fraction",
        "Share of the chain's gross gamma exposure carried by expiries with dte 0 (0 when none "
        "is listed or live).",
        "Σ|GEX| over dte = 0 / Σ|GEX| over all contracts.",
    ),
    Feature(
        "by_expiry",
        "By expiry",
        "positioning",
        "records",
        "mixed (see fields)",
        "One record per live expiry, nearest first: the per-expiry numbers the dashboard shows "
        "for a chosen expiration. A record's null fields have their reasons in its `missing`.",
        "Each field as defined for the whole chain, restricted to the expiry.",
        (
            _EXPIRATION,
            _DTE,
            Field("years", "years", "T to the 16:00 New York close of the expiration."),
            Field("contracts", "contracts", "Contract lines listed for the expiry."),
            Field(
                "atm_iv",
                "fraction",
                "ATM IV of the expiry (null when closer than "
                "min_dte_days or without usable quotes around the forward).",
            ),
            Field(
                "atm_strike",
                "$",
                "Strike of the ATM straddle: of the strikes within 10 % of the forward "
                "where call and put both have two-sided quotes (needed on both sides of F), "
                "the one nearest spot.",
            ),
            Field("straddle", "$", "Mid of the ATM call plus mid of the ATM put."),
            Field("straddle_pct", "percent", "100 · straddle / spot."),
            Field("sigma_move", "$", "±1σ expected move to expiry: S·atm_iv·√T."),
            Field("sigma_move_pct", "percent", "100 · sigma_move / spot."),
            Field("max_pain", "$", "Max-pain strike of the expiry."),
            Field("call_volume", "contracts", "Call volume of the expiry."),
            Field("put_volume", "contracts", "Put volume of the expiry."),
            Field("put_call_volume_ratio", "ratio", "put_volume / call_volume of the expiry."),
            Field("call_open_interest", "contracts", "Call OI of the expiry."),
            Field("put_open_interest", "contracts", "Put OI of the expiry."),
            Field("put_call_oi_ratio", "ratio", "Put OI / call OI of the expiry."),
            Field("call_gex", "$ per 1 % move", "Call GEX of the expiry."),
            Field("put_gex", "$ per 1 % move", "Put GEX of the expiry."),
            Field("net_gex", "$ per 1 % move", "call_gex + put_gex."),
            Field("oi_change", "contracts", "Day-over-day OI change of the expiry."),
            Field(
                "gex_by_strike",
                "$ per 1 % move",
                "The expiry's call_gex, put_gex and net_gex per strike within the GEX strike "
                "window of spot (as the chain's gex_by_strike).",
            ),
            Field("missing", "reasons", "Field name → why it is null.", optional=True),
        ),
    ),
    Feature(
        "expected_move",
        "Exp. move",
        "positioning",
        "record",
        "$",
        "Expected move to the front usable expiry, from its ATM straddle and its ATM IV.",
        "Straddle mid ≈ √(2/π)·S·σ√T; 1σ move = S·σ_ATM·√T ≈ 1.25 × straddle.",
        (
            _EXPIRATION,
            _DTE,
            Field("strike", "$", "Strike of the ATM straddle (as by_expiry.atm_strike)."),
            Field("straddle", "$", "Mid of the ATM call plus mid of the ATM put."),
            Field("straddle_pct", "percent", "100 · straddle / spot."),
            Field("sigma_move", "$", "S·atm_iv·√T; null without the expiry's ATM IV."),
            Field("sigma_move_pct", "percent", "100 · sigma_move / spot."),
            Field("atm_iv", "fraction", "ATM IV of the expiry."),
        ),
    ),
    # ---- activity ------------------------------------------------------------------------
    Feature(
        "unusual_count",
        "Unusual",
        "activity",
        "integer",
        "contracts",
        "Contracts with OI > 0, volume ≥ unusual_min_volume and volume/OI ≥ unusual_vol_oi; null "
        "when no contract has OI > 0.",
        "Count of the unusual mask.",
    ),
    Feature(
        "unusual_contracts",
        "Unusual contracts",
        "activity",
        "records",
        "mixed (see fields)",
        "The most traded unusual contracts (at most unusual_max_listed), busiest first.",
        "Volume/OI, plus a z-score of ln(1 + volume) against the contract's own past daily "
        "volumes (stdev floored at unusual_log_std_floor).",
        (
            _EXPIRATION,
            _STRIKE,
            Field("right", "C/P", "C for a call, P for a put."),
            _DTE,
            Field("volume", "contracts", "Contracts traded so far in the session."),
            Field("open_interest", "contracts", "Open interest (> 0)."),
            Field("vol_oi", "ratio", "volume / open_interest."),
            Field("mid", "$", "Mid of the quote, (bid + ask)/2."),
            Field("premium", "$", "mid · volume · 100: premium traded."),
            Field("iv", "fraction", "Implied volatility of the contract."),
            Field("delta", "per $1", "Delta of the contract."),
            Field("zscore", "z", "(ln(1+v) − mean)/stdev over the contract's past days."),
            Field("history_days", "days", "Past days of the contract's volume behind zscore."),
            Field("zscore_missing", "reason", "Why zscore is null.", optional=True),
        ),
    ),
    # ---- history -------------------------------------------------------------------------
    Feature(
        "iv_history_days",
        "IV history",
        "history",
        "integer",
        "sessions",
        "Past sessions with a daily ATM IV inside the IV-rank window (iv_window_days, 252).",
        "Count of finite daily atm_iv in the window.",
    ),
    Feature(
        "iv_rank",
        "IV rank",
        "history",
        "number",
        "0–100",
        "Where today's atm_iv sits in its range over the past 252 sessions and today; null with "
        "fewer than iv_min_history past days.",
        "100·(IV − min)/(max − min) (tastytrade).",
    ),
    Feature(
        "iv_percentile",
        "IV percentile",
        "history",
        "number",
        "0–100",
        "Share of the past 252 sessions whose atm_iv was below today's.",
        "100·#{past IV < IV}/#past (tastytrade).",
    ),
    Feature(
        "previous_close",
        "Prev. close",
        "history",
        "number",
        "$",
        "Close of the last session before the snapshot's day.",
        "Last positive daily close in the history.",
    ),
    Feature(
        "change_pct",
        "Change",
        "history",
        "number",
        "percent",
        "Change of the underlying since the previous session's close.",
        "100 · (spot / previous_close − 1).",
    ),
    Feature(
        "hv_10",
        "HV 10",
        "history",
        "number",
        "fraction",
        "10-session close-to-close historical volatility, today's spot as the last close.",
        "√252 · stdev(ln(Cₜ/Cₜ₋₁), ddof=1) over the last 10 returns.",
    ),
    Feature(
        "hv_20",
        "HV 20",
        "history",
        "number",
        "fraction",
        "20-session close-to-close historical volatility.",
        "As hv_10 over 20 returns.",
    ),
    Feature(
        "hv_60",
        "HV 60",
        "history",
        "number",
        "fraction",
        "60-session close-to-close historical volatility.",
        "As hv_10 over 60 returns.",
    ),
    Feature(
        "iv_hv_ratio",
        "IV/HV",
        "history",
        "number",
        "ratio",
        "Implied over realised volatility: above 1 options price more movement than the stock "
        "has shown.",
        "atm_iv / hv_20.",
    ),
    Feature(
        "iv_hv_spread",
        "IV − HV20",
        "history",
        "number",
        "fraction",
        "Implied minus realised volatility (the volatility risk premium).",
        "atm_iv − hv_20.",
    ),
    Feature(
        "iv_hv_spread_history",
        "IV − HV20 history",
        "history",
        "series",
        "fraction",
        "The last iv_hv_history_days (60) sessions, today last, as parallel arrays; null "
        "entries where a day lacks its IV or 21 closes.",
        "Per session: atm_iv of the day − hv_20 as of the day's close.",
        (
            Field("day", "date", "Session date, YYYY-MM-DD."),
            Field("atm_iv", "fraction", "30-day ATM IV of the session."),
            Field("hv_20", "fraction", "hv_20 as of the session's close."),
            Field("iv_hv_spread", "fraction", "atm_iv − hv_20."),
        ),
    ),
    Feature(
        "skew_25d_zscore",
        "RR25 z",
        "history",
        "number",
        "z",
        "How far today's skew_25d is from its past skew_history_days (60) sessions.",
        "(skew_25d − mean)/stdev(ddof=1) of the past daily skew_25d.",
    ),
    Feature(
        "skew_25d_mean",
        "RR25 mean",
        "history",
        "number",
        "fraction",
        "Mean of the past skew_history_days daily skew_25d.",
        "Arithmetic mean.",
    ),
    Feature(
        "sma_50",
        "SMA 50",
        "history",
        "number",
        "$",
        "50-session simple moving average of daily closes, today's spot included.",
        "Mean of the last 50 closes.",
    ),
    Feature(
        "sma_200",
        "SMA 200",
        "history",
        "number",
        "$",
        "200-session simple moving average of daily closes, today's spot included.",
        "Mean of the last 200 closes.",
    ),
    Feature(
        "sma_recent",
        "SMA recent",
        "history",
        "series",
        "$",
        "The last four sessions' closes and SMAs, oldest first (for trend crosses).",
        "As sma_50 and sma_200 at each of the four days.",
        (
            Field("close", "$", "Close (today: spot)."),
            Field("sma_50", "$", "SMA 50 at that close."),
            Field("sma_200", "$", "SMA 200 at that close."),
        ),
    ),
)

CONTRACT_FIELDS: tuple[ContractField, ...] = (
    ContractField(
        "ticker", "Ticker", "string", "symbol", "Underlying symbol.", "Provider's symbol."
    ),
    ContractField(
        "as_of",
        "As of",
        "timestamp",
        "timestamp",
        "Time of the snapshot the quote belongs to (UTC).",
        "Collector's snapshot time.",
    ),
    ContractField(
        "expiration",
        "Expiry",
        "date",
        "date",
        "Expiration day; the contract expires at the 16:00 New York close.",
        "Provider's expiration.",
    ),
    ContractField(
        "strike", "Strike", "number", "$", "Strike price.", "Provider's strike.", Precision(3)
    ),
    ContractField("right", "Right", "string", "C/P", "C call, P put.", "Provider's type."),
    ContractField(
        "bid", "Bid", "number", "$", "Best bid per share (0: no bid).", "Provider's quote.", CENT
    ),
    ContractField("ask", "Ask", "number", "$", "Best ask per share.", "Provider's quote.", CENT),
    ContractField(
        "last", "Last", "number", "$", "Last trade price per share.", "Provider's quote.", CENT
    ),
    ContractField(
        "volume",
        "Volume",
        "integer",
        "contracts",
        "Contracts traded so far in the session.",
        "Provider's volume.",
        WHOLE,
    ),
    ContractField(
        "open_interest",
        "Open interest",
        "integer",
        "contracts",
        "Open contracts as of the provider's OI date (usually the previous session's close); "
        "null when the source does not give it.",
        "Provider's OI (OCC publishes it once a day).",
        WHOLE,
    ),
    ContractField(
        "implied_volatility",
        "IV",
        "number",
        "fraction",
        "Annualised Black–Scholes–Merton implied volatility; the source's, or solved from the "
        "mid of a two-sided quote (bid > 0, ask > bid); null when neither exists.",
        "Safeguarded Newton on the BSM price at T to the 16:00 New York close, r, q.",
        IV_PRECISION,
    ),
    ContractField(
        "delta",
        "Delta",
        "number",
        "per $1",
        "Change of the option price per $1 of the underlying.",
        "BSM: w·e^{−qT}·N(w·d1), w = +1 call, −1 put.",
        GREEK_PRECISION,
    ),
    ContractField(
        "gamma",
        "Gamma",
        "number",
        "per $1 per $1",
        "Change of delta per $1 of the underlying.",
        "BSM: e^{−qT}·φ(d1)/(S·σ√T).",
        GREEK_PRECISION,
    ),
    ContractField(
        "theta",
        "Theta",
        "number",
        "$ per calendar day",
        "Change of the option price per calendar day that passes.",
        "BSM annual theta / 365.",
        GREEK_PRECISION,
    ),
    ContractField(
        "vega",
        "Vega",
        "number",
        "$ per vol point",
        "Change of the option price per 1 vol point (0.01 of σ).",
        "BSM: S·e^{−qT}·φ(d1)·√T / 100.",
        GREEK_PRECISION,
    ),
    ContractField(
        "rho",
        "Rho",
        "number",
        "$ per rate point",
        "Change of the option price per 1 rate point (0.01 of r).",
        "BSM: w·K·T·e^{−rT}·N(w·d2) / 100.",
        GREEK_PRECISION,
    ),
)

RATIO_PRECISION = Precision(significant=6)

# One row per session of a ticker's daily history (``/options/{ticker}/history``): the daily
# aggregates the store keeps forever (``daily_history``), as exported.
HISTORY_FIELDS: tuple[ContractField, ...] = (
    ContractField(
        "as_of",
        "As of",
        "timestamp",
        "timestamp",
        "Time of the snapshot the row was computed from (UTC); the session's close for "
        "backfilled rows.",
        "Collector's snapshot time, else close_at.",
    ),
    ContractField(
        "close_at",
        "Close",
        "timestamp",
        "timestamp",
        "The session's real close (UTC): 16:00 New York, 13:00 on early closes.",
        "NYSE calendar.",
    ),
    ContractField(
        "provisional",
        "Provisional",
        "boolean",
        "true/false",
        "True until the session's closing snapshot has been collected.",
        "as_of < close_at.",
    ),
    ContractField(
        "underlying_price",
        "Close",
        "number",
        "$",
        "The underlying's close (while provisional: its price at as_of).",
        "Provider's quote.",
        CENT,
    ),
    ContractField(
        "atm_iv",
        "ATM IV",
        "number",
        "fraction",
        "30-day ATM implied volatility of the session (as the atm_iv feature).",
        "See the atm_iv feature.",
        IV_PRECISION,
    ),
    ContractField(
        "total_volume",
        "Volume",
        "integer",
        "contracts",
        "Calls plus puts traded in the session; null for backfilled sessions.",
        "call_volume + put_volume.",
        WHOLE,
    ),
    ContractField(
        "total_open_interest",
        "Open interest",
        "integer",
        "contracts",
        "Calls plus puts open interest; null for backfilled sessions.",
        "call_open_interest + put_open_interest.",
        WHOLE,
    ),
    ContractField(
        "put_call_volume_ratio",
        "P/C volume",
        "number",
        "ratio",
        "Put volume over call volume; null without call volume.",
        "put_volume / call_volume.",
        RATIO_PRECISION,
    ),
    ContractField(
        "put_call_oi_ratio",
        "P/C OI",
        "number",
        "ratio",
        "Put open interest over call open interest; null without call open interest.",
        "put_open_interest / call_open_interest.",
        RATIO_PRECISION,
    ),
)

# The features of one value each (no record, records or series): the columns of
# ``features.json``, and what the store keeps apart in ``features.scalars`` to build it.
SCALAR_FEATURES: tuple[str, ...] = tuple(
    f.name for f in FEATURES if f.kind not in ("record", "records", "series")
)
FEATURE_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
CONTRACT_FIELD_BY_NAME: dict[str, ContractField] = {f.name: f for f in CONTRACT_FIELDS}
HISTORY_FIELD_BY_NAME: dict[str, ContractField] = {f.name: f for f in HISTORY_FIELDS}


def feature(name: str) -> Feature:
    """The entry of a feature; KeyError names an unknown one."""
    return FEATURE_BY_NAME[name]


def as_document() -> dict[str, Any]:
    """The catalogue as JSON-ready data (for the dashboard and the API's descriptions)."""

    def fields(entry: Feature) -> list[dict[str, Any]]:
        return [
            {"name": f.name, "unit": f.unit, "definition": f.definition, "optional": f.optional}
            for f in entry.fields
        ]

    return {
        "conventions": dict(CONVENTIONS),
        "features": {
            f.name: {
                "label": f.label,
                "group": f.group,
                "kind": f.kind,
                "unit": f.unit,
                "definition": f.definition,
                "formula": f.formula,
                **({"fields": fields(f)} if f.fields else {}),
            }
            for f in FEATURES
        },
        "contract_fields": {
            c.name: {
                "label": c.label,
                "kind": c.kind,
                "unit": c.unit,
                "definition": c.definition,
                "formula": c.formula,
                "precision": c.precision.describe(),
            }
            for c in CONTRACT_FIELDS
        },
        "history_fields": {
            h.name: {
                "label": h.label,
                "kind": h.kind,
                "unit": h.unit,
                "definition": h.definition,
                "precision": h.precision.describe(),
            }
            for h in HISTORY_FIELDS
        },
    }
