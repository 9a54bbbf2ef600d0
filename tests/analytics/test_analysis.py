"""The analysis phase against a real DuckDB store fed by the scheduler and the synthetic market."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from chalicelib import exportformat as fmt
from chalicelib.analytics.config import AnalyticsConfig
from chalicelib.analytics.detectors.base import DetectorContext, EdgeRule, Finding, Reading
from chalicelib.analytics.detectors.edges import ArmState
from chalicelib.analytics.scoring import alert_id
from chalicelib.config import Settings, load_settings
from chalicelib.domain import calendar as cal
from chalicelib.domain.models import Explanation, FeatureSet
from chalicelib.write import analysis
from chalicelib.write.analysis import analyse
from chalicelib.write.providers.synthetic import SyntheticMarket
from chalicelib.write.scheduler import Scheduler
from chalicelib.write.store import Store

DAY = date(2026, 3, 2)  # a Monday
TICKERS = ("SPY", "AAPL", "JPM")


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    # fewer listed expiries than the default keeps chains small; events are unchanged
    return SyntheticMarket(seed=7, weeklies=4, horizon_days=200)


def make_settings(tmp_path: Path, **extra: str) -> Settings:
    env = {"OCD_DATA_DIR": str(tmp_path), "OCD_WATCHLIST": ",".join(TICKERS)}
    env.update({f"OCD_{k.upper()}": v for k, v in extra.items()})
    return load_settings(env)


def collect(store: Store, settings: Settings, market: SyntheticMarket, now: datetime) -> str:
    return Scheduler(settings, store, market, analysis=False).collect(now)["scan_id"]


def stub_finding(name: str, score: float, features: FeatureSet, ticker: str) -> Finding:
    return Finding(
        detector=name,
        score=score,
        metrics={"atm_iv": features.values.get("atm_iv")},
        explanation=Explanation(summary=f"{ticker} stub", rationale="test"),
        strategies=["none"],
    )


class Always:
    """A stub detector active on every ticker with a fixed (or per-ticker) score, each snapshot
    a condition of its own (a new kind): only the backstop (score floor, cooldown, daily cap)
    limits its alerts."""

    def __init__(self, name: str, score: float | dict[str, float]) -> None:
        self.name = name
        self.score = score

    def rule(self, config: AnalyticsConfig) -> EdgeRule:
        return EdgeRule(None, 1)

    def read(self, features: FeatureSet, context: DetectorContext) -> Reading:
        score = self.score if isinstance(self.score, float) else self.score[context.ticker]
        return Reading(
            value=score,
            label="stub score",
            template="{:.0f}",
            active=True,
            clear=False,
            finding=stub_finding(self.name, score, features, context.ticker),
            kind=context.as_of.isoformat(),
        )


class OnSessions:
    """A stub detector whose condition holds on the given sessions and is clear on the others;
    its gauge is 1 when it holds, 0 when not."""

    name = "scripted"

    def __init__(self, sessions: set[date], rearm: int = 1) -> None:
        self.sessions = sessions
        self.rearm = rearm

    def rule(self, config: AnalyticsConfig) -> EdgeRule:
        return EdgeRule(None, self.rearm)

    def read(self, features: FeatureSet, context: DetectorContext) -> Reading:
        active = cal.session_of(context.as_of) in self.sessions
        return Reading(
            value=1.0 if active else 0.0,
            label="stub gauge",
            template="{:.0f}",
            active=active,
            clear=not active,
            finding=stub_finding(self.name, 70.0, features, context.ticker) if active else None,
        )


def test_analyse_writes_features_snapshot_iv_history_and_alerts(tmp_path, market) -> None:
    settings = make_settings(tmp_path)
    now = at(DAY, 21)
    with Store(settings.database) as store:
        scan_id = collect(store, settings, market, now)
        result = analyse(store, settings, market, scan_id, now)
        assert result.errors == []
        assert result.features_computed == 3
        stages = {"load_ms", "calendar_ms", "features_ms", "detect_ms", "write_ms"}
        assert set(result.timings_ms) == stages

        rows = store.rows("SELECT ticker, as_of, features, missing FROM features ORDER BY ticker")
        assert [r[0] for r in rows] == sorted(TICKERS)
        snaps = {
            t: (as_of, price, iv)
            for t, as_of, price, iv in store.rows(
                "SELECT ticker, as_of, underlying_price, atm_iv FROM chain_snapshots"
            )
        }
        for ticker, as_of, features_json, missing_json in rows:
            values, missing = json.loads(features_json), json.loads(missing_json)
            assert as_of == snaps[ticker][0]
            assert 0.05 < values["atm_iv"] < 1.5
            assert snaps[ticker][2] == pytest.approx(values["atm_iv"])
            # backfilled history makes the history-based features available on day one
            for name in ("iv_rank", "iv_percentile", "hv_20", "skew_25d_zscore", "sma_200"):
                assert values[name] is not None, missing.get(name)
        history = store.rows(
            "SELECT ticker, close, atm_iv, skew_25d, source FROM daily_history WHERE day = ?",
            [DAY],
        )
        assert {r[0] for r in history} == set(TICKERS)
        for ticker, close, atm_iv, skew, source in history:
            assert source == "snapshot"
            assert close == pytest.approx(snaps[ticker][1])
            assert atm_iv == pytest.approx(snaps[ticker][2])
            assert skew < 0

        alerts = store.rows(
            "SELECT id, scan_id, ticker, detector_name, score, metrics, explanation, strategies,"
            " created_at FROM alerts"
        )
        assert len(alerts) == result.alerts_generated
        for aid, scan, ticker, detector, score, metrics, explanation, strategies, created in alerts:
            assert scan == scan_id
            assert created == snaps[ticker][0]
            assert aid == alert_id(ticker, detector, created)
            assert score >= settings.min_alert_score
            assert json.loads(metrics)
            assert Explanation.model_validate_json(explanation).summary
            assert json.loads(strategies)

        again = analyse(store, settings, market, "scan_again", now)  # idempotent
        assert again.alerts_generated == 0
        assert store.count("features") == 3
        assert store.count("alerts") == len(alerts)


def test_only_the_latest_snapshot_at_or_before_now_is_analysed(tmp_path, market) -> None:
    settings = make_settings(tmp_path)
    with Store(settings.database) as store:
        collect(store, settings, market, at(DAY, 16))
        collect(store, settings, market, at(DAY, 21))
        analyse(store, settings, market, "s1", at(DAY, 18))
        analyse(store, settings, market, "s2", at(DAY, 21, 5))
        as_ofs = sorted({r[0] for r in store.rows("SELECT as_of FROM features")})
        assert as_ofs == [datetime(2026, 3, 2, 16, 0), datetime(2026, 3, 2, 21, 0)]
        # today's history row holds the latest snapshot's values
        [(close,)] = store.rows(
            "SELECT close FROM daily_history WHERE ticker = 'SPY' AND day = ?", [DAY]
        )
        [(price,)] = store.rows(
            "SELECT underlying_price FROM chain_snapshots WHERE ticker = 'SPY' "
            "ORDER BY as_of DESC LIMIT 1"
        )
        assert close == pytest.approx(price)


def test_oi_change_is_measured_against_the_previous_sessions_last_snapshot(
    tmp_path, market
) -> None:
    settings = make_settings(tmp_path)
    friday = date(2026, 2, 27)
    with Store(settings.database) as store:
        collect(store, settings, market, at(friday, 16))
        collect(store, settings, market, at(friday, 21))  # the session's last snapshot
        collect(store, settings, market, at(DAY, 16))  # same day as the analysed one: not a base
        collect(store, settings, market, at(DAY, 21))
        result = analyse(store, settings, market, "s", at(DAY, 21))
        assert result.errors == []
        expected = dict(
            store.rows(
                """
                SELECT t.ticker, sum(t.open_interest - p.open_interest)::BIGINT
                FROM option_quotes t JOIN option_quotes p
                  ON t.ticker = p.ticker AND t.expiration = p.expiration
                 AND t.strike = p.strike AND t."right" = p."right"
                WHERE t.as_of = ? AND p.as_of = ?
                  AND t.open_interest IS NOT NULL AND p.open_interest IS NOT NULL
                GROUP BY t.ticker
                """,
                [at(DAY, 21).replace(tzinfo=None), at(friday, 21).replace(tzinfo=None)],
            )
        )
        rows = store.rows("SELECT ticker, features FROM features WHERE as_of = ?", [at(DAY, 21)])
        assert len(rows) == len(TICKERS) == len(expected)
        for ticker, features_json in rows:
            values = fmt.expand_features(json.loads(features_json))  # tables to records
            assert values["oi_previous_as_of"] == "2026-02-27T21:00:00Z"
            assert values["oi_change_total"] == expected[ticker]
            assert values["oi_change_call"] + values["oi_change_put"] == expected[ticker]
            assert (
                sum(r["oi_change"] for r in values["by_expiry"] if r["oi_change"])
                == (expected[ticker])
            )
        # the first session has no earlier one
        analyse(store, settings, market, "f", at(friday, 21))
        [(missing,)] = store.rows(
            "SELECT missing FROM features WHERE ticker = 'SPY' AND as_of = ?", [at(friday, 21)]
        )
        assert json.loads(missing)["oi_change_total"] == "no snapshot of an earlier session"


def test_cooldown_across_cycles_and_a_restart(tmp_path, market) -> None:
    settings = make_settings(tmp_path)  # cooldown 24 h
    stub = [Always("stub", 80.0)]
    with Store(settings.database) as store:
        first = collect(store, settings, market, at(DAY, 15))
        result = analyse(store, settings, market, first, at(DAY, 15), detectors=stub)
        assert result.alerts_generated == 3
        second = collect(store, settings, market, at(DAY, 21))
        result = analyse(store, settings, market, second, at(DAY, 21), detectors=stub)
        assert result.alerts_generated == 0
        assert result.alerts_suppressed == {"cooldown": 3}

    next_day = DAY + timedelta(days=1)
    with Store(settings.database) as store:  # a restart: state comes back from the alerts table
        scan = collect(store, settings, market, at(next_day, 14))  # 23 h after the first alerts
        result = analyse(store, settings, market, scan, at(next_day, 14), detectors=stub)
        assert result.alerts_generated == 0
        assert result.alerts_suppressed == {"cooldown": 3}
    with Store(settings.database) as store:
        scan = collect(store, settings, market, at(next_day, 21))  # 30 h after
        result = analyse(store, settings, market, scan, at(next_day, 21), detectors=stub)
        assert result.alerts_generated == 3
        assert store.count("alerts") == 6


def test_daily_cap_keeps_the_best_and_survives_cycles(tmp_path, market) -> None:
    settings = make_settings(tmp_path, alert_daily_cap="2")
    scores = {"SPY": 55.0, "AAPL": 91.0, "JPM": 73.0}
    with Store(settings.database) as store:
        scan = collect(store, settings, market, at(DAY, 15))
        result = analyse(
            store, settings, market, scan, at(DAY, 15), detectors=[Always("a", scores)]
        )
        assert result.alerts_generated == 2
        assert result.alerts_suppressed == {"daily_cap": 1}
        assert {r[0] for r in store.rows("SELECT ticker FROM alerts")} == {"AAPL", "JPM"}
        scan = collect(store, settings, market, at(DAY, 21))
        result = analyse(store, settings, market, scan, at(DAY, 21), detectors=[Always("b", 99.0)])
        assert result.alerts_generated == 0
        assert result.alerts_suppressed == {"daily_cap": 3}


def test_minimum_score_from_settings(tmp_path, market) -> None:
    settings = make_settings(tmp_path, min_alert_score="60")
    with Store(settings.database) as store:
        scan = collect(store, settings, market, at(DAY, 21))
        stub = [Always("low", 59.9), Always("high", 60.0)]
        result = analyse(store, settings, market, scan, at(DAY, 21), detectors=stub)
        assert result.alerts_generated == 3
        assert result.alerts_suppressed == {"below_min_score": 3}


def test_a_failing_ticker_does_not_stop_the_others(tmp_path, market, monkeypatch) -> None:
    settings = make_settings(tmp_path)
    real = analysis.FeatureBatch.features

    def flaky(self, j):
        if self.items[j].ticker == "AAPL":
            raise ValueError("corrupt chain")
        return real(self, j)

    class NoCalendar(SyntheticMarket):
        def earnings_dates(self, ticker, start, end):
            raise ConnectionError("calendar down")

    monkeypatch.setattr(analysis.FeatureBatch, "features", flaky)
    broken = NoCalendar(seed=7, weeklies=4, horizon_days=200)
    with Store(settings.database) as store:
        scan = collect(store, settings, broken, at(DAY, 21))
        result = analyse(store, settings, broken, scan, at(DAY, 21), detectors=[Always("a", 50.0)])
    assert result.features_computed == 2
    assert "AAPL: features: ValueError: corrupt chain" in result.errors
    assert sum("earnings calendar" in e for e in result.errors) == 3  # read before features
    assert result.alerts_generated == 2


def test_a_ticker_that_breaks_its_batch_is_computed_alone(tmp_path, market, monkeypatch) -> None:
    """When the batch's shared array passes fail, every ticker is computed alone: only the
    ticker that broke it is missing, and the others' features are as a batch gives them."""
    settings = make_settings(tmp_path)
    real = analysis.FeatureBatch.__init__

    def fragile(self, items, **kw):
        if any(item.ticker == "AAPL" for item in items):
            raise ValueError("corrupt chain")
        real(self, items, **kw)

    with Store(settings.database) as store:
        scan = collect(store, settings, market, at(DAY, 21))
        analyse(store, settings, market, scan, at(DAY, 21), detectors=[])
        together = dict(store.rows("SELECT ticker, features::VARCHAR FROM features"))
        monkeypatch.setattr(analysis.FeatureBatch, "__init__", fragile)
        result = analyse(store, settings, market, scan, at(DAY, 21), detectors=[])
        alone = dict(store.rows("SELECT ticker, features::VARCHAR FROM features"))
    assert result.features_computed == 2
    assert result.errors == ["AAPL: features: ValueError: corrupt chain"]
    assert len(together) == 3
    assert {t: alone[t] for t in together if t != "AAPL"} == {
        t: v for t, v in together.items() if t != "AAPL"
    }


def test_no_snapshots_is_a_quiet_no_op(tmp_path, market) -> None:
    settings = make_settings(tmp_path)
    with Store(settings.database) as store:
        result = analyse(store, settings, market, "empty", at(DAY, 21))
    assert (result.features_computed, result.alerts_generated, result.errors) == (0, 0, [])


def test_alerts_report_changes_and_the_edge_state_survives_restarts(tmp_path, market) -> None:
    """Holds Monday and Tuesday, clear Wednesday, holds Thursday: alerts Monday (once, though
    analysed twice that day) and Thursday, with a fresh process every session."""
    settings = make_settings(tmp_path, alert_cooldown_hours="0")
    monday, tuesday, wednesday, thursday = cal.trading_days_between(DAY, DAY + timedelta(days=3))
    stub = [OnSessions({monday, tuesday, thursday})]
    generated = {}
    for day, hours in ((monday, (15, 21)), (tuesday, (21,)), (wednesday, (21,)), (thursday, (21,))):
        for hour in hours:
            with Store(settings.database) as store:  # a restart before every cycle
                scan = collect(store, settings, market, at(day, hour))
                result = analyse(store, settings, market, scan, at(day, hour), detectors=stub)
                assert result.errors == []
                generated[(day, hour)] = result.alerts_generated
    assert generated == {(monday, 15): 3, (monday, 21): 0, (tuesday, 21): 0, (wednesday, 21): 0,
                         (thursday, 21): 3}  # fmt: skip
    with Store(settings.database) as store:
        alerts = store.rows("SELECT created_at, metrics, explanation FROM alerts ORDER BY 1")
        states = store.rows(
            "SELECT ticker, detector_name, armed, kind, fired_at, fired_value, quiet_value, "
            "seen_at, held, cleared_sessions FROM detector_state ORDER BY ticker"
        )
        again = analyse(store, settings, market, "again", at(thursday, 21), detectors=stub)
    assert again.alerts_generated == 0 and again.alerts_suppressed == {}
    assert [a[0] for a in alerts] == [at(monday, 15).replace(tzinfo=None)] * 3 + [
        at(thursday, 21).replace(tzinfo=None)
    ] * 3
    first, last = json.loads(alerts[0][1])["change"], json.loads(alerts[-1][1])["change"]
    assert first["text"] == "stub gauge 1 (first reading)" and first["trigger"] == "entered"
    assert (last["from"], last["to"], last["text"]) == (0.0, 1.0, "stub gauge 0 → 1")
    assert Explanation.model_validate_json(alerts[-1][2]).summary.endswith("(stub gauge 0 → 1)")
    assert [s[:2] for s in states] == [(t, "scripted") for t in sorted(TICKERS)]
    for _, _, armed, kind, fired_at, fired, quiet, seen, held, cleared in states:
        assert (armed, kind, fired, quiet, held, cleared) == (False, "", 1.0, 0.0, True, 0)
        assert fired_at == seen == at(thursday, 21).replace(tzinfo=None)


def test_a_failed_state_write_loses_the_alerts_too(tmp_path, market, monkeypatch) -> None:
    """Alerts and edge state are one transaction: an alert is never stored without the state
    that says it went out, so the next cycle alerts again instead of staying silent."""
    settings = make_settings(tmp_path)
    stub = [OnSessions({DAY})]
    with Store(settings.database) as store:
        scan = collect(store, settings, market, at(DAY, 15))
        monkeypatch.setattr(analysis, "WRITE_STATES", "INSERT INTO no_such_table VALUES (1)")
        failed = analyse(store, settings, market, scan, at(DAY, 15), detectors=stub)
        assert failed.alerts_generated == 0
        assert any(e.startswith("write alerts: ") for e in failed.errors)
        assert store.count("alerts") == 0 and store.count("detector_state") == 0
        monkeypatch.undo()
        scan = collect(store, settings, market, at(DAY, 21))
        result = analyse(store, settings, market, scan, at(DAY, 21), detectors=stub)
        assert result.alerts_generated == 3 and store.count("detector_state") == 3


def test_edge_states_round_trip_through_duckdb(tmp_path) -> None:
    """Every field comes back as written: NULLs, microseconds, aware UTC times."""
    seen = datetime(2026, 3, 2, 21, 1, 2, 345678, tzinfo=UTC)
    states = {
        ("SPY", "low_iv"): ArmState(seen_at=seen, quiet_value=12.5),
        ("SPY", "term_kink"): ArmState(
            armed=False,
            kind="contango",
            fired_at=seen - timedelta(days=3),
            fired_value=1.34,
            quiet_value=None,
            seen_at=seen,
            held=True,
            cleared_sessions=2,
        ),
    }
    with Store(tmp_path / "s.duckdb") as store:
        errors: list[str] = []
        settings = load_settings({"OCD_DATA_DIR": str(tmp_path)})
        assert analysis._write_alerts(store, [], states, errors, settings) == 0 and errors == []
        assert analysis._read_states(store, ["SPY", "QQQ"]) == states
        assert analysis._read_states(store, ["QQQ"]) == {}


TABLES = {
    "features": "SELECT * FROM features ORDER BY ticker, as_of",
    "alerts": "SELECT * EXCLUDE (scan_id) FROM alerts ORDER BY id",  # scan ids are random
    "detector_state": "SELECT * FROM detector_state ORDER BY ticker, detector_name",
    "daily_history": "SELECT * FROM daily_history ORDER BY ticker, day",
    "atm_iv": "SELECT ticker, as_of, atm_iv FROM chain_snapshots ORDER BY ticker, as_of",
}


def analysed_tables(tmp_path: Path, market: SyntheticMarket, **kwargs) -> dict[str, list]:
    """The tables analyse writes, after one collect and one analyse in a fresh data dir."""
    settings = make_settings(tmp_path)
    now = at(DAY, 21)
    with Store(settings.database) as store:
        scan_id = collect(store, settings, market, now)
        result = analyse(store, settings, market, scan_id, now, **kwargs)
        assert result.errors == [] and result.features_computed == len(TICKERS)
        return {name: store.rows(sql) for name, sql in TABLES.items()}


class RecordsProcess:
    """A stub detector that notes which process read each ticker (in a file: a child's memory
    is its own) and reads nothing."""

    name = "records_process"

    def __init__(self, path: Path) -> None:
        self.path = path

    def rule(self, config: AnalyticsConfig) -> EdgeRule:
        return EdgeRule(None, 1)

    def read(self, features: FeatureSet, context: DetectorContext) -> Reading | None:
        with self.path.open("a") as out:
            out.write(f"{context.ticker} {os.getpid()}\n")
        return None


def test_a_forked_share_of_the_tickers_gives_the_same_rows(tmp_path, market, monkeypatch) -> None:
    """Features of the later tickers computed in a forked child: every table row the same as
    when this process computes them all (float sums run in the same order either way)."""
    stub = Always("stub", {"AAPL": 60.0, "JPM": 70.0, "SPY": 80.0})
    alone = analysed_tables(tmp_path / "one", market, detectors=[*analysis.DETECTORS, stub])
    monkeypatch.setattr(analysis, "PARALLEL_MIN_TICKERS", 2)
    log = tmp_path / "processes.txt"
    detectors = [*analysis.DETECTORS, stub, RecordsProcess(log)]
    shared = analysed_tables(tmp_path / "two", market, detectors=detectors, workers=2)
    readers = dict(line.split() for line in log.read_text().splitlines())
    assert sorted(readers) == sorted(TICKERS)
    assert readers["AAPL"] == str(os.getpid()) and readers["SPY"] != str(os.getpid())
    assert len(alone["alerts"]) >= 3 and len(alone["detector_state"]) >= 3
    assert shared == alone


class DiesInChild:
    """A stub detector that kills the process it runs in unless that is the test's own: the
    forked child dies mid-stage."""

    name = "dies_in_child"

    def __init__(self) -> None:
        self.parent = os.getpid()

    def rule(self, config: AnalyticsConfig) -> EdgeRule:
        return EdgeRule(None, 1)

    def read(self, features: FeatureSet, context: DetectorContext) -> Reading | None:
        if os.getpid() != self.parent:
            os._exit(3)
        return None


def test_a_child_that_dies_leaves_its_tickers_to_this_process(
    tmp_path, market, monkeypatch
) -> None:
    alone = analysed_tables(tmp_path / "one", market, workers=1)
    monkeypatch.setattr(analysis, "PARALLEL_MIN_TICKERS", 2)
    detectors = [*analysis.DETECTORS, DiesInChild()]
    rescued = analysed_tables(tmp_path / "two", market, detectors=detectors, workers=2)
    assert rescued == alone
