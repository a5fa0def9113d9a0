"""PagerDuty Events API v2 sink (SPEC §5).

Pipeline position: outbox -> delivery -> **sinks/pagerduty** -> PagerDuty.

- firing / severity_changed -> `event_action: trigger`; resolved -> `resolve` with only
  routing_key, event_action and dedup_key (PagerDuty ignores a payload on resolve).
- `dedup_key` = `Alert.dedup_key`, stable per identity (alertname/model/feature/window),
  so trigger, re-trigger after a severity change and resolve hit one PagerDuty alert.
- Severity mapping: critical -> critical, warning -> warning, info -> info (`ok`, never
  an alert's severity, -> info). PagerDuty's `error` is not used: driftmon has no level
  between warning and critical.
- Only alerts at or above `min_severity` trigger; a resolve is sent for every identity
  that was sent a trigger (the outbox's per-sink `open` set), even if it was below.
- 202 delivered; 400 rejected (never retried); 429 and 5xx retried with backoff by the
  delivery worker, honouring `Retry-After` (see `monitor.alerts.sinks.base`).
- The routing key is a `SecretStr`, read only to build the request body, never logged.
"""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from monitor.alerts.model import Alert, DeliveryResult, Notification
from monitor.alerts.sinks.base import make_client, post_json, rfc3339, wants_by_severity
from monitor.clock import Clock
from monitor.settings import PagerDutySettings, Severity

PD_SEVERITY: dict[Severity, str] = {
    "critical": "critical",
    "warning": "warning",
    "info": "info",
    "ok": "info",
}
SUMMARY_MAX = 1024  # PagerDuty truncates longer summaries


def trigger_body(alert: Alert, routing_key: SecretStr) -> dict[str, object]:
    """The Events v2 trigger event for `alert`."""
    return {
        "routing_key": routing_key.get_secret_value(),
        "event_action": "trigger",
        "dedup_key": alert.dedup_key,
        "client": "driftmon",
        "payload": {
            "summary": alert.summary[:SUMMARY_MAX],
            "source": f"driftmon/{alert.model}",
            "severity": PD_SEVERITY[alert.severity],
            "timestamp": rfc3339(alert.starts_at),
            "component": alert.model,
            "group": alert.feature or alert.window,
            "class": alert.alertname,
            "custom_details": {
                "value": alert.value,
                "threshold": alert.threshold,
                "window": alert.window,
                "feature": alert.feature,
                "model": alert.model,
                "description": alert.description,
            },
        },
        "links": [{"href": alert.runbook_url, "text": "Runbook"}],
    }


def resolve_body(alert: Alert, routing_key: SecretStr) -> dict[str, object]:
    return {
        "routing_key": routing_key.get_secret_value(),
        "event_action": "resolve",
        "dedup_key": alert.dedup_key,
    }


class PagerDutySink:
    """Send triggers and resolves to the Events API v2 endpoint (`settings.url`)."""

    name = "pagerduty"

    def __init__(
        self,
        settings: PagerDutySettings,
        *,
        clock: Clock,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = settings.url
        self.min_severity: Severity = settings.min_severity
        self._routing_key = settings.routing_key
        self.clock = clock
        self._client = make_client(transport)

    def wants(self, notification: Notification, sent_firing: bool) -> bool:
        return wants_by_severity(notification, sent_firing, self.min_severity)

    def send(self, notification: Notification) -> DeliveryResult:
        alert = notification.alert
        if notification.kind == "resolved":
            body = resolve_body(alert, self._routing_key)
        else:
            body = trigger_body(alert, self._routing_key)
        return post_json(self._client, self.url, body, self.clock)

    def close(self) -> None:
        self._client.close()
