"""What every sink shares: the `Sink` protocol, HTTP outcome rules, severity filters.

Pipeline position: outbox -> delivery -> **sinks**. A sink turns one `Notification` into
one request and says what happened as a `DeliveryResult`; it never retries or sleeps
itself: retries, backoff and ordering belong to `monitor.alerts.delivery` and the
durable outbox, so a retry survives a restart.

HTTP outcome rules (all HTTP sinks):
- 2xx                        -> delivered
- 400, 413, 422              -> rejected: the payload itself is refused, retrying cannot help
- anything else (401/403/404 -> retry: a network, auth or routing problem someone can fix;
  408, 429, 5xx, 3xx) and       nothing is lost meanwhile (SPEC §5: durable delivery).
  connection errors/timeouts    `Retry-After` (seconds or HTTP date) is passed on.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from typing import Protocol

import httpx

from monitor.alerts.model import DeliveryResult, Notification
from monitor.clock import Clock
from monitor.settings import SEVERITIES, Severity

REJECTED_STATUS = frozenset({400, 413, 422})
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
MAX_RETRY_AFTER = 3600.0


class Sink(Protocol):
    """One destination of notifications; `name` is its queue and metric label."""

    name: str

    def wants(self, notification: Notification, sent_firing: bool) -> bool:
        """Whether to send it at all. `sent_firing`: this sink got the identity firing."""
        ...

    def send(self, notification: Notification) -> DeliveryResult:
        """One attempt; never raises for delivery problems (returns `retry`)."""
        ...

    def close(self) -> None: ...


def at_least(severity: Severity, minimum: Severity) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(minimum)


def wants_by_severity(notification: Notification, sent_firing: bool, minimum: Severity) -> bool:
    """Firing/severity changes at or above `minimum`, or of an identity already sent as
    firing (so it is updated, not orphaned); a resolve only for an identity sent as firing.
    """
    if notification.kind == "resolved":
        return sent_firing
    return sent_firing or at_least(notification.alert.severity, minimum)


def rfc3339(epoch: float) -> str:
    """Epoch seconds -> '2026-11-22T10:00:00.123Z' (Alertmanager, webhooks)."""
    text = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def retry_after_seconds(response: httpx.Response, clock: Clock) -> float | None:
    """The `Retry-After` header in seconds (delta or HTTP date), clamped to [0, 1 h]."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - clock.now()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def result_of(response: httpx.Response, clock: Clock) -> DeliveryResult:
    """Map an HTTP response to delivered / rejected / retry (rules in the docstring)."""
    status = response.status_code
    if 200 <= status < 300:
        return DeliveryResult("delivered", detail=str(status), extra={"status": status})
    body = response.text[:300]
    if status in REJECTED_STATUS:
        return DeliveryResult("rejected", detail=f"{status}: {body}", extra={"status": status})
    return DeliveryResult(
        "retry",
        detail=f"{status}: {body}",
        retry_after=retry_after_seconds(response, clock),
        extra={"status": status},
    )


def post_json(client: httpx.Client, url: str, body: object, clock: Clock) -> DeliveryResult:
    """POST `body` as JSON; transport errors and timeouts become `retry`."""
    try:
        response = client.post(url, json=body)
    except httpx.HTTPError as exc:
        return DeliveryResult("retry", detail=f"{type(exc).__name__}: {exc}")
    return result_of(response, clock)


def make_client(transport: httpx.BaseTransport | None) -> httpx.Client:
    return httpx.Client(
        timeout=DEFAULT_TIMEOUT,
        transport=transport,
        headers={"User-Agent": "driftmon"},
        follow_redirects=False,
    )
