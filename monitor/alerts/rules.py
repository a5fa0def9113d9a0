"""The alert state machine: findings over time -> pending / firing / resolved (pure).

Per alert identity (SPEC §5):
- a condition (severity above ``ok``) starts *pending*; it fires once it has held for
  the rule's `for` duration, and is dropped if it clears before;
- a firing alert escalates at once when its severity rises, and de-escalates only after
  the lower severity has held for `for`;
- it resolves only once its value has stayed *clear* (below the resolve bound: 80% of the
  lowest threshold by default, i.e. hysteresis) for `for`; values between the bound and
  the lowest threshold keep it firing;
- a finding without a verdict (sample-size guard, no data) changes nothing.

States are msgspec structs so the evaluator can store them in Redis and a replica that
takes over a model's lease continues where the last one stopped. Notification ids are
derived from the episode (identity + the time the condition started), so a transition
computed twice after a crash is queued once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from monitor.alerts.model import Alert, Notification, TransitionKind, runbook_url
from monitor.evaluate import Finding
from monitor.settings import SEVERITIES, Severity


class AlertState(msgspec.Struct, kw_only=True):
    """The life of one alert identity so far."""

    status: Literal["pending", "firing"]
    severity: Severity
    condition_since: float  # when the condition (pending) started: the episode's id
    firing_since: float | None = None
    lower_since: float | None = None  # a lower severity has held since
    clear_since: float | None = None  # the value has been clear since
    value: float = 0.0
    threshold: float = 0.0
    notified_severity: Severity | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    kind: TransitionKind
    key: str
    state: AlertState
    previous_severity: Severity | None = None


def _rank(severity: Severity) -> int:
    return SEVERITIES.index(severity)


def step(
    states: dict[str, AlertState], findings: Sequence[Finding], now: float
) -> tuple[dict[str, AlertState], list[Transition]]:
    """Advance every alert identity by one evaluation."""
    out: dict[str, AlertState] = {}
    transitions: list[Transition] = []
    seen = set()
    for finding in findings:
        seen.add(finding.key)
        state = states.get(finding.key)
        new, moved = _advance(state, finding, now)
        if new is not None:
            out[finding.key] = new
        transitions += moved
    for key, state in states.items():  # identities that no longer exist (baseline changed)
        if key not in seen and state.status == "firing":
            transitions.append(Transition("resolved", key, state))
    return out, transitions


def _advance(
    state: AlertState | None, f: Finding, now: float
) -> tuple[AlertState | None, list[Transition]]:
    if not f.known:
        return state, []
    active = f.severity != "ok"
    if state is None:
        if not active:
            return None, []
        state = AlertState(
            status="pending",
            severity=f.severity,
            condition_since=now,
            value=f.value,
            threshold=f.threshold,
        )
    state = msgspec.structs.replace(state, value=f.value, threshold=f.threshold)
    if state.status == "pending":
        if not active:
            return None, []
        state = msgspec.structs.replace(state, severity=_max(state.severity, f.severity))
        if now - state.condition_since >= f.for_seconds:
            state = msgspec.structs.replace(
                state,
                status="firing",
                severity=f.severity,
                firing_since=now,
                notified_severity=f.severity,
            )
            return state, [Transition("firing", f.key, state)]
        return state, []
    return _advance_firing(state, f, now, active)


def _advance_firing(
    state: AlertState, f: Finding, now: float, active: bool
) -> tuple[AlertState | None, list[Transition]]:
    if f.clear and not active:
        since = state.clear_since if state.clear_since is not None else now
        if now - since >= f.for_seconds:
            return None, [Transition("resolved", f.key, state)]
        return msgspec.structs.replace(state, clear_since=since, lower_since=None), []
    state = msgspec.structs.replace(state, clear_since=None)
    if not active:  # in the hysteresis band: keep firing at the current severity
        return state, []
    if _rank(f.severity) > _rank(state.severity):
        previous = state.severity
        state = msgspec.structs.replace(
            state, severity=f.severity, lower_since=None, notified_severity=f.severity
        )
        return state, [Transition("severity_changed", f.key, state, previous)]
    if _rank(f.severity) < _rank(state.severity):
        since = state.lower_since if state.lower_since is not None else now
        if now - since >= f.for_seconds:
            previous = state.severity
            state = msgspec.structs.replace(
                state, severity=f.severity, lower_since=None, notified_severity=f.severity
            )
            return state, [Transition("severity_changed", f.key, state, previous)]
        return msgspec.structs.replace(state, lower_since=since), []
    return msgspec.structs.replace(state, lower_since=None), []


def _max(a: Severity, b: Severity) -> Severity:
    return a if _rank(a) >= _rank(b) else b


def to_alert(
    model: str, key: str, state: AlertState, now: float, runbook_base: str, resolved: bool = False
) -> Alert:
    """The `Alert` a sink sends for this identity in this state."""
    alertname, feature, window = key.split("/", 2)
    feature_or_none = None if feature == "-" else feature
    subject = f"{model}/{feature_or_none}" if feature_or_none else model
    summary = _SUMMARIES.get(alertname, "{subject}: {alertname}").format(
        subject=subject, window=window, alertname=alertname
    )
    description = (
        f"{alertname} for model {model}"
        + (f", feature {feature_or_none}" if feature_or_none else "")
        + f", window {window}: value {state.value:.4g} against threshold {state.threshold:.4g}"
        + f" ({state.severity}). Runbook: {runbook_url(runbook_base, alertname)}"
    )
    return Alert(
        alertname=alertname,
        severity=state.severity,
        model=model,
        window=window,
        feature=feature_or_none,
        value=state.value,
        threshold=state.threshold,
        summary=summary,
        description=description,
        runbook_url=runbook_url(runbook_base, alertname),
        status="resolved" if resolved else "firing",
        starts_at=state.firing_since if state.firing_since is not None else now,
        ends_at=now if resolved else None,
    )


def to_notification(model: str, t: Transition, now: float, runbook_base: str) -> Notification:
    """A durable notification; its id is stable for the episode and the transition."""
    alert = to_alert(model, t.key, t.state, now, runbook_base, resolved=t.kind == "resolved")
    episode = f"{model}/{t.key}@{t.state.condition_since:.3f}"
    suffix = f"{t.kind}:{t.state.severity}" if t.kind == "severity_changed" else t.kind
    return Notification(
        id=f"{episode}#{suffix}",
        kind=t.kind,
        alert=alert,
        created_at=now,
        previous_severity=t.previous_severity,
    )


_SUMMARIES = {
    "FeatureDrift": "{subject} drifted from its baseline over {window}",
    "PredictionDrift": "{subject}: predictions drifted from the baseline over {window}",
    "DataQualityMissing": "{subject}: more missing values than the baseline over {window}",
    "DataQualityOutOfRange": "{subject}: values outside the reference range over {window}",
    "DataQualityUnseenCategory": "{subject}: categories never seen in the baseline over {window}",
    "LatencyHigh": "{subject}: p99 latency above the SLO over {window}",
    "NoTraffic": "{subject}: no inference events received",
    "InvalidEvents": "{subject}: invalid events over {window}",
    "MonitorLagging": "{subject}: driftmon is lagging behind the stream",
}
