"""The durable outbox on a real Redis: order, idempotence, restarts, bounds, audit log."""

from __future__ import annotations

import redis
from structlog.testing import capture_logs

from monitor.alerts.outbox import Outbox, append_alert_log
from monitor.metrics import Metrics
from monitor.window.keys import Keys
from tests.alerts.conftest import NotificationFactory

SINKS = ("log", "pagerduty", "alertmanager:am:9093")


def test_enqueue_reaches_every_sink_in_order(
    client: redis.Redis, keys: Keys, notify: NotificationFactory
) -> None:
    outbox = Outbox(client, keys, SINKS)
    first, second = notify("firing", at=1.0), notify("resolved", at=2.0)
    assert outbox.enqueue(first) == dict.fromkeys(SINKS, True)
    outbox.enqueue(second)
    for sink in SINKS:
        assert outbox.depth(sink) == 2
        head = outbox.head(sink)
        assert head is not None
        assert head.notification == first
        assert (head.attempts, head.next_at) == (0, 0.0)
    outbox.ack("log", first, now=10.0, open_op="add")
    assert outbox.head("log") is not None
    assert outbox.head("log").notification == second  # type: ignore[union-attr]
    assert outbox.depth("pagerduty") == 2  # the other sinks keep theirs


def test_enqueue_is_idempotent_per_id_while_queued_and_after_ack(
    client: redis.Redis, keys: Keys, notify: NotificationFactory
) -> None:
    outbox = Outbox(client, keys, SINKS)
    n = notify("firing")
    assert all(outbox.enqueue(n).values())
    assert not any(outbox.enqueue(n).values())
    assert outbox.depth("log") == 1
    outbox.ack("log", n, now=10.0, open_op="add")
    assert outbox.enqueue(n) == {"log": False, "pagerduty": False, "alertmanager:am:9093": False}
    assert outbox.depth("log") == 0


def test_attempts_and_open_identities_survive_a_restart(
    client: redis.Redis, keys: Keys, notify: NotificationFactory
) -> None:
    outbox = Outbox(client, keys, ["pagerduty"])
    n = notify("firing")
    outbox.enqueue(n)
    outbox.reschedule("pagerduty", n.id, attempts=3, next_at=1234.5)
    again = Outbox(redis.Redis(connection_pool=client.connection_pool), keys, ["pagerduty"])
    head = again.head("pagerduty")
    assert head is not None
    assert (head.notification, head.attempts, head.next_at) == (n, 3, 1234.5)
    assert not again.is_open("pagerduty", n.alert.identity)
    again.ack("pagerduty", n, now=2000.0, open_op="add")
    assert again.is_open("pagerduty", n.alert.identity)
    again.ack("pagerduty", notify("resolved"), now=2001.0, open_op="remove")
    assert not again.is_open("pagerduty", n.alert.identity)


def test_a_full_queue_drops_the_oldest_loudly(
    client: redis.Redis, keys: Keys, notify: NotificationFactory
) -> None:
    metrics = Metrics()
    outbox = Outbox(client, keys, ["log", "pagerduty"], max_len=3, metrics=metrics)
    items = [notify("firing", at=float(i), feature=f"f{i}") for i in range(5)]
    with capture_logs() as logs:
        for n in items:
            outbox.enqueue(n)
    assert outbox.depth("pagerduty") == 3
    head = outbox.head("pagerduty")
    assert head is not None
    assert head.notification == items[2]
    dropped = [e for e in logs if e["event"] == "outbox_overflow_dropped"]
    assert [(e["sink"], e["id"]) for e in dropped] == [
        ("log", items[0].id),
        ("pagerduty", items[0].id),
        ("log", items[1].id),
        ("pagerduty", items[1].id),
    ]
    assert all(e["log_level"] == "error" for e in dropped)
    sample = metrics.registry.get_sample_value(
        "driftmon_notifications_total", {"sink": "pagerduty", "outcome": "dropped_overflow"}
    )
    assert sample == 2.0
    log = client.xrange(keys.alerts_log)
    reasons = [(f[b"sink"], f[b"reason"], f[b"feature"]) for _, f in log]
    assert (b"pagerduty", b"dropped_overflow", b"f0") in reasons
    assert len(reasons) == 4


def test_alert_log_entries_carry_labels_and_values(
    client: redis.Redis, keys: Keys, notify: NotificationFactory
) -> None:
    alert = notify("firing").alert
    append_alert_log(client, keys, "firing", alert, reason=None, attempts=2)
    [(_, fields)] = client.xrange(keys.alerts_log)
    decoded = {k.decode(): v.decode() for k, v in fields.items()}
    assert decoded["event"] == "firing"
    assert decoded["alertname"] == "FeatureDrift"
    assert decoded["feature"] == "amount"
    assert float(decoded["value"]) == alert.value
    assert decoded["dedup_key"] == alert.dedup_key
    assert decoded["reason"] == ""
    assert decoded["attempts"] == "2"
    assert '"service": "driftmon"' in decoded["labels"]


def test_alert_log_is_capped(client: redis.Redis, keys: Keys, notify: NotificationFactory) -> None:
    alert = notify("firing").alert
    pipe = client.pipeline(transaction=False)
    for _ in range(12_000):
        pipe.xadd(keys.alerts_log, {"event": "x"})
    pipe.execute()
    append_alert_log(client, keys, "firing", alert)
    assert client.xlen(keys.alerts_log) < 11_000


def test_one_worker_holds_a_sink_lease(client: redis.Redis, keys: Keys) -> None:
    outbox = Outbox(client, keys, ["log"])
    assert outbox.claim("log", "a", 30)
    assert outbox.claim("log", "a", 30)  # extend our own
    assert not outbox.claim("log", "b", 30)
    outbox.release("log", "b")  # not ours: no effect
    assert not outbox.claim("log", "b", 30)
    outbox.release("log", "a")
    assert outbox.claim("log", "b", 30)
