"""Webhook and log sinks, HTTP outcome rules, and building sinks from settings."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from monitor.alerts.sinks import LogSink, build_sinks
from monitor.alerts.sinks.base import result_of, retry_after_seconds
from monitor.alerts.sinks.webhook import WebhookSink
from monitor.clock import FakeClock
from monitor.errors import ConfigError
from monitor.settings import AlertingSettings, PagerDutySettings, WebhookSettings
from tests.alerts.conftest import NotificationFactory
from tests.alerts.receiver import Receiver


def test_webhook_posts_the_documented_json(
    clock: FakeClock, receiver: Receiver, notify: NotificationFactory
) -> None:
    sink = WebhookSink(WebhookSettings(url=receiver.url + "/hook?token=s3cret"), clock=clock)
    n = notify("severity_changed", at=1_795_311_060.0, previous_severity="warning")
    assert sink.send(n).outcome == "delivered"
    sink.close()
    [body] = receiver.accepted()
    assert body == {
        "version": 1,
        "id": n.id,
        "kind": "severity_changed",
        "status": "firing",
        "identity": "FeatureDrift/fraud/amount/15m",
        "dedup_key": n.alert.dedup_key,
        "created_at": "2026-11-22T01:31:00.000Z",
        "starts_at": "2026-11-22T01:30:00.000Z",
        "ends_at": None,
        "previous_severity": "warning",
        "labels": n.alert.labels(),
        "annotations": n.alert.annotations(),
        "value": 0.34,
        "threshold": 0.3,
    }
    assert receiver.received[0].path == "/hook?token=s3cret"
    assert "s3cret" not in sink.name
    assert sink.name.startswith("webhook:127.0.0.1:")


def test_webhook_min_severity_and_outcomes(
    clock: FakeClock, receiver: Receiver, notify: NotificationFactory
) -> None:
    sink = WebhookSink(WebhookSettings(url=receiver.url, min_severity="warning"), clock=clock)
    assert not sink.wants(notify("firing", severity="info"), sent_firing=False)
    assert sink.wants(notify("firing", severity="warning"), sent_firing=False)
    assert not sink.wants(notify("resolved", severity="info"), sent_firing=False)
    assert sink.wants(notify("resolved", severity="info"), sent_firing=True)
    receiver.answer(500, 404, 400, 204)
    assert [sink.send(notify()).outcome for _ in range(4)] == [
        "retry",
        "retry",
        "rejected",
        "delivered",
    ]
    receiver.stop()
    assert sink.send(notify()).outcome == "retry"  # connection refused
    sink.close()


def test_retry_after_seconds_and_http_dates(clock: FakeClock) -> None:
    def response(value: str) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value})

    assert retry_after_seconds(response("12"), clock) == 12.0
    assert retry_after_seconds(response("-3"), clock) == 0.0
    assert retry_after_seconds(response("99999"), clock) == 3600.0
    assert retry_after_seconds(response("soon"), clock) is None
    # FakeClock starts at 2026-11-22T01:30:00Z
    assert retry_after_seconds(response("Sun, 22 Nov 2026 01:30:30 GMT"), clock) == 30.0
    result = result_of(response("5"), clock)
    assert (result.outcome, result.retry_after) == ("retry", 5.0)


def test_log_sink_writes_one_line_per_notification(notify: NotificationFactory) -> None:
    sink = LogSink()
    with capture_logs() as logs:
        assert sink.send(notify("firing")).outcome == "delivered"
        assert sink.send(notify("resolved")).outcome == "delivered"
    assert [(e["event"], e["log_level"], e["status"]) for e in logs] == [
        ("alert_notification", "warning", "firing"),
        ("alert_notification", "info", "resolved"),
    ]
    assert logs[0]["runbook_url"].endswith("FeatureDrift.md")
    assert logs[0]["feature"] == "amount"


def test_build_sinks_names_every_queue(clock: FakeClock) -> None:
    settings = AlertingSettings(
        alertmanager_urls=["http://am-0:9093", "http://am-1:9093/"],
        pagerduty=PagerDutySettings(routing_key=SecretStr("k" * 32)),
        webhooks=[WebhookSettings(url="https://hooks.example.org/T1/B2/secret")],
    )
    names = [sink.name for sink in build_sinks(settings, clock=clock)]
    assert names[:4] == ["log", "alertmanager:am-0:9093", "alertmanager:am-1:9093", "pagerduty"]
    assert names[4].startswith("webhook:hooks.example.org:")
    assert "secret" not in names[4]
    twice = AlertingSettings(alertmanager_urls=["http://am:9093", "http://am:9093/"])
    with pytest.raises(ConfigError, match="alertmanager:am:9093"):
        build_sinks(twice, clock=clock)
