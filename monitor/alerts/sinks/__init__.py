"""Alert sinks: Alertmanager, PagerDuty, generic webhooks and the log (SPEC §5).

Pipeline position: outbox -> delivery -> **sinks**. `build_sinks` turns the `alerting`
settings section into the sink list, whose names are the outbox queue names.
"""

from __future__ import annotations

import httpx

from monitor.alerts.sinks.alertmanager import AlertmanagerResender, AlertmanagerSink
from monitor.alerts.sinks.base import Sink
from monitor.alerts.sinks.log import LogSink
from monitor.alerts.sinks.pagerduty import PagerDutySink
from monitor.alerts.sinks.webhook import WebhookSink
from monitor.clock import Clock
from monitor.errors import ConfigError
from monitor.settings import AlertingSettings

__all__ = [
    "AlertmanagerResender",
    "AlertmanagerSink",
    "LogSink",
    "PagerDutySink",
    "Sink",
    "WebhookSink",
    "build_sinks",
]


def build_sinks(
    settings: AlertingSettings,
    *,
    clock: Clock,
    generator_url: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> list[Sink]:
    """Log sink first, then one per Alertmanager URL, PagerDuty, one per webhook."""
    sinks: list[Sink] = [LogSink()]
    sinks.extend(
        AlertmanagerSink(
            url,
            clock=clock,
            resend_seconds=settings.resend_seconds,
            generator_url=generator_url,
            transport=transport,
        )
        for url in settings.alertmanager_urls
    )
    if settings.pagerduty is not None:
        sinks.append(PagerDutySink(settings.pagerduty, clock=clock, transport=transport))
    sinks.extend(WebhookSink(hook, clock=clock, transport=transport) for hook in settings.webhooks)
    names = [sink.name for sink in sinks]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"alerting: two sinks share the name {duplicates[0]} (same URL twice?)")
    return sinks
