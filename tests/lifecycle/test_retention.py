"""Retention: the windows hold, nothing unsealed leaves, daily aggregates stay for ever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lifekit import INTRADAY, SESSIONS, WATCHLIST, Life, after_close

from chalicelib.domain import calendar as cal
from chalicelib.errors import StorageUnavailable
from chalicelib.storage.base import Storage
from chalicelib.write import retention

RUNS = len(INTRADAY) + 1  # snapshots per ticker per session


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def test_the_hot_store_keeps_its_windows_and_the_rest_is_sealed(life: Life) -> None:
    for day in SESSIONS[:5]:
        life.session(day)
    per_session = dict(life.rows("SELECT session, count(*) FROM chain_snapshots GROUP BY 1"))
    # current (5th) and 1 intraday session: every snapshot; 2 EOD sessions before: the close
    assert per_session == {
        SESSIONS[4]: len(WATCHLIST) * RUNS,
        SESSIONS[3]: len(WATCHLIST) * RUNS,
        SESSIONS[2]: len(WATCHLIST),
    }
    closes = life.rows("SELECT ticker, as_of FROM chain_snapshots WHERE session = ?", [SESSIONS[2]])
    assert {a for _, a in closes} == {_naive(cal.session_close(SESSIONS[2]))}
    # nothing was lost: every snapshot ever collected is in the hot store or sealed
    intraday = life.sealed_snapshots("intraday")
    assert len(intraday) == len(set(intraday))  # and sealed once
    assert life.collected <= life.snapshots() | set(intraday)
    assert life.collected - life.snapshots() <= set(intraday)
    # no contract rows without their snapshot
    orphans = life.rows(
        "SELECT count(*) FROM option_quotes q ANTI JOIN chain_snapshots c "
        "ON q.ticker = c.ticker AND q.as_of = c.as_of"
    )
    assert orphans == [(0,)]


def test_daily_aggregates_and_alerts_stay_features_thin_to_one_per_session(life: Life) -> None:
    for day in SESSIONS[:4]:
        life.session(day)
    days = life.rows("SELECT ticker, count(*) FROM daily_history WHERE source = 'snapshot' "
                     "GROUP BY 1 ORDER BY 1")  # fmt: skip
    assert days == [(t, 4) for t in sorted(WATCHLIST)]  # one per session, all kept
    features = dict(
        life.rows(
            "SELECT timezone('America/New_York', as_of::TIMESTAMPTZ)::DATE, count(*) "
            "FROM features GROUP BY 1"
        )
    )
    assert features == {
        SESSIONS[0]: len(WATCHLIST),
        SESSIONS[1]: len(WATCHLIST),
        SESSIONS[2]: len(WATCHLIST),
        SESSIONS[3]: len(WATCHLIST) * RUNS,  # the current session keeps them all
    }
    kept = life.rows("SELECT DISTINCT as_of FROM features WHERE as_of < ?",
                     [_naive(cal.session_bounds(SESSIONS[3])[0])])  # fmt: skip
    assert {a for (a,) in kept} == {_naive(cal.session_close(d)) for d in SESSIONS[:3]}


def test_scans_older_than_90_days_go(life: Life) -> None:
    life.session(SESSIONS[0], times=(), close=True)
    old = datetime(2026, 7, 1, 15, tzinfo=UTC)
    from chalicelib.write.store import Store

    with Store(life.db) as store:
        store.record_scan({"scan_id": "old", "started_at": old, "finished_at": old,
                           "status": "completed"})  # fmt: skip
        store.record_scan({"scan_id": "recent", "started_at": old + timedelta(days=60),
                           "finished_at": old, "status": "completed"})  # fmt: skip
    life.session(SESSIONS[1], times=(), close=True)
    ids = {i for (i,) in life.rows("SELECT scan_id FROM scans")}
    assert "old" not in ids and "recent" in ids
    assert timedelta(days=90) == retention.SCAN_RETENTION


class _NoHistoryWrites(Storage):
    """The export storage refusing every write under ``history/`` (an outage or a full disk)."""

    backend = "local"

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    @property
    def location(self) -> str:
        return self.inner.location

    def _refuse(self, key: str) -> None:
        if key.startswith("history/"):
            raise StorageUnavailable(f"PutObject {key} failed: injected")

    def _get(self, key):  # type: ignore[no-untyped-def]
        return self.inner.get(key)

    def _head(self, key):  # type: ignore[no-untyped-def]
        return self.inner.head(key)

    def _put(self, key, data, **kw):  # type: ignore[no-untyped-def]
        self._refuse(key)
        return self.inner.put(key, data, **kw)

    def _list(self, prefix):  # type: ignore[no-untyped-def]
        return self.inner.list(prefix)

    def _delete(self, key):  # type: ignore[no-untyped-def]
        self.inner.delete(key)

    def _delete_many(self, keys):  # type: ignore[no-untyped-def]
        return self.inner.delete_many(keys)

    def _put_file(self, key, path, **kw):  # type: ignore[no-untyped-def]
        self._refuse(key)
        return self.inner.put_file(key, path, **kw)

    def _get_file(self, key, path):  # type: ignore[no-untyped-def]
        return self.inner.get_file(key, path)


def test_nothing_unsealed_leaves_the_hot_store(tmp_path, storage: Storage) -> None:
    life = Life(tmp_path / "data", _NoHistoryWrites(storage))
    for day in SESSIONS[:4]:
        life.session(day)
    assert life.snapshots() == life.collected  # every seal failed: every snapshot stays
    summary = life.collect(after_close(SESSIONS[3]) + timedelta(minutes=5))
    assert any(e.startswith("lifecycle: StorageUnavailable") for e in summary["errors"]), summary[
        "errors"
    ]
    assert summary["status"] == "partial"  # the collect itself was fine; the seal is retried
    # once the storage takes writes again, the backlog is sealed and the windows apply
    healed = Life(tmp_path / "data", storage)
    healed.collect(after_close(SESSIONS[3]) + timedelta(minutes=10))
    per_session = dict(healed.rows("SELECT session, count(*) FROM chain_snapshots GROUP BY 1"))
    assert set(per_session) == set(SESSIONS[1:4])
    assert set(healed.sealed_snapshots("intraday")) >= life.collected - healed.snapshots()
