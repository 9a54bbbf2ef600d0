"""OCD_PROVIDER=file: the scheduler replays imported days in order, features over real history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from importkit import (
    DAYS,
    NOW,
    RATE,
    chains,
    close_of,
    settings_for,
    vendor_csv,
    without,
    write,
)

from chalicelib.config import Settings
from chalicelib.domain import calendar as cal
from chalicelib.domain.pricing import bs_greeks
from chalicelib.write.importer import import_file, inspect
from chalicelib.write.providers.factory import make_provider
from chalicelib.write.providers.file import FileProvider
from chalicelib.write.scheduler import Scheduler
from chalicelib.write.store import Store


def _import(store: Store, path: Path) -> None:
    import_file(store, inspect(store, path))


def _collect(settings: Settings, store: Store, now: datetime = NOW) -> dict:
    return Scheduler(settings, store).collect(now)


@pytest.fixture
def two_tickers(tmp_path: Path) -> Settings:
    return settings_for(tmp_path / "data", watchlist="SPY,AAPL")


def test_make_provider_builds_the_file_provider_on_the_given_store(two_tickers: Settings):
    with Store(two_tickers.database) as store:
        provider = make_provider(two_tickers, store)
        assert isinstance(provider, FileProvider) and provider.store is store
        assert provider.watchlist == ["SPY", "AAPL"] and provider.rate == RATE
        with pytest.raises(ValueError, match="pass one"):
            make_provider(two_tickers)


def test_the_replay_walks_imported_days_in_order(two_tickers: Settings, tmp_path: Path):
    quotes = chains(("SPY", "AAPL"), DAYS)
    with Store(two_tickers.database) as store:
        _import(store, write(tmp_path / "eod.csv", vendor_csv(quotes)))
        runs = [_collect(two_tickers, store) for _ in range(len(DAYS) + 1)]
        assert [r["as_of"] for r in runs[:-1]] == [close_of(d).isoformat() for d in DAYS]
        assert [r["chains_collected"] for r in runs] == [2, 2, 2, 2, 0]
        assert [r["features_computed"] for r in runs] == [2, 2, 2, 2, 0]
        assert all(r["status"] == "completed" and not r["errors"] for r in runs)
        assert runs[-1]["chains_unchanged"] == 2  # nothing new: the last day is stored
        assert store.count("option_quotes") == len(quotes)

        features = store.rows("SELECT ticker, as_of, features FROM features ORDER BY as_of, ticker")
        assert [(t, a) for t, a, _ in features] == [
            (t, close_of(d).replace(tzinfo=None)) for d in DAYS for t in ("AAPL", "SPY")
        ]
        # each day's IV rank looks back over the days replayed before it, and only those
        history_days = [json.loads(f)["iv_history_days"] for _, _, f in features]
        assert history_days == [0, 0, 1, 1, 2, 2, 3, 3]
        history = store.rows("SELECT ticker, day, source FROM daily_history ORDER BY day, ticker")
        assert history == [(t, d, "snapshot") for d in DAYS for t in ("AAPL", "SPY")]


def test_replayed_chains_get_the_greeks_the_file_lacks(two_tickers: Settings, tmp_path: Path):
    """The vendor layout has no rho, and here some rows have no IV or greeks at all."""
    quotes = chains(("SPY",), DAYS[:1], expiries=(30, 60))
    stripped = [
        without(q, implied_volatility=None, delta=None, gamma=None, theta=None, vega=None)
        if i % 3 == 0 else q
        for i, q in enumerate(quotes)
    ]  # fmt: skip
    with Store(two_tickers.database) as store:
        _import(store, write(tmp_path / "eod.csv", vendor_csv(stripped)))
        run = _collect(two_tickers, store)
        assert run["chains_collected"] == 1
        rows = store.rows(
            'SELECT strike, "right", expiration, implied_volatility, delta, gamma, theta, vega, '
            'rho FROM option_quotes ORDER BY expiration, "right", strike'
        )
    by_key = {(q.strike, q.right, q.expiration): q for q in quotes}
    as_of = close_of(DAYS[0])
    for strike, right, expiration, iv, delta, gamma, theta, vega, rho in rows:
        q = by_key[(strike, right, expiration)]
        t = (cal.expiry_close(expiration) - as_of).total_seconds() / cal.SECONDS_PER_YEAR
        assert iv is not None and abs(iv - q.implied_volatility) < 0.01  # solved from the mid
        g = bs_greeks(q.spot, strike, t, RATE, iv, right == "C")
        assert rho == pytest.approx(float(g.rho), rel=1e-9)  # computed at the contract's IV
        for name, value in (("delta", delta), ("gamma", gamma), ("theta", theta),
                            ("vega", vega)):  # fmt: skip
            assert value == pytest.approx(getattr(q, name), rel=0.05, abs=2e-3), name


def test_the_replay_stops_at_now(two_tickers: Settings, tmp_path: Path):
    with Store(two_tickers.database) as store:
        _import(store, write(tmp_path / "eod.csv", vendor_csv(chains(("SPY",), DAYS))))
        now = close_of(DAYS[1]) + timedelta(hours=1)
        runs = [_collect(two_tickers, store, now) for _ in range(3)]
        assert [r["chains_collected"] for r in runs] == [1, 1, 0]
        assert runs[-1]["as_of"] == close_of(DAYS[1]).isoformat()
        assert store.count("chain_snapshots") == 2


def test_nothing_imported_is_a_clear_error(two_tickers: Settings):
    with Store(two_tickers.database) as store:
        run = _collect(two_tickers, store)
    assert run["status"] == "failed" and run["chains_collected"] == 0
    assert all("nothing imported" in e for e in run["errors"]) and len(run["errors"]) == 2


def test_days_the_replay_passed_are_offered_to_the_backfill(tmp_path: Path):
    """A ticker imported (or watched) after the replay went past its days gets them as history:
    closes, and ATM IV computed from the staged chains."""
    spy_only = settings_for(tmp_path / "data", watchlist="SPY")
    with Store(spy_only.database) as store:
        _import(store, write(tmp_path / "spy.csv", vendor_csv(chains(("SPY",), DAYS))))
        for _ in DAYS:
            _collect(spy_only, store)
        _import(store, write(tmp_path / "aapl.csv", vendor_csv(chains(("AAPL",), DAYS))))
        both = settings_for(tmp_path / "data", watchlist="SPY,AAPL", backfill_days="5")
        provider = FileProvider(store, both.watchlist, RATE)
        offered = provider.fetch_history("AAPL", DAYS[-1], 5)
        assert offered.dates == list(DAYS[:-1])  # the last day is the replay's position
        assert np.all(np.isfinite(offered.atm_iv)) and np.all(offered.atm_iv > 0.2)
        assert provider.fetch_history("SPY", DAYS[-1], 5).dates == []  # all replayed

        run = _collect(both, store)
        assert run["history_backfilled"] == 2 and run["chains_collected"] == 1  # AAPL, day 4
        history = store.rows(
            "SELECT day, source, atm_iv IS NOT NULL FROM daily_history WHERE ticker = 'AAPL' "
            "ORDER BY day"
        )
        backfilled = [(d, "backfill", True) for d in DAYS[:-1]]
        assert history == [*backfilled, (DAYS[-1], "snapshot", True)]
        aapl = store.rows("SELECT features FROM features WHERE ticker = 'AAPL'")
        assert json.loads(aapl[0][0])["iv_history_days"] == 3


def test_the_quote_time_is_the_next_staged_day(two_tickers: Settings, tmp_path: Path):
    with Store(two_tickers.database) as store:
        provider = FileProvider(store, two_tickers.watchlist, RATE)
        assert provider.quote_time(NOW) == NOW  # nothing staged
        _import(store, write(tmp_path / "eod.csv", vendor_csv(chains(("SPY",), DAYS[1:3]))))
        assert provider.quote_time(NOW) == close_of(DAYS[1])
        _collect(two_tickers, store)
        assert provider.quote_time(NOW) == close_of(DAYS[2])
        _collect(two_tickers, store)
        assert provider.quote_time(NOW) == close_of(DAYS[2]).astimezone(UTC)  # the position


def test_an_imported_chain_without_bids_or_open_interest_serves_nulls_and_no_alert(
    tmp_path: Path,
):
    """Vendor rows with bid 0, no IV or greeks, and OI 0: nothing is solved from (0 + ask)/2,
    and no number or alert stands on the missing open interest (issue 17, part 1)."""
    settings = settings_for(tmp_path / "data")
    quotes = [
        without(q, bid=0.0, implied_volatility=None, delta=None, gamma=None, theta=None,
                vega=None, open_interest=0, volume=600)
        for q in chains(("SPY",), DAYS[:1], moneyness=(0.96, 0.98, 1.0, 1.02, 1.04))
    ]  # fmt: skip
    with Store(settings.database) as store:
        _import(store, write(tmp_path / "one-sided.csv", vendor_csv(quotes)))
        run = _collect(settings, store)
        assert run["chains_collected"] == 1 and run["features_computed"] == 1
        assert store.rows("SELECT count(implied_volatility) FROM option_quotes") == [(0,)]
        [(features, missing)] = store.rows("SELECT features, missing FROM features")
        values, reasons = json.loads(features), json.loads(missing)
        for name in ("atm_iv", "skew_25d", "max_pain", "put_call_oi_ratio", "unusual_count"):
            assert values[name] is None and reasons[name], name
        assert values["call_open_interest"] == 0 and values["put_call_volume_ratio"] == 1.0
        assert store.count("alerts") == 0
