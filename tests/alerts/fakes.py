"""In-memory test doubles of a sink."""

from __future__ import annotations

from collections import deque

from monitor.alerts.model import DeliveryResult, Notification
from monitor.alerts.sinks.base import wants_by_severity
from monitor.settings import Severity


class FakeSink:
    """Records every attempt; answers from a script, then `default`."""

    def __init__(
        self, name: str, *, default: str = "delivered", min_severity: Severity = "ok"
    ) -> None:
        self.name = name
        self.default = default
        self.min_severity: Severity = min_severity
        self.script: deque[DeliveryResult] = deque()
        self.attempts: list[Notification] = []
        self.delivered: list[Notification] = []

    def answer(self, *results: DeliveryResult | str) -> None:
        self.script.extend(
            r if isinstance(r, DeliveryResult) else DeliveryResult(r) for r in results
        )  # type: ignore[arg-type]

    def wants(self, notification: Notification, sent_firing: bool) -> bool:
        return wants_by_severity(notification, sent_firing, self.min_severity)

    def send(self, notification: Notification) -> DeliveryResult:
        self.attempts.append(notification)
        result = self.script.popleft() if self.script else DeliveryResult(self.default)  # type: ignore[arg-type]
        if result.outcome == "delivered":
            self.delivered.append(notification)
        return result

    def close(self) -> None:
        return None
