"""The Slack-compatible sink: a short incoming-webhook message, at most one a second."""

from __future__ import annotations

from pathlib import Path

from deliverykit import T0, add_alerts, candidates, deliver_now, outbox, publish, settings_for

from chalicelib.write.store import Store


class Clock:
    """A monotonic clock that only sleeping moves: the pacing the deliverer asks for, exactly."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_a_short_formatted_message_per_alert_at_most_one_a_second(
    tmp_path: Path, make_receiver
) -> None:
    slack = make_receiver(secret=None)
    settings = settings_for(tmp_path, alert_slack_webhook_url=slack.url,
                            public_url="https://ocd.example.com")  # fmt: skip
    clock = Clock()
    with Store(settings.database) as store:
        alerts = add_alerts(store, settings, candidates(3))
        publish(store, settings)
        result = deliver_now(store, settings, T0, monotonic=clock.monotonic, sleep=clock.sleep)
        rows = outbox(store)
    assert result.delivered == 3
    assert clock.sleeps == [1.0, 1.0]  # three sends, a second apart
    assert [rows[(a, "slack")]["receipt"] for a in alerts] == ["HTTP 200"] * 3
    first = slack.requests[0]
    assert first.headers["content-type"] == "application/json"
    assert "webhook-signature" not in first.headers  # Slack's URL is its credential
    assert first.json == {
        "text": "*SPY* rich_premium, score 70.0\n"
        "SPY rich_premium &amp; &lt;friends&gt;\n"  # Slack's escaping of & < >
        f"<https://ocd.example.com/#/alerts/{alerts[0]}|Open in the dashboard>"
    }
    assert [r.json["text"].split(",")[0] for r in slack.requests] == [
        "*SPY* rich_premium", "*QQQ* rich_premium", "*AAPL* rich_premium"]  # fmt: skip


def test_without_a_public_url_the_message_has_no_link(tmp_path: Path, make_receiver) -> None:
    slack = make_receiver(secret=None)
    settings = settings_for(tmp_path, alert_slack_webhook_url=slack.url)
    with Store(settings.database) as store:
        add_alerts(store, settings, candidates(1))
        publish(store, settings)
        deliver_now(store, settings, T0)
    assert slack.requests[0].json["text"].count("\n") == 1
    assert "<http" not in slack.requests[0].json["text"]
