"""Alertmanager API v2 sink and the periodic re-send of firing alerts (SPEC §5).

Pipeline position: outbox -> delivery -> **sinks/alertmanager** -> Alertmanager.

Each configured Alertmanager URL is its own sink (`alertmanager:<host:port>`) with its
own durable queue. A notification becomes one POST of `[{labels, annotations, startsAt,
endsAt, generatorURL?}]` to `<url>/api/v2/alerts`:
- firing / severity_changed: `endsAt` = now + 4 * resend_seconds, computed when sent, so
  Alertmanager does not auto-resolve while driftmon keeps re-sending (resend_timeout
  would otherwise resolve it after 5 minutes);
- resolved: `endsAt` = the resolve time (`alert.ends_at`, else now).
Severity is a label, so a severity change is a *new* Alertmanager alert; when the
notification carries `previous_severity`, the old-severity alert is resolved in the same
POST. A resolved alert must carry the severity it last fired with, or its labels do not
match the firing one.

`AlertmanagerResender` re-POSTs every currently firing alert every `resend_seconds`
directly, not through the durable queue: a re-send only refreshes `endsAt`, the next
period retries a failed one anyway, and queueing them would push real transitions back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

import httpx
import structlog

from monitor.alerts.model import Alert, DeliveryResult, Notification
from monitor.alerts.sinks.base import make_client, post_json, rfc3339
from monitor.clock import Clock
from monitor.metrics import Metrics

_log = structlog.get_logger(__name__)
RESEND_FACTOR = 4


def alertmanager_sink_name(url: str) -> str:
    parts = urlsplit(url)
    return f"alertmanager:{parts.netloc or url}"


class AlertmanagerSink:
    """POST alerts to one Alertmanager's `/api/v2/alerts`."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock,
        resend_seconds: float,
        generator_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = url.rstrip("/")
        self.endpoint = self.base_url + "/api/v2/alerts"
        self.name = alertmanager_sink_name(url)
        self.clock = clock
        self.resend_seconds = resend_seconds
        self.generator_url = generator_url
        self._client = make_client(transport)

    def wants(self, notification: Notification, sent_firing: bool) -> bool:
        return True  # Alertmanager routes by severity itself

    def payload(self, alert: Alert, now: float) -> dict[str, object]:
        """One postable alert; `endsAt` ahead while firing, the resolve time once resolved."""
        if alert.status == "resolved":
            ends_at = alert.ends_at if alert.ends_at is not None else now
        else:
            ends_at = now + RESEND_FACTOR * self.resend_seconds
        body: dict[str, object] = {
            "labels": alert.labels(),
            "annotations": alert.annotations(),
            "startsAt": rfc3339(alert.starts_at),
            "endsAt": rfc3339(ends_at),
        }
        if self.generator_url:
            body["generatorURL"] = self.generator_url
        return body

    def send(self, notification: Notification) -> DeliveryResult:
        now = self.clock.now()
        alert = notification.alert
        bodies = [self.payload(alert, now)]
        previous = notification.previous_severity
        if previous is not None and previous not in (alert.severity, "ok"):
            old = self.payload(alert, now)
            old["labels"] = {**alert.labels(), "severity": previous}
            old["endsAt"] = rfc3339(now)
            bodies.append(old)
        return post_json(self._client, self.endpoint, bodies, self.clock)

    def post_alerts(self, alerts: Sequence[Alert]) -> DeliveryResult:
        """POST several alerts at once (the periodic re-send)."""
        now = self.clock.now()
        return post_json(
            self._client, self.endpoint, [self.payload(a, now) for a in alerts], self.clock
        )

    def close(self) -> None:
        self._client.close()


class AlertmanagerResender:
    """Re-send every firing alert to every Alertmanager each `interval` seconds."""

    def __init__(
        self,
        sinks: Sequence[AlertmanagerSink],
        firing: Callable[[], Iterable[Alert]],
        *,
        clock: Clock,
        metrics: Metrics,
        interval: float,
    ) -> None:
        self.sinks = tuple(sinks)
        self.firing = firing
        self.clock = clock
        self.metrics = metrics
        self.interval = interval
        self._next = clock.monotonic() + interval

    def seconds_until_due(self) -> float:
        return max(0.0, self._next - self.clock.monotonic())

    def run_once(self) -> bool:
        """Re-send if a period has passed; return whether it did. Never raises for HTTP."""
        if not self.sinks or self.clock.monotonic() < self._next:
            return False
        self._next = self.clock.monotonic() + self.interval
        alerts = [a for a in self.firing() if a.status == "firing"]
        if not alerts:
            return True
        for sink in self.sinks:
            result = sink.post_alerts(alerts)
            if result.outcome == "delivered":
                self.metrics.notifications.labels(sink=sink.name, outcome="resent").inc()
            else:
                self.metrics.notifications.labels(sink=sink.name, outcome="resend_failed").inc()
                _log.warning(
                    "alertmanager_resend_failed",
                    sink=sink.name,
                    alerts=len(alerts),
                    detail=result.detail,
                )
        return True
