"""PagerDuty sink against a local Events API v2 receiver (real HTTP, scripted answers)."""

from __future__ import annotations

import itertools
import random

import redis
from pydantic import SecretStr
from structlog.testing import capture_logs

from monitor.alerts.delivery import Delivery
from monitor.alerts.outbox import Outbox
from monitor.alerts.sinks.pagerduty import PagerDutySink
from monitor.clock import FakeClock
from monitor.metrics import Metrics
from monitor.settings import PagerDutySettings, Severity
from monitor.window.keys import Keys
from tests.alerts.conftest import NotificationFactory
from tests.alerts.receiver import Answer, Receiver, validate_pagerduty

ROUTING_KEY = "R0ut1ngK3yR0ut1ngK3yR0ut1ngK3y12"


def pd_sink(url: str, clock: FakeClock, min_severity: Severity = "warning") -> PagerDutySink:
    settings = PagerDutySettings(
        routing_key=SecretStr(ROUTING_KEY), min_severity=min_severity, url=url + "/v2/enqueue"
    )
    return PagerDutySink(settings, clock=clock)


def wire(
    client: redis.Redis, keys: Keys, clock: FakeClock, metrics: Metrics, sink: PagerDutySink
) -> tuple[Outbox, Delivery]:
    outbox = Outbox(client, keys, [sink.name], metrics=metrics)
    return outbox, Delivery(outbox, [sink], clock, metrics, rng=random.Random(3))


def outcome(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(
        "driftmon_notifications_total", {"sink": "pagerduty", "outcome": name}
    )
    return value or 0.0


def test_trigger_and_resolve_share_a_dedup_key_and_pass_validation(
    client: redis.Redis,
    keys: Keys,
    clock: FakeClock,
    metrics: Metrics,
    notify: NotificationFactory,
) -> None:
    with Receiver(validate=validate_pagerduty) as pd:
        sink = pd_sink(pd.url, clock)
        outbox, delivery = wire(client, keys, clock, metrics, sink)
        outbox.enqueue(notify("firing", at=1.0, severity="critical"))
        outbox.enqueue(notify("severity_changed", at=2.0, severity="warning"))
        outbox.enqueue(notify("resolved", at=3.0, severity="warning"))
        with capture_logs() as logs:
            assert delivery.run_once() == 3
        sink.close()
    assert pd.invalid == []
    trigger, retrigger, resolve = pd.accepted()
    assert [b["event_action"] for b in (trigger, retrigger, resolve)] == [
        "trigger",
        "trigger",
        "resolve",
    ]
    assert trigger["dedup_key"] == retrigger["dedup_key"] == resolve["dedup_key"]
    assert trigger["dedup_key"].startswith("driftmon-")
    assert trigger["routing_key"] == ROUTING_KEY
    payload = trigger["payload"]
    assert payload["severity"] == "critical"
    assert retrigger["payload"]["severity"] == "warning"
    assert payload["source"] == "driftmon/fraud"
    assert payload["component"] == "fraud"
    assert payload["group"] == "amount"
    assert payload["custom_details"] == {
        "value": 0.34,
        "threshold": 0.3,
        "window": "15m",
        "feature": "amount",
        "model": "fraud",
        "description": payload["custom_details"]["description"],
    }
    assert trigger["links"] == [
        {"href": "https://runbooks.example.org/driftmon/FeatureDrift.md", "text": "Runbook"}
    ]
    assert set(resolve) == {"routing_key", "event_action", "dedup_key"}
    assert ROUTING_KEY not in repr(logs)  # the secret never reaches the logs
    assert outcome(metrics, "delivered") == 3


def test_429_and_500_are_retried_400_is_not(
    client: redis.Redis,
    keys: Keys,
    clock: FakeClock,
    metrics: Metrics,
    notify: NotificationFactory,
) -> None:
    with Receiver(validate=validate_pagerduty) as pd:
        sink = pd_sink(pd.url, clock)
        outbox, delivery = wire(client, keys, clock, metrics, sink)
        pd.answer(Answer(429, headers={"Retry-After": "20"}), 500, 503, 202, 400)
        first = notify("firing", at=1.0)
        bad = notify("firing", at=2.0, feature="age")
        outbox.enqueue(first)
        outbox.enqueue(bad)
        delivery.run_once()  # 429
        clock.advance(19)
        delivery.run_once()  # Retry-After not yet over: nothing sent
        assert len(pd.received) == 1
        for _ in range(3):  # 500, 503, then 202 and (the next item) 400
            clock.advance(60)
            delivery.run_once()
        clock.advance(3600)
        delivery.run_once()  # the rejected one is not retried
        sink.close()
    assert [r.status for r in pd.received] == [429, 500, 503, 202, 400]
    assert [r.body["dedup_key"] for r in pd.received[:4]] == [first.alert.dedup_key] * 4
    assert pd.received[4].body["dedup_key"] == bad.alert.dedup_key
    assert outbox.depth(sink.name) == 0
    assert (outcome(metrics, "retry"), outcome(metrics, "delivered")) == (3, 1)
    assert outcome(metrics, "rejected") == 1


def test_only_alerts_at_min_severity_trigger(
    client: redis.Redis,
    keys: Keys,
    clock: FakeClock,
    metrics: Metrics,
    notify: NotificationFactory,
) -> None:
    with Receiver(validate=validate_pagerduty) as pd:
        sink = pd_sink(pd.url, clock, min_severity="critical")
        outbox, delivery = wire(client, keys, clock, metrics, sink)
        outbox.enqueue(notify("firing", at=1.0, severity="warning", feature="a"))
        outbox.enqueue(notify("resolved", at=2.0, severity="warning", feature="a"))
        outbox.enqueue(
            notify("firing", at=3.0, severity="info", feature="b", alertname="NoTraffic")
        )
        delivery.run_once()
        sink.close()
    assert pd.received == []
    assert outcome(metrics, "filtered") == 3


def test_receiver_down_then_up_every_notification_arrives_once_in_order(
    client: redis.Redis,
    keys: Keys,
    clock: FakeClock,
    metrics: Metrics,
    notify: NotificationFactory,
) -> None:
    pd = Receiver(validate=validate_pagerduty)  # not started: connection refused
    sink = pd_sink(pd.url, clock)
    outbox, delivery = wire(client, keys, clock, metrics, sink)
    sent = [
        notify("firing", at=1.0, feature="a"),
        notify("firing", at=2.0, feature="b"),
        notify("resolved", at=3.0, feature="a"),
        notify("firing", at=4.0, feature="c", severity="warning"),
        notify("resolved", at=5.0, feature="b"),
    ]
    for n in sent[:3]:
        outbox.enqueue(n)
    for _ in range(6):  # down for a while; more transitions arrive meanwhile
        delivery.run_once()
        clock.advance(30)
    outbox.enqueue(sent[3])
    outbox.enqueue(sent[4])
    assert outbox.depth(sink.name) == 5
    assert outcome(metrics, "retry") == 6
    with pd:
        clock.advance(60)
        delivery.run_once()
        clock.advance(60)
        delivery.run_once()  # nothing left
    sink.close()
    bodies = pd.accepted()
    assert len(pd.received) == 5
    got = [(b["event_action"], b["dedup_key"]) for b in bodies]
    want = [("resolve" if n.kind == "resolved" else "trigger", n.alert.dedup_key) for n in sent]
    assert got == want
    assert all(a != b for a, b in itertools.pairwise(got))
    assert outbox.depth(sink.name) == 0
