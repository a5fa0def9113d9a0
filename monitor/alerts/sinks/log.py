"""Log sink: one structlog line per notification, always on (SPEC §5).

Pipeline position: outbox -> delivery -> **sinks/log** -> stderr (JSON in production).
It goes through the outbox like every sink, so the log shows what was delivered, in
order, after the same transitions the other sinks saw.
"""

from __future__ import annotations

import structlog

from monitor.alerts.model import DeliveryResult, Notification

_log = structlog.get_logger("monitor.alerts.notify")


class LogSink:
    name = "log"

    def wants(self, notification: Notification, sent_firing: bool) -> bool:
        return True

    def send(self, notification: Notification) -> DeliveryResult:
        alert = notification.alert
        log = _log.warning if alert.status == "firing" else _log.info
        log(
            "alert_notification",
            id=notification.id,
            kind=notification.kind,
            status=alert.status,
            alertname=alert.alertname,
            severity=alert.severity,
            previous_severity=notification.previous_severity,
            model=alert.model,
            feature=alert.feature,
            window=alert.window,
            value=alert.value,
            threshold=alert.threshold,
            summary=alert.summary,
            runbook_url=alert.runbook_url,
        )
        return DeliveryResult("delivered")

    def close(self) -> None:
        return None
