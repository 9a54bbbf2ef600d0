"""The COMPUTING → SCANNING phases: features, detectors and throttled alerts for the latest chains.

``analyse`` is I/O glue around the pure cores in :mod:`chalicelib.analytics`. It reads in bulk —
one query for every ticker's latest chain, split by ticker with numpy, one for the daily
histories, one for the past volumes of today's unusual contracts, one for the open interest at
the previous session's last snapshot (for the day-over-day OI change), one for every (ticker,
detector) pair's edge state (``detector_state``) — while a thread asks the provider for each
ticker's next earnings date. Then, per batch of tickers (``FeatureBatch``: the chains' array
passes run once for the batch), it computes each ticker's features, runs the detectors on them
and keeps only the JSON and the edges, so no ticker's ``FeatureSet`` outlives its turn; with
hundreds of tickers and a second CPU, a forked child computes the later half (the stage is pure:
see ``_evaluate_shared``). It writes in bulk: ``features`` rows, ``chain_snapshots.atm_iv``,
today's ``daily_history`` row (source ``snapshot``), then the accepted ``alerts`` and the pairs'
next edge states in one transaction, so a crash never leaves an alert without the state that says
it was sent. Detectors alert on edges (a condition entered, intensified or of a new kind,
:mod:`chalicelib.analytics.detectors.edges`); the score floor, cooldown and daily cap stay as a
backstop. A ticker that fails is recorded in ``errors`` and the others carry on. Re-running on
the same snapshots rewrites the same rows and adds no alert (the state is already disarmed and
alert ids are deterministic), so the phase is idempotent.

The scheduler calls it after the flush, in one line::

    analyse(self.store, self.settings, self.provider, scan["scan_id"], now)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from chalicelib import exportformat as fmt
from chalicelib.analytics.config import DEFAULT_CONFIG, AnalyticsConfig
from chalicelib.analytics.detectors import DETECTORS, Detector, DetectorContext, run_detectors
from chalicelib.analytics.detectors.edges import ArmState, Change, Step, explain, step
from chalicelib.analytics.features import (
    CHAIN_INPUTS,
    ContractHistory,
    DailyInputs,
    FeatureBatch,
    PreviousOpenInterest,
    TickerInputs,
    unusual_mask,
)
from chalicelib.analytics.scoring import (
    Candidate,
    ThrottlePolicy,
    ThrottleState,
    select_alerts,
)
from chalicelib.catalogue import SCALAR_FEATURES
from chalicelib.config import Settings
from chalicelib.domain import calendar as cal
from chalicelib.domain.chain import CHAIN_COLUMNS, chain_columns_from_masked
from chalicelib.domain.models import Alert, FeatureSet
from chalicelib.logs import log_event
from chalicelib.write import forked
from chalicelib.write.delivery import outbox
from chalicelib.write.delivery.sinks import sink_names
from chalicelib.write.providers.base import MarketDataProvider
from chalicelib.write.store import Store

_EARNINGS_LOOKAHEAD = timedelta(days=120)
_HISTORY_CALENDAR_DAYS = 400  # covers 252 trading days of IV and 203 closes for SMA 200

LATEST_SNAPSHOTS = """
    SELECT ticker, as_of, underlying_price, coalesce(dividend_yield, 0.0)
    FROM chain_snapshots
    WHERE ticker IN (SELECT unnest(?::VARCHAR[])) AND as_of <= ?
    QUALIFY row_number() OVER (PARTITION BY ticker ORDER BY as_of DESC) = 1
    ORDER BY ticker
"""

# The as_of lower bound lets DuckDB skip row groups of older snapshots (zone maps).
# The two big reads return the snapshot's index ``s.i`` instead of the ticker, and the right as a
# boolean: a VARCHAR column comes back as one new Python string per row (see ``_named``).
# Only the columns the features read (``CHAIN_INPUTS``): the others are a third of the bytes.
LATEST_CHAINS = """
    SELECT s.i, q.expiration, q.strike, q."right" = 'C' AS is_call, q.bid, q.ask, q.volume,
           q.open_interest::DOUBLE AS open_interest, q.implied_volatility, q.delta, q.gamma
    FROM option_quotes q
    JOIN analysis_snaps s ON q.ticker = s.ticker AND q.as_of = s.as_of
    WHERE q.as_of >= ?
    ORDER BY s.i
"""

DAILY_HISTORY = """
    SELECT s.i, h.day, h.close, h.atm_iv, h.skew_25d
    FROM daily_history h JOIN analysis_snaps s ON h.ticker = s.ticker
    WHERE h.day < s.day::DATE AND h.day >= ?::DATE
    ORDER BY s.i, h.day
"""

# Volumes of today's unusual contracts at the last snapshot of each of the previous N days
# (volume accrues through the session, so the day's last snapshot holds the day's volume).
CONTRACT_HISTORY = """
    WITH days AS (
        SELECT c.ticker, max(c.as_of) AS as_of
        FROM chain_snapshots c JOIN analysis_snaps s ON c.ticker = s.ticker
        WHERE c.as_of < s.day AND c.as_of >= ?
          AND c.ticker IN (SELECT ticker FROM analysis_unusual)
        GROUP BY c.ticker, c.as_of::DATE
        QUALIFY row_number() OVER (PARTITION BY c.ticker ORDER BY max(c.as_of) DESC) <= ?
    )
    SELECT q.ticker, q.expiration, q.strike, q."right", q.volume::DOUBLE AS volume
    FROM option_quotes q
    JOIN days d ON q.ticker = d.ticker AND q.as_of = d.as_of
    SEMI JOIN analysis_unusual u ON q.ticker = u.ticker AND q.expiration = u.expiration::DATE
        AND q.strike = u.strike AND q."right" = u."right"
    WHERE q.as_of >= ?
    ORDER BY q.ticker
"""

# Open interest at each ticker's last snapshot of the previous trading day (the lower bound is
# that day for the earliest snapshot analysed): the base of the day-over-day OI change.
PREVIOUS_OI = """
    WITH prev AS (
        SELECT c.ticker, max(c.as_of) AS as_of
        FROM chain_snapshots c JOIN analysis_snaps s ON c.ticker = s.ticker
        WHERE c.as_of < s.day AND c.as_of >= ?
        GROUP BY c.ticker
    )
    SELECT q.ticker, q.as_of, q.expiration, q.strike, q."right",
           q.open_interest::DOUBLE AS open_interest
    FROM option_quotes q JOIN prev p ON q.ticker = p.ticker AND q.as_of = p.as_of
    WHERE q.as_of >= ?
    ORDER BY q.ticker
"""

WRITE_FEATURES = """
    INSERT OR REPLACE INTO features (ticker, as_of, features, missing, scalars)
    SELECT ticker, as_of, features::JSON, missing::JSON, scalars::JSON FROM analysis_features
"""
WRITE_ATM_IV = """
    UPDATE chain_snapshots SET atm_iv = nullif_nan(f.atm_iv)
    FROM analysis_sessions f
    WHERE chain_snapshots.ticker = f.ticker AND chain_snapshots.as_of = f.as_of
"""
# The session's row from its latest analysed snapshot: provisional until that snapshot is the
# close's, and carrying the day's volume and open interest (they outlive the chains).
WRITE_HISTORY = """
    INSERT OR REPLACE INTO daily_history (ticker, day, close, atm_iv, skew_25d, source, close_at,
        as_of, provisional, call_volume, put_volume, call_open_interest, put_open_interest)
    SELECT f.ticker, f.day::DATE, nullif_nan(f.close), nullif_nan(f.atm_iv),
           nullif_nan(f.skew_25d), 'snapshot', f.close_at, f.as_of, f.as_of < f.close_at,
           c.call_volume, c.put_volume, c.call_open_interest, c.put_open_interest
    FROM analysis_sessions f
    JOIN chain_snapshots c ON c.ticker = f.ticker AND c.as_of = f.as_of
"""
WRITE_ALERTS = """
    INSERT OR IGNORE INTO alerts
    SELECT id, scan_id, ticker, detector_name, score, metrics::JSON, explanation::JSON,
           strategies::JSON, created_at
    FROM analysis_alerts
"""
LAST_ALERTS = """
    SELECT ticker, detector_name, max(created_at) FROM alerts
    WHERE ticker IN (SELECT unnest(?::VARCHAR[])) AND created_at >= ?
    GROUP BY ticker, detector_name
"""
ALERTS_PER_DAY = """
    SELECT created_at::DATE, count(*) FROM alerts
    WHERE created_at::DATE IN (SELECT unnest(?::DATE[])) GROUP BY 1
"""
EXISTING_IDS = "SELECT id FROM alerts WHERE id IN (SELECT unnest(?::VARCHAR[]))"
STATE_COLUMNS = (
    "ticker",
    "detector_name",
    "armed",
    "kind",
    "fired_at",
    "fired_value",
    "quiet_value",
    "seen_at",
    "held",
    "cleared_sessions",
)
READ_STATES = f"""
    SELECT {", ".join(STATE_COLUMNS)} FROM detector_state
    WHERE ticker IN (SELECT unnest(?::VARCHAR[]))
"""
WRITE_STATES = """
    INSERT OR REPLACE INTO detector_state
    SELECT ticker, detector_name, armed, kind, fired_at, nullif_nan(fired_value),
           nullif_nan(quiet_value), seen_at, held, cleared_sessions::INTEGER
    FROM analysis_states
"""


@dataclass(frozen=True)
class AnalysisResult:
    """What one analysis did. ``timings_ms``: ``load_ms`` the reads, ``calendar_ms`` the
    provider's earnings calendar (on its thread, during the reads), ``features_ms`` the
    per-ticker stage (features, detectors and JSON, in every process), ``detect_ms`` the
    detectors' and edge steps' share of it summed over the processes, ``write_ms`` the writes."""

    features_computed: int
    alerts_generated: int
    errors: list[str]
    duration_ms: float
    alerts_suppressed: dict[str, int] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Snapshot:
    ticker: str
    as_of: datetime  # aware UTC
    spot: float
    div_yield: float

    @property
    def day(self) -> date:
        """The New York session the snapshot belongs to."""
        return cal.session_of(self.as_of)


def analyse(
    store: Store,
    settings: Settings,
    provider: MarketDataProvider,
    scan_id: str,
    now: datetime,
    *,
    config: AnalyticsConfig = DEFAULT_CONFIG,
    detectors: Sequence[Detector] = DETECTORS,
    workers: int | None = None,
) -> AnalysisResult:
    """Features and alerts for each watchlist ticker's latest snapshot at or before ``now``.

    ``workers`` bounds the processes that compute features (None: the usable CPUs, at most
    two); with fewer than ``PARALLEL_MIN_TICKERS`` tickers everything runs in this process.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    errors: list[str] = []
    snaps = _latest_snapshots(store, settings.watchlist, now)
    if not snaps:
        return AnalysisResult(0, 0, [], _ms(started))

    names = np.array([s.ticker for s in snaps], dtype=object)
    snap_cols = {
        "i": np.arange(len(snaps), dtype=np.int64),
        "ticker": names,
        "as_of": np.array([_naive(s.as_of) for s in snaps], dtype="datetime64[us]"),
        "day": np.array([s.day for s in snaps], dtype="datetime64[D]").astype("datetime64[us]"),
    }
    first_as_of = min(_naive(s.as_of) for s in snaps)
    first_day = min(s.day for s in snaps)
    # the provider's calendar (its own I/O) runs on a thread while DuckDB reads, which releases
    # the GIL; only this thread calls the provider, only the main one the store
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="earnings") as calendar:
        upcoming = calendar.submit(_earnings_calendar, provider, snaps)
        with store.registered("analysis_snaps", snap_cols):
            mark = time.perf_counter()
            raw = _named(store.columns(LATEST_CHAINS, [first_as_of]), names)
            columns = chain_columns_from_masked(raw, _CHAIN_READ)
            chains = _split(columns)
            del raw
            since = first_day - timedelta(days=_HISTORY_CALENDAR_DAYS)
            history = _split(_history_columns(_named(store.columns(DAILY_HISTORY, [since]), names)))
            contract_history = _split(_contract_history(store, columns, config, first_day))
            previous_oi = _split(_previous_oi(store, first_day))
        states = _read_states(store, [s.ticker for s in snaps])
        timings["load_ms"] = _ms(mark)
        earnings, calendar_ms = upcoming.result()
    errors.extend(e for e in earnings.values() if isinstance(e, str))
    timings["calendar_ms"] = calendar_ms

    inputs = _Inputs(
        chains, history, contract_history, previous_oi, earnings, states, settings, config,
        tuple(detectors),
    )  # fmt: skip
    mark = time.perf_counter()
    done = _evaluate_shared(snaps, inputs, 2 if workers is None else workers)
    errors.extend(done.errors)
    errors.extend(done.detector_errors)
    timings["features_ms"] = _ms(mark)
    timings["detect_ms"] = round(done.detect_s * 1000, 3)
    rows, candidates, active = done.rows, [c for c, _ in done.edges], done.active
    steps = dict(done.steps)
    changes = {id(c): change for c, change in done.edges}  # id(candidate) → what its edge changed

    mark = time.perf_counter()
    _write_features(store, rows, errors)
    policy = ThrottlePolicy(
        min_score=settings.min_alert_score,
        cooldown=timedelta(hours=settings.alert_cooldown_hours),
        daily_cap=settings.alert_daily_cap,
    )
    selection = select_alerts(candidates, _throttle_state(store, candidates, policy), policy)
    # the score, ids and throttle do not depend on the explanation: only accepted edges get one
    accepted = [
        Candidate(c.ticker, c.as_of, explain(c.finding, changes[id(c)])) for c in selection.accepted
    ]
    alerts = _alerts(accepted, scan_id, errors)
    sent = {(a.ticker, a.detector_name) for a in alerts}  # an alert that failed stays armed
    next_states = {key: s.next_state(key in sent) for key, s in steps.items()}
    written = _write_alerts(store, alerts, next_states, errors, settings)
    timings["write_ms"] = _ms(mark)

    result = AnalysisResult(
        features_computed=len(rows),
        alerts_generated=written,
        errors=errors,
        duration_ms=_ms(started),
        alerts_suppressed=selection.reasons,
        timings_ms=timings,
    )
    log_event(
        "analyse",
        scan_id=scan_id,
        tickers=len(snaps),
        features=result.features_computed,
        findings=active,
        edges=len(candidates),
        alerts=result.alerts_generated,
        suppressed=result.alerts_suppressed,
        errors=len(errors),
        duration_ms=result.duration_ms,
        **timings,
    )
    return result


# ---- reads ---------------------------------------------------------------------------------
def _latest_snapshots(store: Store, tickers: Sequence[str], now: datetime) -> list[_Snapshot]:
    rows = store.rows(LATEST_SNAPSHOTS, [list(tickers), _naive(now)])
    return [
        _Snapshot(str(t), as_of.replace(tzinfo=UTC), float(price), float(q or 0.0))
        for t, as_of, price, q in rows
    ]


_RIGHTS = np.array(["P", "C"], dtype=object)


def _named(cols: dict[str, NDArray], names: NDArray) -> dict[str, NDArray]:
    """Rows keyed by snapshot index ``i`` (and ``is_call``) with ``ticker`` (and ``right``) as
    the store holds them: object arrays of the few distinct strings, not one string per row.
    Rights are C or P (the flush rejects others)."""
    out = {k: v for k, v in cols.items() if k not in ("i", "is_call")}
    out["ticker"] = names[np.ma.getdata(cols["i"]).astype(np.intp)]
    if "is_call" in cols:
        out["right"] = _RIGHTS[np.ma.getdata(cols["is_call"]).astype(np.intp)]
    return out


def _split(cols: dict[str, NDArray]) -> dict[str, dict[str, NDArray]]:
    """Columns sorted by ticker → {ticker: columns of that ticker} as views, no copies."""
    tickers = cols.get("ticker")
    if tickers is None or len(tickers) == 0:
        return {}
    tickers = np.asarray(tickers, dtype=object)
    bounds = np.r_[0, np.flatnonzero(tickers[1:] != tickers[:-1]) + 1, len(tickers)]
    return {
        str(tickers[a]): {k: v[a:b] for k, v in cols.items()}
        for a, b in itertools.pairwise(bounds.tolist())
    }


def _contract_history(
    store: Store,
    chains: dict[str, NDArray],
    config: AnalyticsConfig,
    first_day: date,
) -> dict[str, NDArray]:
    """Past daily volumes of just the contracts that are unusual today (one query, all tickers;
    ``chains`` is every ticker's chain, sorted by ticker)."""
    hit = unusual_mask(chains["volume"], chains["open_interest"], config)
    if not hit.any():
        return {}
    unusual = {k: chains[k][hit] for k in ("ticker", "expiration", "strike", "right")}
    unusual["expiration"] = unusual["expiration"].astype("datetime64[s]")
    since = first_day - timedelta(days=2 * config.unusual_history_days + 10)
    with store.registered("analysis_unusual", unusual):
        return store.columns(CONTRACT_HISTORY, [since, config.unusual_history_days, since])


def _previous_oi(store: Store, first_day: date) -> dict[str, NDArray]:
    """Every ticker's OI at its last snapshot of the previous trading day (one query)."""
    since = datetime.combine(cal.previous_trading_day(first_day), datetime.min.time())
    return store.columns(PREVIOUS_OI, [since, since])


@dataclass(frozen=True)
class _Inputs:
    """Everything the per-ticker stage reads: loaded before it, never written during it."""

    chains: dict[str, dict[str, NDArray]]
    history: dict[str, dict[str, NDArray]]
    contract_history: dict[str, dict[str, NDArray]]
    previous_oi: dict[str, dict[str, NDArray]]
    earnings: dict[str, date | str | None]
    states: dict[tuple[str, str], ArmState]
    settings: Settings
    config: AnalyticsConfig
    detectors: tuple[Detector, ...]


@dataclass
class _Evaluated:
    """The per-ticker stage's output for some tickers, in their order."""

    rows: list[_FeatureRow] = field(default_factory=list)
    steps: list[tuple[tuple[str, str], Step]] = field(default_factory=list)
    edges: list[tuple[Candidate, Change]] = field(default_factory=list)  # not yet explained
    active: int = 0
    errors: list[str] = field(default_factory=list)
    detector_errors: list[str] = field(default_factory=list)
    detect_s: float = 0.0

    def extend(self, other: _Evaluated) -> _Evaluated:
        self.rows += other.rows
        self.steps += other.steps
        self.edges += other.edges
        self.active += other.active
        self.errors += other.errors
        self.detector_errors += other.detector_errors
        self.detect_s += other.detect_s
        return self


BATCH_TICKERS = 250  # tickers whose chains' array passes run together (``FeatureBatch``)


def _evaluate(snaps: Sequence[_Snapshot], inputs: _Inputs) -> _Evaluated:
    """Each ticker's features go to the detectors and out as JSON at once: no FeatureSet of
    thousands of tickers is held at the same time (the array passes run per batch of tickers)."""
    out = _Evaluated()
    config = inputs.config
    for first in range(0, len(snaps), BATCH_TICKERS):
        part = snaps[first : first + BATCH_TICKERS]
        for snap, fs in zip(part, _batch_features(part, inputs, out.errors), strict=True):
            if fs is None:
                continue
            detect_start = time.perf_counter()
            next_earnings = inputs.earnings.get(snap.ticker)
            context = DetectorContext(
                ticker=snap.ticker,
                as_of=snap.as_of,
                next_earnings=next_earnings if isinstance(next_earnings, date) else None,
                config=config,
            )
            readings, failed = run_detectors(fs, context, inputs.detectors)
            out.detector_errors.extend(failed)
            for detector, reading in readings:
                key = (snap.ticker, detector.name)
                edge = step(inputs.states.get(key), reading, snap.as_of, detector.rule(config))
                out.steps.append((key, edge))
                out.active += reading.active
                if edge.change is not None and reading.finding is not None:
                    candidate = Candidate(snap.ticker, snap.as_of, reading.finding)
                    out.edges.append((candidate, edge.change))
            out.detect_s += time.perf_counter() - detect_start
            out.rows.append(_FeatureRow.of(fs, snap))
    return out


def _batch_features(
    snaps: Sequence[_Snapshot], inputs: _Inputs, errors: list[str]
) -> list[FeatureSet | None]:
    """The tickers' features, computed together; None (and a line in ``errors``) for a ticker
    that failed. One bad ticker must not stop the rest: if the batch itself cannot be built,
    each ticker is computed alone."""
    rate, config = inputs.settings.risk_free_rate, inputs.config
    items: list[TickerInputs] = []
    for snap in snaps:
        try:
            items.append(_ticker_inputs(snap, inputs))
        except Exception as exc:
            errors.append(f"{snap.ticker}: features: {type(exc).__name__}: {exc}")
    try:
        batch = FeatureBatch(items, rate=rate, config=config)
        compute = batch.features
    except Exception:

        def compute(j: int) -> FeatureSet:
            return FeatureBatch([items[j]], rate=rate, config=config).features(0)

    done: dict[str, FeatureSet] = {}
    for j, item in enumerate(items):
        try:
            done[str(item.ticker)] = compute(j)
        except Exception as exc:
            errors.append(f"{item.ticker}: features: {type(exc).__name__}: {exc}")
    return [done.get(snap.ticker) for snap in snaps]


PARALLEL_MIN_TICKERS = 200  # below this a second process costs more than it saves


def _evaluate_shared(snaps: Sequence[_Snapshot], inputs: _Inputs, workers: int) -> _Evaluated:
    """``_evaluate`` over all tickers, the later ones (half the contracts) in a forked child
    (``forked.in_two``).

    The stage is pure (no store, no provider, no clock), so a fork shares the loaded inputs
    without copying them, and the child sends back only rows of JSON and the detectors' edges.
    If it cannot start or dies, this process computes its tickers too: same results, slower.
    """
    if workers < 2 or len(snaps) < PARALLEL_MIN_TICKERS or not forked.can_fork():
        return _evaluate(snaps, inputs)
    sizes = np.array([len(inputs.chains.get(s.ticker, {}).get("strike", ())) + 1 for s in snaps])
    mid = int(np.searchsorted(np.cumsum(sizes), sizes.sum() / 2)) + 1
    mid = min(max(mid, 1), len(snaps) - 1)
    mine, theirs = forked.in_two(
        [snaps[:mid], snaps[mid:]],
        lambda part: _evaluate(part, inputs),
        lambda _part, evaluated: evaluated,
        _evaluated,
    )
    return mine.extend(theirs)


def _evaluated(_part: Sequence[_Snapshot], payload: object) -> _Evaluated:
    if not isinstance(payload, _Evaluated):
        raise TypeError(f"not an evaluation: {type(payload).__name__}")
    return payload


def _ticker_inputs(snap: _Snapshot, inputs: _Inputs) -> TickerInputs:
    cols = inputs.chains.get(snap.ticker)
    next_earnings = inputs.earnings.get(snap.ticker)
    return TickerInputs(
        chain=_Chain(cols if cols is not None else _NO_CHAIN),
        spot=snap.spot,
        as_of=snap.as_of,
        history=_daily_inputs(inputs.history.get(snap.ticker)),
        contract_history=_contract_inputs(inputs.contract_history.get(snap.ticker)),
        previous_oi=_previous_oi_inputs(inputs.previous_oi.get(snap.ticker)),
        next_earnings=next_earnings if isinstance(next_earnings, date) else None,
        ticker=snap.ticker,
        div_yield=snap.div_yield,
    )


_CHAIN_READ = ("ticker", *CHAIN_INPUTS)  # what ``LATEST_CHAINS`` gives (with ``_named``)
_NO_CHAIN = {name: np.empty(0, dtype=CHAIN_COLUMNS[name]) for name in _CHAIN_READ}


@dataclass(frozen=True)
class _Chain:
    """One ticker's share of ``_chain_columns``: the columns the features read."""

    columns: dict[str, NDArray]

    def __len__(self) -> int:
        return len(self.columns["strike"])

    def __getitem__(self, name: str) -> NDArray:
        return self.columns[name]


def _history_columns(raw: dict[str, NDArray]) -> dict[str, NDArray]:
    """The daily histories of every ticker as ``DailyInputs`` columns (days, NaN for NULL), in
    one pass over the whole read rather than one per ticker."""

    def floats(name: str) -> NDArray[np.float64]:
        return np.ma.filled(np.ma.asarray(raw[name], dtype=np.float64), np.nan)

    return {
        "ticker": raw["ticker"],
        "day": np.ma.getdata(raw["day"]).astype("datetime64[D]"),
        **{name: floats(name) for name in ("close", "atm_iv", "skew_25d")},
    }


def _daily_inputs(cols: dict[str, NDArray] | None) -> DailyInputs:
    """One ticker's share of ``_history_columns``."""
    if cols is None:
        return DailyInputs.empty()
    return DailyInputs(cols["day"], cols["close"], cols["atm_iv"], cols["skew_25d"])


def _contract_inputs(cols: dict[str, NDArray] | None) -> ContractHistory | None:
    if cols is None:
        return None
    return ContractHistory(
        expiration=np.ma.getdata(cols["expiration"]).astype("datetime64[D]"),
        strike=np.ma.filled(np.ma.asarray(cols["strike"], dtype=np.float64), np.nan),
        is_call=np.asarray(cols["right"], dtype=object) == "C",
        volume=np.ma.filled(np.ma.asarray(cols["volume"], dtype=np.float64), np.nan),
    )


def _previous_oi_inputs(cols: dict[str, NDArray] | None) -> PreviousOpenInterest | None:
    if cols is None:
        return None
    as_of = np.ma.getdata(cols["as_of"]).astype("datetime64[us]")[0].item()
    return PreviousOpenInterest(
        as_of=as_of.replace(tzinfo=UTC),
        expiration=np.ma.getdata(cols["expiration"]).astype("datetime64[D]"),
        strike=np.ma.filled(np.ma.asarray(cols["strike"], dtype=np.float64), np.nan),
        is_call=np.asarray(cols["right"], dtype=object) == "C",
        open_interest=np.ma.filled(np.ma.asarray(cols["open_interest"], dtype=np.float64), np.nan),
    )


def _earnings_calendar(
    provider: MarketDataProvider, snaps: Sequence[_Snapshot]
) -> tuple[dict[str, date | str | None], float]:
    """Each ticker's next earnings date (None: none within the look-ahead; a str: the error that
    ticker's calendar raised), and how long the provider took, in ms."""
    started = time.perf_counter()
    out: dict[str, date | str | None] = {}
    for snap in snaps:
        try:
            dates = provider.earnings_dates(snap.ticker, snap.day, snap.day + _EARNINGS_LOOKAHEAD)
        except Exception as exc:  # the detectors then run without an earnings date
            out[snap.ticker] = f"{snap.ticker}: earnings calendar: {type(exc).__name__}: {exc}"
            continue
        upcoming = [d for d in dates if d >= snap.day]
        out[snap.ticker] = min(upcoming) if upcoming else None
    return out, _ms(started)


def _read_states(store: Store, tickers: Sequence[str]) -> dict[tuple[str, str], ArmState]:
    """Every (ticker, detector) pair's edge state for these tickers (one query, column-wise:
    thousands of tickers hold tens of thousands of states)."""
    if not tickers:
        return {}
    cols = store.columns(READ_STATES, [list(tickers)])
    if len(cols["ticker"]) == 0:
        return {}

    def values(name: str) -> list[Any]:
        data, mask = np.ma.getdata(cols[name]).tolist(), np.ma.getmaskarray(cols[name]).tolist()
        return [None if m else v for v, m in zip(data, mask, strict=True)]

    rows = zip(
        values("ticker"),
        values("detector_name"),
        values("armed"),
        values("kind"),
        _aware(cols["fired_at"]),
        values("fired_value"),
        values("quiet_value"),
        _aware(cols["seen_at"]),
        values("held"),
        values("cleared_sessions"),
        strict=True,
    )
    return {
        (str(t), str(d)): ArmState(bool(a), str(k), fa, fv, qv, sa, bool(h), int(c))
        for t, d, a, k, fa, fv, qv, sa, h, c in rows
    }


def _throttle_state(
    store: Store, candidates: Sequence[Candidate], policy: ThrottlePolicy
) -> ThrottleState:
    """Cooldown, daily-cap and duplicate state from the ``alerts`` table (survives restarts)."""
    if not candidates:
        return ThrottleState()
    tickers = sorted({c.ticker for c in candidates})
    since = _naive(min(c.as_of for c in candidates) - policy.cooldown - timedelta(days=1))
    last = {
        (str(t), str(d)): at.replace(tzinfo=UTC)
        for t, d, at in store.rows(LAST_ALERTS, [tickers, since])
    }
    days = sorted({c.as_of.astimezone(UTC).date() for c in candidates})
    per_day = {day: int(n) for day, n in store.rows(ALERTS_PER_DAY, [days])}
    existing = frozenset(str(r[0]) for r in store.rows(EXISTING_IDS, [[c.id for c in candidates]]))
    return ThrottleState(last_alert=last, per_day=per_day, existing_ids=existing)


# ---- writes --------------------------------------------------------------------------------
def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


@dataclass(frozen=True)
class _FeatureRow:
    """What the writes need of one ticker's features: the JSON and the session's numbers."""

    ticker: str
    as_of: datetime  # naive UTC
    day: date
    close: float
    features: str
    missing: str
    scalars: str  # the scalar features alone (``catalogue.SCALAR_FEATURES``)
    atm_iv: float  # NaN when missing
    skew_25d: float

    @classmethod
    def of(cls, fs: FeatureSet, snap: _Snapshot) -> _FeatureRow:
        def value(name: str) -> float:
            v = fs.values.get(name)
            return float(v) if isinstance(v, int | float) else np.nan

        return cls(
            fs.ticker,
            _naive(snap.as_of),
            snap.day,
            snap.spot,
            _dumps(fmt.compact_features(fs.values)),
            _dumps(fs.missing),
            _dumps({name: fs.values[name] for name in SCALAR_FEATURES if name in fs.values}),
            value("atm_iv"),
            value("skew_25d"),
        )


def _write_features(store: Store, rows: Sequence[_FeatureRow], errors: list[str]) -> None:
    """``features`` rows, then the snapshots' ATM IV and today's ``daily_history`` rows. The
    numbers are a view of their own: a query that scans a view scans all its columns, and the
    JSON is most of the bytes."""
    if not rows:
        return
    keys = {
        "ticker": np.array([r.ticker for r in rows], dtype=object),
        "as_of": np.array([r.as_of for r in rows], "datetime64[us]"),
    }
    documents = {
        **keys,
        "features": np.array([r.features for r in rows], dtype=object),
        "missing": np.array([r.missing for r in rows], dtype=object),
        "scalars": np.array([r.scalars for r in rows], dtype=object),
    }
    sessions = {
        **keys,
        "atm_iv": np.array([r.atm_iv for r in rows], dtype=np.float64),
        "day": np.array([r.day for r in rows], "datetime64[D]").astype("datetime64[s]"),
        "close_at": np.array([_naive(cal.session_close(r.day)) for r in rows], "datetime64[us]"),
        "close": np.array([r.close for r in rows], dtype=np.float64),
        "skew_25d": np.array([r.skew_25d for r in rows], dtype=np.float64),
    }
    try:
        with store.registered("analysis_features", documents):
            store.rows(WRITE_FEATURES)
        with store.registered("analysis_sessions", sessions):
            store.rows(WRITE_ATM_IV)
            store.rows(WRITE_HISTORY)
    except Exception as exc:
        errors.append(f"write features: {type(exc).__name__}: {exc}")


def _alerts(accepted: Sequence[Candidate], scan_id: str, errors: list[str]) -> list[Alert]:
    alerts: list[Alert] = []
    for cand in accepted:
        try:
            alerts.append(
                Alert(
                    id=cand.id,
                    scan_id=scan_id,
                    ticker=cand.ticker,
                    detector_name=cand.detector,
                    score=cand.score,
                    metrics=cand.finding.metrics,
                    explanation=cand.finding.explanation,
                    strategies=cand.finding.strategies,
                    created_at=cand.as_of,
                )
            )
        except Exception as exc:
            errors.append(f"{cand.ticker}: alert {cand.detector}: {type(exc).__name__}: {exc}")
    return alerts


def _write_alerts(
    store: Store,
    alerts: Sequence[Alert],
    states: dict[tuple[str, str], ArmState],
    errors: list[str],
    settings: Settings,
) -> int:
    """The alerts and the pairs' next edge states, in one transaction: both or neither."""
    if not alerts and not states:
        return 0
    cols = {
        "id": np.array([a.id for a in alerts], dtype=object),
        "scan_id": np.array([a.scan_id for a in alerts], dtype=object),
        "ticker": np.array([a.ticker for a in alerts], dtype=object),
        "detector_name": np.array([a.detector_name for a in alerts], dtype=object),
        "score": np.array([a.score for a in alerts], dtype=np.float64),
        "metrics": np.array([_dumps(a.metrics) for a in alerts], dtype=object),
        "explanation": np.array([_dumps(a.explanation.model_dump()) for a in alerts], object),
        "strategies": np.array([_dumps(a.strategies) for a in alerts], dtype=object),
        "created_at": np.array([_naive(a.created_at) for a in alerts], "datetime64[us]"),
    }
    try:
        with store.transaction():
            if alerts:
                with store.registered("analysis_alerts", cols):
                    # delivery: the outbox rows of the new alerts, in the alerts' transaction
                    outbox.enqueue(store, "analysis_alerts", sink_names(settings),
                                   settings.delivery_min_score)  # fmt: skip
                    store.rows(WRITE_ALERTS)
            if states:
                with store.registered("analysis_states", _state_columns(states)):
                    store.rows(WRITE_STATES)
    except Exception as exc:
        errors.append(f"write alerts: {type(exc).__name__}: {exc}")
        return 0
    return len(alerts)


def _state_columns(states: dict[tuple[str, str], ArmState]) -> dict[str, NDArray]:
    def floats(values: list[float | None]) -> NDArray[np.float64]:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    rows = list(states.values())
    return {
        "ticker": np.array([t for t, _ in states], dtype=object),
        "detector_name": np.array([d for _, d in states], dtype=object),
        "armed": np.array([s.armed for s in rows], dtype=bool),
        "kind": np.array([s.kind for s in rows], dtype=object),
        "fired_at": _microseconds([s.fired_at for s in rows]),
        "fired_value": floats([s.fired_value for s in rows]),
        "quiet_value": floats([s.quiet_value for s in rows]),
        "seen_at": _microseconds([s.seen_at for s in rows]),
        "held": np.array([s.held for s in rows], dtype=bool),
        "cleared_sessions": np.array([s.cleared_sessions for s in rows], dtype=np.int64),
    }


_UNIX = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NAT = np.iinfo(np.int64).min  # datetime64's NaT, which DuckDB reads as NULL


def _microseconds(values: Sequence[datetime | None]) -> NDArray:
    """Aware datetimes (or None) as datetime64[us] UTC, without numpy parsing each object."""
    ticks = [_NAT if v is None else (v - _UNIX) // _MICROSECOND for v in values]
    return np.array(ticks, dtype=np.int64).view("datetime64[us]")


def _aware(column: NDArray) -> list[datetime | None]:
    """A datetime64 column (masked where NULL) as aware UTC datetimes or None."""
    ticks = np.ma.getdata(column).astype("datetime64[us]").astype(np.int64).tolist()
    mask = np.ma.getmaskarray(column).tolist()
    return [None if m else _UNIX + v * _MICROSECOND for v, m in zip(ticks, mask, strict=True)]


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
