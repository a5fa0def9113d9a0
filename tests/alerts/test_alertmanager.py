"""Alertmanager sink: payload units (mock transport) and a real Alertmanager end to end."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import httpx
import redis

from monitor.alerts.delivery import Delivery
from monitor.alerts.outbox import Outbox
from monitor.alerts.sinks.alertmanager import AlertmanagerResender, AlertmanagerSink
from monitor.clock import FakeClock, SystemClock
from monitor.metrics import Metrics
from monitor.window.keys import Keys
from tests.alerts.alertmanager import AlertmanagerServer
from tests.alerts.conftest import NotificationFactory, make_alert
from tests.alerts.receiver import Received, Receiver


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Recorder:
    """An httpx transport that records JSON bodies and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.bodies: list[Any] = []
        self.urls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        self.bodies.append(json.loads(request.content))
        return httpx.Response(self.status)


def mock_sink(clock: FakeClock, recorder: Recorder) -> AlertmanagerSink:
    return AlertmanagerSink(
        "http://am-0:9093/",
        clock=clock,
        resend_seconds=45,
        generator_url="http://driftmon:9475/state",
        transport=httpx.MockTransport(recorder),
    )


def test_firing_ends_ahead_of_the_resend_and_resolve_ends_at_the_resolve_time(
    clock: FakeClock, notify: NotificationFactory
) -> None:
    recorder = Recorder()
    sink = mock_sink(clock, recorder)
    assert sink.name == "alertmanager:am-0:9093"
    clock.advance(100)
    assert sink.send(notify("firing")).outcome == "delivered"
    assert sink.send(notify("resolved", at=clock.now() - 7)).outcome == "delivered"
    [firing], [resolved] = recorder.bodies
    assert recorder.urls[0] == "http://am-0:9093/api/v2/alerts"
    assert epoch(firing["endsAt"]) == clock.now() + 4 * 45
    assert epoch(firing["startsAt"]) == make_alert().starts_at
    assert firing["generatorURL"] == "http://driftmon:9475/state"
    assert firing["labels"] == {
        "alertname": "FeatureDrift",
        "severity": "critical",
        "model": "fraud",
        "feature": "amount",
        "window": "15m",
        "service": "driftmon",
    }
    assert firing["annotations"]["runbook_url"].endswith("/FeatureDrift.md")
    assert epoch(resolved["endsAt"]) == clock.now() - 7
    assert resolved["labels"] == firing["labels"]


def test_a_severity_change_resolves_the_old_severity_labelset(
    clock: FakeClock, notify: NotificationFactory
) -> None:
    recorder = Recorder()
    sink = mock_sink(clock, recorder)
    sink.send(notify("severity_changed", severity="critical", previous_severity="warning"))
    [[new, old]] = recorder.bodies
    assert (new["labels"]["severity"], old["labels"]["severity"]) == ("critical", "warning")
    assert epoch(old["endsAt"]) == clock.now()
    assert epoch(new["endsAt"]) > clock.now()


def test_http_outcomes(clock: FakeClock, notify: NotificationFactory) -> None:
    for status, expected in [(200, "delivered"), (400, "rejected"), (503, "retry")]:
        sink = mock_sink(clock, Recorder(status))
        assert sink.send(notify("firing")).outcome == expected

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    down = AlertmanagerSink(
        "http://am:9093", clock=clock, resend_seconds=45, transport=httpx.MockTransport(refuse)
    )
    result = down.send(notify("firing"))
    assert result.outcome == "retry"
    assert "ConnectError" in result.detail


def test_resender_posts_every_firing_alert_each_period(clock: FakeClock, metrics: Metrics) -> None:
    ok, failing = Recorder(), Recorder(500)
    sinks = [
        AlertmanagerSink(
            f"http://am-{i}:9093", clock=clock, resend_seconds=30, transport=httpx.MockTransport(r)
        )
        for i, r in enumerate((ok, failing))
    ]
    firing = [make_alert(feature="a"), make_alert(feature="b")]
    resender = AlertmanagerResender(
        sinks, lambda: firing, clock=clock, metrics=metrics, interval=30
    )
    assert not resender.run_once()  # not due yet
    clock.advance(30)
    assert resender.run_once()
    clock.advance(10)
    assert not resender.run_once()
    clock.advance(20)
    assert resender.run_once()
    assert len(ok.bodies) == len(failing.bodies) == 2  # a failed re-send waits for the next
    assert [a["labels"]["feature"] for a in ok.bodies[1]] == ["a", "b"]
    assert epoch(ok.bodies[1][0]["endsAt"]) == clock.now() + 120

    def sample(sink: str, outcome: str) -> float | None:
        return metrics.registry.get_sample_value(
            "driftmon_notifications_total", {"sink": sink, "outcome": outcome}
        )

    assert sample("alertmanager:am-0:9093", "resent") == 2
    assert sample("alertmanager:am-1:9093", "resend_failed") == 2


def _am_alerts(received: list[Received], status: str) -> list[dict[str, Any]]:
    return [
        alert
        for r in received
        if r.path == "/am"
        for alert in r.body["alerts"]
        if alert["status"] == status
    ]


def test_real_alertmanager_delivers_firing_then_resolved_to_its_webhook(
    alertmanager: AlertmanagerServer,
    receiver: Receiver,
    client: redis.Redis,
    keys: Keys,
    metrics: Metrics,
    notify: NotificationFactory,
) -> None:
    clock = SystemClock()
    sink = AlertmanagerSink(alertmanager.url, clock=clock, resend_seconds=45)
    outbox = Outbox(client, keys, [sink.name])
    delivery = Delivery(outbox, [sink], clock, metrics)
    now = clock.now()
    firing = notify("firing", at=now, starts_at=now - 5)
    outbox.enqueue(firing)
    sent = time.monotonic()
    assert delivery.run_once() == 1
    assert receiver.wait_for(lambda got: bool(_am_alerts(got, "firing")), timeout=10)
    fire_latency = receiver.received[-1].at - sent
    [alert] = _am_alerts(receiver.received, "firing")
    assert alert["labels"] == {
        "alertname": "FeatureDrift",
        "severity": "critical",
        "model": "fraud",
        "feature": "amount",
        "window": "15m",
        "service": "driftmon",
    }
    assert alert["annotations"]["runbook_url"] == (
        "https://runbooks.example.org/driftmon/FeatureDrift.md"
    )
    assert alert["annotations"]["value"] == "0.34"
    [held] = alertmanager.alerts()
    assert epoch(str(held["endsAt"])) > clock.now() + 170  # ~ now + 4 x 45 s

    resolved_at = clock.now()
    outbox.enqueue(notify("resolved", at=resolved_at, starts_at=now - 5))
    sent = time.monotonic()
    assert delivery.run_once() == 1
    assert receiver.wait_for(lambda got: bool(_am_alerts(got, "resolved")), timeout=10)
    resolve_latency = receiver.received[-1].at - sent
    [gone] = _am_alerts(receiver.received, "resolved")
    assert gone["labels"] == alert["labels"]
    assert abs(epoch(gone["endsAt"]) - resolved_at) < 0.01
    sink.close()
    print(f"alertmanager->webhook: firing {fire_latency:.2f}s, resolved {resolve_latency:.2f}s")


def test_real_alertmanager_severity_change_resolves_the_old_severity(
    alertmanager: AlertmanagerServer, receiver: Receiver, notify: NotificationFactory
) -> None:
    clock = SystemClock()
    sink = AlertmanagerSink(alertmanager.url, clock=clock, resend_seconds=45)
    now = clock.now()
    assert sink.send(notify("firing", at=now, severity="warning", starts_at=now - 5)).outcome == (
        "delivered"
    )
    assert receiver.wait_for(lambda got: bool(_am_alerts(got, "firing")), timeout=10)
    changed = notify(
        "severity_changed", at=now + 1, severity="critical", previous_severity="warning"
    )
    assert sink.send(changed).outcome == "delivered"

    def both(got: list[Received]) -> bool:
        firing = {a["labels"]["severity"] for a in _am_alerts(got, "firing")}
        resolved = {a["labels"]["severity"] for a in _am_alerts(got, "resolved")}
        return "critical" in firing and "warning" in resolved

    assert receiver.wait_for(both, timeout=10)
    # the API lists unresolved alerts only: the warning labelset is gone
    held = {a["labels"]["severity"]: a["status"]["state"] for a in alertmanager.alerts()}  # type: ignore[index]
    assert held == {"critical": "active"}
    sink.close()
