"""Alert and notification values shared by the evaluator, the outbox and the sinks (pure).

SPEC §5: labels `alertname`, `severity`, `model`, `feature` (where it applies), `window`,
`service="driftmon"`; annotations `summary`, `description`, `runbook_url`, `value`,
`threshold`. An alert's *identity* (alertname, model, feature, window) is stable across
its life and across severity changes: it is the PagerDuty `dedup_key` and what
Alertmanager groups on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from monitor.settings import Severity

ALERT_NAMES = (
    "FeatureDrift",
    "PredictionDrift",
    "DataQualityMissing",
    "DataQualityOutOfRange",
    "DataQualityUnseenCategory",
    "LatencyHigh",
    "NoTraffic",
    "InvalidEvents",
    "MonitorLagging",
)

Status = Literal["firing", "resolved"]


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert at one moment: what a sink sends."""

    alertname: str
    severity: Severity
    model: str
    window: str
    feature: str | None = None
    value: float
    threshold: float
    summary: str
    description: str
    runbook_url: str
    status: Status = "firing"
    starts_at: float  # epoch seconds the alert started firing
    ends_at: float | None = None  # epoch seconds it resolved (status "resolved")

    @property
    def identity(self) -> str:
        """Stable across the alert's life: alertname/model/feature/window."""
        return "/".join((self.alertname, self.model, self.feature or "-", self.window))

    @property
    def dedup_key(self) -> str:
        """A short stable key derived from the identity (PagerDuty `dedup_key`)."""
        return "driftmon-" + hashlib.sha256(self.identity.encode()).hexdigest()[:32]

    def labels(self) -> dict[str, str]:
        labels = {
            "alertname": self.alertname,
            "severity": self.severity,
            "model": self.model,
            "window": self.window,
            "service": "driftmon",
        }
        if self.feature is not None:
            labels["feature"] = self.feature
        return labels

    def annotations(self) -> dict[str, str]:
        return {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": self.runbook_url,
            "value": f"{self.value:.6g}",
            "threshold": f"{self.threshold:.6g}",
        }


TransitionKind = Literal["firing", "resolved", "severity_changed"]


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """A transition to deliver: queued durably, retried until a sink accepts it."""

    id: str  # unique per transition (e.g. identity + transition time), for idempotence
    kind: TransitionKind
    alert: Alert
    created_at: float
    # severity_changed: the severity it had before; Alertmanager resolves that labelset
    previous_severity: Severity | None = None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What a sink said about one notification."""

    outcome: Literal["delivered", "retry", "rejected"]
    detail: str = ""
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def runbook_url(base: str, alertname: str) -> str:
    """`runbook_url` = configured base URL + the runbook file's name (SPEC §5)."""
    return base.rstrip("/") + "/" + f"{alertname}.md"
