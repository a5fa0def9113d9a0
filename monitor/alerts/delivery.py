"""Delivery worker: drains each sink's durable outbox queue into the sink. I/O edge.

Pipeline position: evaluate -> outbox -> **delivery** -> sinks (Alertmanager, PagerDuty,
webhook, log).

For each sink, in queue order, while the head is due:
1. the sink may decline it (`wants`: below its min_severity, or a resolve of an alert it
   was never sent) -> acknowledged, counted `filtered`;
2. one attempt (`send`):
   - delivered -> acknowledged (removed + marked seen in one Lua step), counted
     `delivered`, audit log `notified`;
   - rejected  -> acknowledged, counted `rejected`, logged at error level, audit log
     `delivery_failed` (final);
   - retry     -> stays at the head with attempts+1 and a next-attempt time; counted
     `retry`; the sink's queue pauses (later items wait: a resolve never overtakes its
     firing) while every other sink carries on. Backoff: 1 s doubling to 60 s, ±20 %
     jitter, at least the sink's `Retry-After`. Never given up: a sink that is down
     keeps its queue (bounded by the outbox cap) until it is back.
Attempts and next-attempt times live in Redis, so backoff and queues survive a restart.
Across replicas one worker drains a sink at a time (a Redis lease per sink), so a
notification is not sent once per replica. Delivery is at least once: a crash after a
sink accepted a notification but before the acknowledgement re-sends it.

`run_once()` drains what is due, bounded by `max_items` and `max_seconds` per sink (for
tests and simple loops); `start()` runs one thread per sink (a hanging sink cannot delay
another) plus one for the optional `AlertmanagerResender`; `stop()` joins them.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Sequence

import structlog

from monitor.alerts.model import DeliveryResult, Notification
from monitor.alerts.outbox import OpenOp, Outbox, QueuedItem, append_alert_log
from monitor.alerts.sinks.alertmanager import AlertmanagerResender
from monitor.alerts.sinks.base import Sink
from monitor.clock import Clock
from monitor.errors import RedisUnavailable
from monitor.metrics import Metrics

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
JITTER = 0.2

_log = structlog.get_logger(__name__)


def backoff_seconds(attempts: int, rng: random.Random, retry_after: float | None = None) -> float:
    """Delay before attempt `attempts + 1`: 1, 2, 4 ... 60 s with ±20 % jitter, clamped to
    [1 s, 60 s], and never shorter than the sink's `Retry-After`.
    """
    base = min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** max(0, attempts - 1))
    delay = base * (1.0 + rng.uniform(-JITTER, JITTER))
    delay = min(BACKOFF_MAX, max(BACKOFF_FIRST, delay))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


class Delivery:
    """Drain the outbox queues of `sinks` (names must match the outbox's sink names)."""

    def __init__(
        self,
        outbox: Outbox,
        sinks: Sequence[Sink],
        clock: Clock,
        metrics: Metrics,
        *,
        resender: AlertmanagerResender | None = None,
        owner: str | None = None,
        lease_seconds: float = 30.0,
        max_items: int = 100,
        max_seconds: float = 5.0,
        poll_seconds: float = 0.25,
        rng: random.Random | None = None,
    ) -> None:
        unknown = [s.name for s in sinks if s.name not in outbox.sink_names]
        if unknown:
            raise ValueError(f"sinks without an outbox queue: {unknown}")
        self.outbox = outbox
        self.sinks = tuple(sinks)
        self.clock = clock
        self.metrics = metrics
        self.resender = resender
        self.owner = owner or f"delivery-{uuid.uuid4().hex[:12]}"
        self.lease_seconds = lease_seconds
        self.max_items = max_items
        self.max_seconds = max_seconds
        self.poll_seconds = poll_seconds
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._stop = threading.Event()
        self._wake = {sink.name: threading.Event() for sink in self.sinks}
        self._threads: list[threading.Thread] = []

    # -- one pass -------------------------------------------------------------------
    def run_once(self) -> int:
        """Drain what is due in every sink's queue; return how many items were settled.

        Raises `RedisUnavailable` (the thread loop catches it and backs off).
        """
        settled = sum(self.run_sink(sink) for sink in self.sinks)
        if self.resender is not None:
            self.resender.run_once()
        return settled

    def run_sink(self, sink: Sink) -> int:
        """Drain `sink`'s queue while the head is due; stop at the first retry."""
        if not self.outbox.claim(sink.name, self.owner, self.lease_seconds):
            return 0
        settled = 0
        deadline = self.clock.monotonic() + self.max_seconds
        while settled < self.max_items and self.clock.monotonic() < deadline:
            item = self.outbox.head(sink.name)
            if item is None or item.next_at > self.clock.now():
                break
            if not self._attempt(sink, item):
                break
            settled += 1
        self.metrics.outbox_depth.labels(sink=sink.name).set(self.outbox.depth(sink.name))
        return settled

    def _attempt(self, sink: Sink, item: QueuedItem) -> bool:
        """Try the head once; True if it left the queue."""
        notification = item.notification
        alert = notification.alert
        if not sink.wants(notification, self.outbox.is_open(sink.name, alert.identity)):
            self.outbox.ack(sink.name, notification, self.clock.now(), "keep")
            self._count(sink, "filtered")
            _log.debug("notification_filtered", sink=sink.name, id=notification.id)
            return True
        started = self.clock.monotonic()
        try:
            result = sink.send(notification)
        except Exception as exc:  # a sink bug must not kill the worker; the item stays queued
            _log.exception("sink_failed", sink=sink.name, id=notification.id)
            result = DeliveryResult("retry", detail=f"{type(exc).__name__}: {exc}")
        self.metrics.notification_duration.labels(sink=sink.name).observe(
            self.clock.monotonic() - started
        )
        if result.outcome == "retry":
            self._retry(sink, item, result)
            return False
        if result.outcome == "delivered":
            open_op: OpenOp = "remove" if notification.kind == "resolved" else "add"
            self.outbox.ack(sink.name, notification, self.clock.now(), open_op)
            self._count(sink, "delivered")
            _log.info(
                "notification_delivered",
                sink=sink.name,
                id=notification.id,
                kind=notification.kind,
                alert=alert.identity,
                attempts=item.attempts + 1,
            )
            self._audit("notified", sink, notification, attempts=item.attempts + 1)
            return True
        self.outbox.ack(sink.name, notification, self.clock.now(), "keep")
        self._count(sink, "rejected")
        _log.error(
            "notification_rejected",
            sink=sink.name,
            id=notification.id,
            kind=notification.kind,
            alert=alert.identity,
            detail=result.detail,
        )
        self._audit(
            "delivery_failed",
            sink,
            notification,
            attempts=item.attempts + 1,
            reason="rejected",
            detail=result.detail,
            final="true",
        )
        return True

    def _retry(self, sink: Sink, item: QueuedItem, result: DeliveryResult) -> None:
        notification = item.notification
        attempts = item.attempts + 1
        delay = backoff_seconds(attempts, self.rng, result.retry_after)
        self.outbox.reschedule(sink.name, notification.id, attempts, self.clock.now() + delay)
        self._count(sink, "retry")
        _log.warning(
            "notification_retry",
            sink=sink.name,
            id=notification.id,
            alert=notification.alert.identity,
            attempts=attempts,
            retry_in=round(delay, 3),
            detail=result.detail,
        )
        if attempts == 1:  # the audit log records the first failure, not every retry
            self._audit(
                "delivery_failed",
                sink,
                notification,
                attempts=attempts,
                reason="retry",
                detail=result.detail,
                final="false",
            )

    def _count(self, sink: Sink, outcome: str) -> None:
        self.metrics.notifications.labels(sink=sink.name, outcome=outcome).inc()

    def _audit(self, event: str, sink: Sink, notification: Notification, **extra: object) -> None:
        try:
            append_alert_log(
                self.outbox.client,
                self.outbox.keys,
                event,
                notification.alert,
                sink=sink.name,
                notification_id=notification.id,
                kind=notification.kind,
                **extra,
            )
        except RedisUnavailable as exc:
            _log.warning("alert_log_unavailable", sink=sink.name, error=str(exc))

    # -- threads --------------------------------------------------------------------
    def wake(self) -> None:
        """Deliver now instead of at the next poll (call after `Outbox.enqueue`)."""
        for event in self._wake.values():
            event.set()

    def start(self) -> None:
        """One daemon thread per sink, plus one for the Alertmanager re-send."""
        if self._threads:
            return
        self._stop.clear()
        for sink in self.sinks:
            thread = threading.Thread(
                target=self._sink_loop, args=(sink,), name=f"delivery-{sink.name}", daemon=True
            )
            self._threads.append(thread)
        if self.resender is not None:
            self._threads.append(
                threading.Thread(target=self._resend_loop, name="delivery-resend", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the threads (an attempt in flight finishes) and give the leases back."""
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        for sink in self.sinks:
            try:
                self.outbox.release(sink.name, self.owner)
            except RedisUnavailable as exc:
                _log.warning("outbox_release_failed", sink=sink.name, error=str(exc))

    def close(self) -> None:
        """Stop, then close the sinks' HTTP clients."""
        self.stop()
        for sink in self.sinks:
            sink.close()

    def _sink_loop(self, sink: Sink) -> None:
        wake = self._wake[sink.name]
        failures = 0
        while not self._stop.is_set():
            try:
                settled = self.run_sink(sink)
                failures = 0
            except RedisUnavailable as exc:
                failures += 1
                settled = 0
                _log.warning("outbox_unavailable", sink=sink.name, error=str(exc))
            except Exception:  # keep delivering whatever happens; the item stays queued
                failures += 1
                settled = 0
                _log.exception("delivery_loop_failed", sink=sink.name)
            if settled >= self.max_items:
                continue  # more is due
            wait = self.poll_seconds if not failures else backoff_seconds(failures, self.rng)
            wake.wait(wait)
            wake.clear()

    def _resend_loop(self) -> None:
        resender = self.resender
        if resender is None:
            return
        while not self._stop.is_set():
            try:
                resender.run_once()
            except Exception:  # `firing` reads Redis or evaluator state; never stop re-sending
                _log.exception("alertmanager_resend_loop_failed")
            self._stop.wait(min(self.poll_seconds * 4, max(0.05, resender.seconds_until_due())))
