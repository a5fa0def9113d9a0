"""The delivery worker on a real Redis with fake sinks: order, backoff, isolation, restarts."""

from __future__ import annotations

import random
import time

import pytest
import redis
from structlog.testing import capture_logs

from monitor.alerts.delivery import Delivery, backoff_seconds
from monitor.alerts.model import DeliveryResult
from monitor.alerts.outbox import Outbox
from monitor.clock import FakeClock, SystemClock
from monitor.metrics import Metrics
from monitor.window.keys import Keys
from tests.alerts.conftest import NotificationFactory
from tests.alerts.fakes import FakeSink


def count(metrics: Metrics, sink: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "driftmon_notifications_total", {"sink": sink, "outcome": outcome}
    )
    return value or 0.0


def make(
    client: redis.Redis,
    keys: Keys,
    clock: FakeClock,
    metrics: Metrics,
    *sinks: FakeSink,
    **kwargs: object,
) -> tuple[Outbox, Delivery]:
    outbox = Outbox(client, keys, [s.name for s in sinks], metrics=metrics)
    delivery = Delivery(outbox, sinks, clock, metrics, rng=random.Random(7), **kwargs)  # type: ignore[arg-type]
    return outbox, delivery


def test_backoff_doubles_from_one_to_sixty_seconds_with_jitter() -> None:
    rng = random.Random(1)
    for attempts, base in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (30, 60)]:
        delays = [backoff_seconds(attempts, rng) for _ in range(200)]
        assert min(delays) >= max(1.0, base * 0.8) - 1e-9
        assert max(delays) <= min(60.0, base * 1.2) + 1e-9
        if 1 < base < 60:
            assert max(delays) - min(delays) > base * 0.2  # jittered
    assert backoff_seconds(1, rng, retry_after=120.0) == 120.0


def test_delivers_in_order_and_records_outcomes(
    client: redis.Redis,
    keys: Keys,
    clock: FakeClock,
    metrics: Metrics,
    notify: NotificationFactory,
) -> None:
    sink = FakeSink("log")
    outbox, delivery = make(client, keys, clock, metrics, sink)
    items = [notify("firing", at=1.0), notify("resolved", at=2.0), notify("firing", at=3.0)]
    for n in items:
        outbox.enqueue(n)
    assert delivery.run_once() == 3
    assert sink.delivered == items
    assert outbox.depth("log") == 0
    assert count(metrics, "log", "delivered") == 3
    assert metrics.registry.get_sample_value("driftmon_outbox_depth", {"sink": "log"}) == 0
    events = [f[b"event"] for _, f in client.xrange(keys.alerts_log)]
    assert events == [b"notified"] * 3
    assert delivery.run_once() == 0
    assert len(sink.attempts) == 3  # never delivered twice


def test_a_failing_sink_pauses_only_its_own_queue_with_growing_backoff(
    client: redis.Redis,
    keys: Keys,
    clock: FakeClock,
    metrics: Metrics,
    notify: NotificationFactory,
) -> None:
    good, bad = FakeSink("good"), FakeSink("bad", default="retry")
    outbox, delivery = make(client, keys, clock, metrics, good, bad)
    first, second = notify("firing", at=1.0), notify("resolved", at=2.0)
    outbox.enqueue(first)
    outbox.enqueue(second)
    delivery.run_once()
    assert good.delivered == [first, second]
    assert bad.attempts == [first]  # the resolve waits behind its firing
    waits = []
    for _ in range(8):
        head = outbox.head("bad")
        assert head is not None
        waits.append(head.next_at - clock.now())
        delivery.run_once()  # not due yet: no attempt
        assert len(bad.attempts) == head.attempts
        clock.advance(waits[-1])
        delivery.run_once()
    for wait, base in zip(waits, [1, 2, 4, 8, 16, 32, 60, 60], strict=True):
        assert max(1.0, base * 0.8) <= wait <= min(60.0, base * 1.2)
    assert count(metrics, "bad", "retry") == 9
    # a first failure is audited once, not every retry
    failed = [f for _, f in client.xrange(keys.alerts_log) if f[b"event"] == b"delivery_failed"]
    assert len(failed) == 1
    assert failed[0][b"final"] == b"false"
    bad.default = "delivered"
    clock.advance(60)
    delivery.run_once()
    assert bad.delivered == [first, second]


def test_retry_after_is_honoured(
    client: redis.Redis,
    keys: Keys,
    clock: FakeClock,
    metrics: Metrics,
    notify: NotificationFactory,
) -> None:
    sink = FakeSink("pagerduty")
    sink.answer(DeliveryResult("retry", detail="429", retry_after=30.0))
    outbox, delivery = make(client, keys, clock, metrics, sink)
    outbox.enqueue(notify("firing"))
    delivery.run_once()
    clock.advance(29)
    delivery.run_once()
    assert len(sink.attempts) == 1
    clock.advance(1.5)
    delivery.run_once()
    assert len(sink.delivered) == 1


def test_a_rejected_notification_is_dropped_logged_and_audited(
    client: redis.Redis,
    keys: Keys,
    clock: FakeClock,
    metrics: Metrics,
    notify: NotificationFactory,
) -> None:
    sink = FakeSink("pagerduty")
    sink.answer(DeliveryResult("rejected", detail="400: bad payload"))
    outbox, delivery = make(client, keys, clock, metrics, sink)
    outbox.enqueue(notify("firing", at=1.0))
    outbox.enqueue(notify("firing", at=2.0, feature="age"))
    with capture_logs() as logs:
        assert delivery.run_once() == 2
    assert len(sink.attempts) == 2
    assert count(metrics, "pagerduty", "rejected") == 1
    assert count(metrics, "pagerduty", "delivered") == 1
    [rejected] = [e for e in logs if e["event"] == "notification_rejected"]
    assert rejected["log_level"] == "error"
    assert "400" in rejected["detail"]
    events = [(f[b"event"], f.get(b"final")) for _, f in client.xrange(keys.alerts_log)]
    assert events == [(b"delivery_failed", b"true"), (b"notified", None)]


def test_min_severity_filters_firing_but_resolves_what_was_sent(
    client: redis.Redis,
    keys: Keys,
    clock: FakeClock,
    metrics: Metrics,
    notify: NotificationFactory,
) -> None:
    sink = FakeSink("pagerduty", min_severity="critical")
    outbox, delivery = make(client, keys, clock, metrics, sink)
    sequence = [
        notify("firing", at=1.0, feature="a", severity="warning"),  # below: filtered
        notify("resolved", at=2.0, feature="a", severity="warning"),  # never sent: filtered
        notify("firing", at=3.0, feature="b", severity="critical"),  # sent
        notify("severity_changed", at=4.0, feature="b", severity="warning"),  # open: sent
        notify("resolved", at=5.0, feature="b", severity="warning"),  # open: sent
    ]
    for n in sequence:
        outbox.enqueue(n)
    assert delivery.run_once() == 5
    assert sink.delivered == sequence[2:]
    assert count(metrics, "pagerduty", "filtered") == 2
    assert not outbox.is_open("pagerduty", sequence[2].alert.identity)


def test_a_crash_between_send_and_ack_redelivers_once_after_restart(
    client: redis.Redis,
    keys: Keys,
    clock: FakeClock,
    metrics: Metrics,
    notify: NotificationFactory,
) -> None:
    first, second = notify("firing", at=1.0), notify("resolved", at=2.0)
    outbox, _ = make(client, keys, clock, metrics, FakeSink("webhook"))
    outbox.enqueue(first)
    outbox.enqueue(second)
    # the old process read the head and sent it, then died before acknowledging
    head = outbox.head("webhook")
    assert head is not None
    FakeSink("webhook").send(head.notification)
    # a new process: new client, outbox, worker and sink over the same Redis
    restarted = redis.Redis(connection_pool=client.connection_pool)
    sink = FakeSink("webhook")
    _, delivery = make(restarted, keys, clock, Metrics(), sink, owner="new-process")
    assert delivery.run_once() == 2
    assert sink.delivered == [first, second]
    # and once acknowledged, a third process delivers nothing again
    again = FakeSink("webhook")
    _, third = make(restarted, keys, clock, Metrics(), again, owner="third")
    assert third.run_once() == 0
    assert again.attempts == []


def test_a_second_replica_does_not_drain_a_leased_sink(
    client: redis.Redis,
    keys: Keys,
    clock: FakeClock,
    metrics: Metrics,
    notify: NotificationFactory,
) -> None:
    one, two = FakeSink("log"), FakeSink("log")
    outbox, first = make(client, keys, clock, metrics, one, owner="replica-1")
    _, second = make(client, keys, clock, metrics, two, owner="replica-2")
    outbox.enqueue(notify("firing", at=1.0))
    assert first.run_once() == 1
    outbox.enqueue(notify("firing", at=2.0))
    assert second.run_once() == 0
    first.stop()  # releases the lease
    assert second.run_once() == 1
    assert (len(one.attempts), len(two.attempts)) == (1, 1)


def test_a_sink_that_raises_keeps_its_item_queued(
    client: redis.Redis,
    keys: Keys,
    clock: FakeClock,
    metrics: Metrics,
    notify: NotificationFactory,
) -> None:
    sink = FakeSink("webhook")
    outbox, delivery = make(client, keys, clock, metrics, sink)

    def boom(_: object) -> DeliveryResult:
        raise RuntimeError("bug in a sink")

    sink.send = boom  # type: ignore[method-assign]
    outbox.enqueue(notify("firing"))
    with capture_logs():
        assert delivery.run_once() == 0
    assert outbox.depth("webhook") == 1
    assert count(metrics, "webhook", "retry") == 1


def test_threads_deliver_soon_after_enqueue_and_stop_cleanly(
    client: redis.Redis, keys: Keys, metrics: Metrics, notify: NotificationFactory
) -> None:
    fast, slow = FakeSink("fast"), FakeSink("slow", default="retry")
    outbox = Outbox(client, keys, ["fast", "slow"])
    delivery = Delivery(outbox, [fast, slow], SystemClock(), metrics, poll_seconds=0.05)
    delivery.start()
    try:
        started = time.monotonic()
        outbox.enqueue(notify("firing"))
        delivery.wake()
        deadline = started + 5
        while not fast.delivered and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fast.delivered
        assert time.monotonic() - started < 1.0
    finally:
        delivery.stop()
    assert outbox.depth("slow") == 1
    assert client.get(keys.outbox("fast", "lease")) is None


def test_sinks_need_an_outbox_queue(client: redis.Redis, keys: Keys, metrics: Metrics) -> None:
    outbox = Outbox(client, keys, ["log"])
    with pytest.raises(ValueError, match="pagerduty"):
        Delivery(outbox, [FakeSink("pagerduty")], FakeClock(), metrics)


def test_the_threads_survive_redis_going_away_and_coming_back(
    metrics: Metrics, notify: NotificationFactory
) -> None:
    from tests.services import RedisServer  # noqa: PLC0415 - only this test owns a server

    with RedisServer() as server:
        conn = server.client(socket_timeout=0.5, socket_connect_timeout=0.5)
        sink = FakeSink("log")
        outbox = Outbox(conn, Keys("t-down"), ["log"])
        delivery = Delivery(outbox, [sink], SystemClock(), metrics, poll_seconds=0.02)
        delivery.start()
        try:
            server.kill()
            with capture_logs() as logs:
                deadline = time.monotonic() + 5
                while not any(e["event"] == "outbox_unavailable" for e in logs):
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
            server.restart()  # no persistence: an empty Redis on the same port
            outbox.enqueue(notify("firing"))
            deadline = time.monotonic() + 10  # the loop backs off 1-2 s after failures
            while not sink.delivered:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        finally:
            delivery.stop()
            conn.close()
