"""A writer killed at any step of delivery loses no alert and sends none twice, except between
the send and the recording of its acknowledgement: then that one alert goes again on the next
run, with the same ``webhook-id`` (at least once), which receivers de-duplicate."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from deliverykit import (
    SECRET,
    T0,
    Receiver,
    add_alerts,
    candidates,
    deliver_now,
    outbox,
    publish,
    webhook_settings,
)

from chalicelib.config import Settings
from chalicelib.storage.factory import make_storage
from chalicelib.write.delivery.message import webhook_id
from chalicelib.write.exporter import JSONExporter
from chalicelib.write.store import Store

STEPS = ("delivery.attempt", "delivery.sent", "delivery.recorded")
ROOT = Path(__file__).resolve().parents[2]


class SimulatedCrash(BaseException):
    """The process dies here: nothing after it runs (no ``except Exception`` catches it)."""


def crash_at(step: str, occurrence: int) -> Callable[[str], None]:
    seen: list[str] = []

    def hook(name: str) -> None:
        if name == step:
            seen.append(name)
            if len(seen) == occurrence:
                raise SimulatedCrash(name)

    return hook


@pytest.mark.parametrize("step", STEPS)
def test_a_kill_after_any_delivery_step_loses_nothing(
    settings: Settings, receiver: Receiver, step: str
) -> None:
    with Store(settings.database) as store:
        alerts = add_alerts(store, settings, candidates(3))
        publish(store, settings)
        with pytest.raises(SimulatedCrash):
            deliver_now(store, settings, T0, step=crash_at(step, 2))  # on the second alert
    sent_before_restart = len(receiver.requests)

    with Store(settings.database) as store:  # the restarted writer, once the backoff passed
        deliver_now(store, settings, T0 + timedelta(minutes=5))
        rows = outbox(store)
        # ... and any later run sends nothing more
        assert deliver_now(store, settings, T0 + timedelta(hours=2)).attempted == 0

    assert all(rows[(a, "webhook")]["status"] == "delivered" for a in alerts)
    assert all(r.verified for r in receiver.requests)
    expected = {webhook_id(a): 1 for a in alerts}
    if step == "delivery.sent":  # acknowledged, but the writer died before recording it
        expected[webhook_id(alerts[1])] = 2
    assert receiver.acks() == expected
    # The interrupted attempt counted: the second alert needed two attempts unless its
    # acknowledgement was already recorded.
    assert rows[(alerts[1], "webhook")]["attempts"] == (1 if step == "delivery.recorded" else 2)
    assert sent_before_restart == (1 if step == "delivery.attempt" else 2)


def test_an_interrupted_last_attempt_makes_the_row_dead(tmp_path: Path, receiver) -> None:
    settings = webhook_settings(tmp_path, receiver, alert_delivery_max_attempts="1")
    with Store(settings.database) as store:
        (alert,) = add_alerts(store, settings, candidates(1))
        publish(store, settings)
        with pytest.raises(SimulatedCrash):
            deliver_now(store, settings, T0, step=crash_at("delivery.attempt", 1))
        result = deliver_now(store, settings, T0 + timedelta(minutes=5))
        row = outbox(store)[(alert, "webhook")]
    assert (result.attempted, result.dead) == (0, 1)
    assert row["status"] == "dead"
    assert row["last_error"] == "attempt 1 did not finish (the writer stopped)"
    assert receiver.requests == []


class _DiesPublishing:
    """The export storage of a writer that dies just before it writes ``manifest.json``."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes, **kwargs):
        if key == "manifest.json":
            raise SimulatedCrash(key)
        return self.inner.put(key, data, **kwargs)


def test_an_export_killed_before_its_manifest_releases_nothing(
    settings: Settings, store: Store, receiver: Receiver
) -> None:
    publish(store, settings)  # a generation without the alert
    (alert,) = add_alerts(store, settings, candidates(1))
    with pytest.raises(SimulatedCrash):
        JSONExporter(store, _DiesPublishing(make_storage(settings)), settings).export_all()
    # delivery.json naming the alert was written, but no manifest vouches for it
    assert deliver_now(store, settings, T0).attempted == 0
    publish(store, settings)
    assert deliver_now(store, settings, T0).delivered == 1
    assert receiver.acks() == {webhook_id(alert): 1}


KILLED_WRITER = """
import os, signal, sys
from datetime import datetime
from chalicelib.config import load_settings
from chalicelib.storage.factory import make_storage
from chalicelib.write.delivery.deliverer import deliver
from chalicelib.write.store import Store

def step(name):
    if name == "delivery.sent":  # acknowledged by the receiver, not yet recorded
        os.kill(os.getpid(), signal.SIGKILL)

settings = load_settings()
with Store(settings.database) as store:
    deliver(store, make_storage(settings), settings, datetime.fromisoformat(sys.argv[1]),
            step=step)
"""


def test_a_sigkilled_writer_sends_that_alert_again_with_the_same_webhook_id(
    tmp_path: Path, receiver: Receiver
) -> None:
    settings = webhook_settings(tmp_path / "data", receiver)
    with Store(settings.database) as store:
        alerts = add_alerts(store, settings, candidates(3))
        publish(store, settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCD_")}
    env.update(OCD_DATA_DIR=str(tmp_path / "data"), OCD_ALERT_WEBHOOK_URL=receiver.url,
               OCD_ALERT_WEBHOOK_SECRET=SECRET, OCD_LOG_LEVEL="WARNING",
               PYTHONPATH=str(ROOT))  # fmt: skip
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, T0.isoformat()], env=env,
                            cwd=ROOT, capture_output=True, timeout=60)  # fmt: skip
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert receiver.acks() == {webhook_id(alerts[0]): 1}

    with Store(settings.database) as store:  # DuckDB recovers what the killed writer committed
        row = outbox(store)[(alerts[0], "webhook")]
        assert (row["status"], row["attempts"]) == ("pending", 1)
        deliver_now(store, settings, T0 + timedelta(minutes=5))
        assert all(r["status"] == "delivered" for r in outbox(store).values())
    counts = receiver.acks()
    assert counts == {webhook_id(alerts[0]): 2, webhook_id(alerts[1]): 1,
                      webhook_id(alerts[2]): 1}  # fmt: skip
    first, again = [r for r in receiver.requests if r.webhook_id == webhook_id(alerts[0])]
    assert first.body == again.body and first.verified and again.verified
