"""Fixtures of the alerts suite: Redis-backed outboxes, fake clocks, alert factories,
local HTTP receivers and a real Alertmanager."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from monitor.alerts.model import Alert, Notification, runbook_url
from monitor.clock import FakeClock
from monitor.metrics import Metrics
from monitor.window.keys import Keys
from tests.alerts.alertmanager import AlertmanagerServer
from tests.alerts.receiver import Receiver
from tests.services import redis_url_for_tests

RUNBOOKS = "https://runbooks.example.org/driftmon/"


@pytest.fixture(scope="session")
def alerts_redis_url() -> str:
    return redis_url_for_tests()


@pytest.fixture
def keys() -> Keys:
    return Keys(prefix=f"t-alerts-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def client(alerts_redis_url: str, keys: Keys) -> Iterator[redis.Redis]:
    """A client on the shared Redis; this test's keys are deleted afterwards."""
    conn = redis.Redis.from_url(alerts_redis_url)
    try:
        yield conn
    finally:
        found = list(conn.scan_iter(match=f"{keys.prefix}:*", count=1000))
        if found:
            conn.delete(*found)
        conn.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def make_alert(**overrides: Any) -> Alert:
    fields: dict[str, Any] = {
        "alertname": "FeatureDrift",
        "severity": "critical",
        "model": "fraud",
        "window": "15m",
        "feature": "amount",
        "value": 0.34,
        "threshold": 0.3,
        "summary": "fraud: feature amount drifted (PSI 0.34 >= 0.3) over 15m",
        "description": "PSI of amount over the 15m window is 0.34, above the critical 0.3.",
        "runbook_url": runbook_url(RUNBOOKS, overrides.get("alertname", "FeatureDrift")),
        "starts_at": 1_795_311_000.0,
    }
    fields.update(overrides)
    return Alert(**fields)


NotificationFactory = Callable[..., Notification]


@pytest.fixture
def notify() -> NotificationFactory:
    """`notify("firing", feature="amount", severity="warning", at=...)` -> Notification.

    ids are identity + kind + time, like the evaluator's, so they are unique per
    transition and the same transition gives the same id.
    """

    def make(kind: str = "firing", at: float = 1_795_311_000.0, **alert: Any) -> Notification:
        previous = alert.pop("previous_severity", None)
        if kind == "resolved":
            alert.setdefault("status", "resolved")
            alert.setdefault("ends_at", at)
        base = make_alert(**alert)
        return Notification(
            id=f"{base.identity}@{kind}@{at!r}",
            kind=kind,  # type: ignore[arg-type]
            alert=base,
            created_at=at,
            previous_severity=previous,
        )

    return make


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rec:
        yield rec


@pytest.fixture
def alertmanager(receiver: Receiver) -> Iterator[AlertmanagerServer]:
    """A real Alertmanager whose only receiver is `receiver` (fails if not installed)."""
    with AlertmanagerServer(f"{receiver.url}/am") as server:
        yield server
