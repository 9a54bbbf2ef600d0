"""Two processes compute what one does: the forked half of ``fetch_chains`` (and of
``fetch_histories``) comes back bit for bit, in order, and a child that dies or talks garbage is
recomputed and reaped."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import psutil
import pytest

from chalicelib.domain.chain import CHAIN_COLUMNS
from chalicelib.write import forked
from chalicelib.write.providers.base import ChainResult, DailyHistory
from chalicelib.write.providers.synthetic import BATCH_TICKERS, SyntheticMarket

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
MARKET = {"weeklies": 3, "horizon_days": 200, "strike_sigmas": 2.2}
TICKERS = [f"T{n:03d}" for n in range(300)]  # five blocks: enough to fork
Pairs = list[tuple[str, ChainResult | Exception]]


def _fetch(workers: int, tickers: Sequence[str] = TICKERS) -> Pairs:
    return list(SyntheticMarket(**MARKET, workers=workers).fetch_chains(tickers, NOW))


@pytest.fixture(scope="module")
def one_process() -> Pairs:
    return _fetch(1)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(forked, "log_event", lambda event, **fields: seen.append((event, fields)))
    return seen


def _children() -> list[psutil.Process]:
    return psutil.Process().children()


def _assert_identical(got: Pairs, want: Pairs) -> None:
    assert [t for t, _ in got] == [t for t, _ in want]
    for (ticker, a), (_, b) in zip(got, want, strict=True):
        assert isinstance(a, ChainResult) and isinstance(b, ChainResult), ticker
        assert a.underlying == b.underlying
        for name in CHAIN_COLUMNS:
            x, y = a.contracts[name], b.contracts[name]
            assert x.dtype == y.dtype, (ticker, name)
            nan = x.dtype.kind == "f"
            assert np.array_equal(x, y, equal_nan=nan), (ticker, name)
            if nan:
                assert np.array_equal(np.isnan(x), np.isnan(y)), (ticker, name)


def test_auto_uses_two_workers_where_it_can() -> None:
    assert SyntheticMarket().workers == (2 if forked.can_fork() else 1)
    with pytest.raises(ValueError, match="workers"):
        SyntheticMarket(workers=3)


def test_two_processes_yield_what_one_does(one_process: Pairs, events: list) -> None:
    market = SyntheticMarket(**MARKET, workers=2)
    _assert_identical(list(market.fetch_chains(TICKERS, NOW)), one_process)
    assert events == []
    assert not _children()
    # the child's simulated paths came back: the parent's cache is as warm as one process's
    assert set(market._paths) == set(TICKERS)


def test_histories_of_two_processes_are_each_tickers_own(events: list) -> None:
    end = date(2026, 11, 25)
    market = SyntheticMarket(**MARKET, workers=2)
    got = list(market.fetch_histories(TICKERS, end, 260))
    assert events == []
    assert not _children()
    assert [t for t, _ in got] == TICKERS
    single = SyntheticMarket(**MARKET, workers=1)
    for ticker, history in got:
        assert isinstance(history, DailyHistory), ticker
        want = single.fetch_history(ticker, end, 260)
        assert history.ticker == ticker and history.dates == want.dates
        for name in ("close", "atm_iv", "skew_25d"):
            assert getattr(history, name).tobytes() == getattr(want, name).tobytes(), ticker
    # the child's paths came back, so the chains that follow need not simulate them again
    assert set(market._paths) == set(TICKERS)


def test_a_child_that_dies_is_recomputed_and_reaped(
    one_process: Pairs, events: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent, done = os.getpid(), []
    block = SyntheticMarket._block

    def dies_after_one(self: SyntheticMarket, tickers: Sequence[str], now: datetime) -> Pairs:
        if os.getpid() != parent and done:
            os._exit(3)
        done.append(tickers)
        return block(self, tickers, now)

    monkeypatch.setattr(SyntheticMarket, "_block", dies_after_one)
    _assert_identical(_fetch(2), one_process)
    assert [e for e, _ in events] == ["fork_child_failed"]
    assert events[0][1] | {"garbage": None} == {
        "exit_code": 3,
        "blocks": 2,
        "received": 1,
        "recomputed": 1,
        "garbage": None,
    }
    assert not _children()
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_garbage_from_the_child_is_recomputed(
    one_process: Pairs, events: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SyntheticMarket, "_pack", lambda *args: ["not", "a", "block"])
    _assert_identical(_fetch(2), one_process)
    ((event, fields),) = events
    assert event == "fork_child_failed" and fields["received"] == 0
    assert fields["recomputed"] == 2 and fields["garbage"]
    assert not _children()


def test_failures_cross_the_pipe_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unpicklable(Exception):
        def __init__(self, ticker: str, why: str) -> None:  # two arguments: no plain unpickle
            super().__init__(f"{ticker}: {why}")

    raw_chain = SyntheticMarket._raw_chain

    def failing(self: SyntheticMarket, ticker: str, now: datetime) -> Any:
        if ticker in {"T010", "T250"}:
            raise KeyError(ticker)
        if ticker in {"T011", "T251"}:
            raise Unpicklable(ticker, "no quotes")
        return raw_chain(self, ticker, now)

    monkeypatch.setattr(SyntheticMarket, "_raw_chain", failing)
    tickers = TICKERS[: 4 * BATCH_TICKERS]  # the child computes T128 to T255
    one, two = _fetch(1, tickers), _fetch(2, tickers)
    assert [t for t, _ in one] == [t for t, _ in two]
    errors = {t: r for t, r in two if isinstance(r, Exception)}
    assert set(errors) == {"T010", "T011", "T250", "T251"}
    assert type(errors["T250"]) is KeyError and str(errors["T250"]) == "'T250'"
    assert str(errors["T251"]) == "Unpicklable: T251: no quotes"  # a plain error, its message
    assert type(errors["T011"]) is type(dict(one)["T011"])  # the parent's own: unchanged


def test_closing_early_kills_and_reaps_the_child() -> None:
    chains = SyntheticMarket(**MARKET, workers=2).fetch_chains(TICKERS, NOW)
    next(chains)
    assert len(_children()) == 1
    chains.close()
    assert not _children()
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)
