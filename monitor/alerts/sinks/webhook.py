"""Generic webhook sink: POST one JSON document per notification (SPEC §5).

Pipeline position: outbox -> delivery -> **sinks/webhook** -> any HTTP endpoint.

Body (`version` 1; keys may be added, not renamed):
    {"version": 1, "id": "<notification id>", "kind": "firing|resolved|severity_changed",
     "status": "firing|resolved", "identity": "FeatureDrift/fraud/amount/15m",
     "dedup_key": "driftmon-…", "created_at": "2026-11-22T10:00:00.000Z",
     "starts_at": "…Z", "ends_at": "…Z" | null, "previous_severity": "warning" | null,
     "labels": {alertname, severity, model, feature?, window, service},
     "annotations": {summary, description, runbook_url, value, threshold},
     "value": 0.23, "threshold": 0.2}
`id` lets a receiver drop the rare duplicate (delivery is at least once). Firing
notifications below `min_severity` are not sent; a resolve is sent when the firing was.
2xx delivered; 400/413/422 rejected; 5xx, other codes and connection errors retried.
The sink name is `webhook:<host>:<hash of the URL>`: URLs often embed tokens, so they are
never logged or used as a label.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import httpx

from monitor.alerts.model import DeliveryResult, Notification
from monitor.alerts.sinks.base import make_client, post_json, rfc3339, wants_by_severity
from monitor.clock import Clock
from monitor.settings import Severity, WebhookSettings


def webhook_sink_name(url: str) -> str:
    host = urlsplit(url).hostname or "webhook"
    return f"webhook:{host}:{hashlib.sha256(url.encode()).hexdigest()[:8]}"


def webhook_body(notification: Notification) -> dict[str, object]:
    alert = notification.alert
    return {
        "version": 1,
        "id": notification.id,
        "kind": notification.kind,
        "status": alert.status,
        "identity": alert.identity,
        "dedup_key": alert.dedup_key,
        "created_at": rfc3339(notification.created_at),
        "starts_at": rfc3339(alert.starts_at),
        "ends_at": None if alert.ends_at is None else rfc3339(alert.ends_at),
        "previous_severity": notification.previous_severity,
        "labels": alert.labels(),
        "annotations": alert.annotations(),
        "value": alert.value,
        "threshold": alert.threshold,
    }


class WebhookSink:
    """POST the notification JSON to one URL."""

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        clock: Clock,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = settings.url
        self.name = webhook_sink_name(settings.url)
        self.min_severity: Severity = settings.min_severity
        self.clock = clock
        self._client = make_client(transport)

    def wants(self, notification: Notification, sent_firing: bool) -> bool:
        return wants_by_severity(notification, sent_firing, self.min_severity)

    def send(self, notification: Notification) -> DeliveryResult:
        return post_json(self._client, self.url, webhook_body(notification), self.clock)

    def close(self) -> None:
        self._client.close()
