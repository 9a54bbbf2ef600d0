"""The webhook secret and the Slack URL (its credential) appear in no log line, no export, no
/health body and no outbox row, through successes and every kind of failure."""

from __future__ import annotations

import gzip
import io
import logging
from datetime import timedelta
from pathlib import Path

import orjson
from deliverykit import SECRET, T0, add_alerts, candidates, deliver_now, publish, settings_for

from chalicelib.logs import JsonFormatter
from chalicelib.read.reader import ExportReader
from chalicelib.read.service import health_report
from chalicelib.storage.factory import make_storage
from chalicelib.write.store import Store

SLACK_TOKEN = "tok-HUNTER2SLACK"


def test_no_secret_leaves_the_writer(tmp_path: Path, make_receiver) -> None:
    webhook = make_receiver({1: "500", 2: "drop"})
    slack = make_receiver({1: "hang", 2: "503"}, secret=None)
    slack_url = slack.url.split("/hooks")[0] + f"/services/T0/B0/{SLACK_TOKEN}"
    settings = settings_for(tmp_path, alert_webhook_url=webhook.url, alert_webhook_secret=SECRET,
                            alert_slack_webhook_url=slack_url,
                            alert_delivery_timeout_seconds="0.4")  # fmt: skip
    secrets = (SECRET, SECRET.removeprefix("whsec_"), SLACK_TOKEN)
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("ocd")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with Store(settings.database) as store:
            add_alerts(store, settings, candidates(2))
            for minutes in (0, 5, 10, 15):
                publish(store, settings)
                deliver_now(store, settings, T0 + timedelta(minutes=minutes))
            outbox_text = orjson.dumps(store.rows("SELECT * FROM delivery_outbox"), default=str)
            assert store.count("delivery_outbox", "WHERE status = 'delivered'") == 4
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)

    assert [r.path for r in slack.requests][:1] == [f"/services/T0/B0/{SLACK_TOKEN}"]
    log = lines.getvalue()
    assert "delivery_failed" in log and "delivered" in log
    health = orjson.dumps(health_report(ExportReader(make_storage(settings)), settings))
    assert b'"sink":"slack"' in health
    exported = []
    for path in settings.exports.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            exported.append(gzip.decompress(data) if path.suffix == ".gz" else data)
    assert len(exported) > 10
    for secret in secrets:
        assert secret not in log
        assert secret.encode() not in outbox_text
        assert secret.encode() not in health
        assert not [data for data in exported if secret.encode() in data]
