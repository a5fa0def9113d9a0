"""The alert state machine on hand-made findings (pure; times are plain numbers)."""

from __future__ import annotations

from monitor.alerts.rules import AlertState, step, to_notification
from monitor.evaluate import Finding
from monitor.settings import Severity


def finding(
    severity: Severity,
    value: float = 0.25,
    *,
    clear: bool = False,
    known: bool = True,
    for_seconds: float = 60.0,
) -> Finding:
    return Finding(
        alertname="FeatureDrift",
        window="15m",
        feature="amount",
        severity=severity,
        value=value,
        threshold=0.2,
        clear=clear,
        for_seconds=for_seconds,
        known=known,
    )


def run(
    findings: list[tuple[float, Finding]],
) -> tuple[dict[str, AlertState], list[tuple[float, str, str]]]:
    states: dict[str, AlertState] = {}
    seen = []
    for now, f in findings:
        states, transitions = step(states, [f], now)
        seen += [(now, t.kind, t.state.severity) for t in transitions]
    return states, seen


def test_fires_only_after_the_condition_held_for_the_for_duration() -> None:
    _, seen = run(
        [
            (0, finding("warning")),
            (30, finding("warning")),
            (59, finding("warning")),
            (60, finding("warning")),
        ]
    )
    assert seen == [(60, "firing", "warning")]


def test_a_single_noisy_window_never_fires() -> None:
    states, seen = run(
        [
            (0, finding("critical")),
            (10, finding("ok", 0.05, clear=True)),
            (70, finding("ok", 0.05, clear=True)),
        ]
    )
    assert seen == [] and states == {}


def test_hysteresis_band_keeps_firing_and_resolve_needs_the_for_duration() -> None:
    states, seen = run(
        [
            (0, finding("warning")),
            (60, finding("warning")),
            (70, finding("ok", 0.09, clear=False)),  # below the threshold, above 80% of it
            (200, finding("ok", 0.09, clear=False)),
            (210, finding("ok", 0.05, clear=True)),
            (260, finding("ok", 0.05, clear=True)),
            (269, finding("ok", 0.05, clear=True)),
            (270, finding("ok", 0.05, clear=True)),
        ]
    )
    assert seen == [(60, "firing", "warning"), (270, "resolved", "warning")]
    assert states == {}


def test_a_clear_streak_broken_by_a_noisy_value_starts_again() -> None:
    _, seen = run(
        [
            (0, finding("warning")),
            (60, finding("warning")),
            (100, finding("ok", 0.05, clear=True)),
            (150, finding("ok", 0.09)),
            (170, finding("ok", 0.05, clear=True)),
            (229, finding("ok", 0.05, clear=True)),
            (230, finding("ok", 0.05, clear=True)),
        ]
    )
    assert seen == [(60, "firing", "warning"), (230, "resolved", "warning")]


def test_escalates_at_once_and_de_escalates_after_the_for_duration() -> None:
    _, seen = run(
        [
            (0, finding("warning")),
            (60, finding("warning")),
            (70, finding("critical", 0.5)),
            (80, finding("warning")),
            (139, finding("warning")),
            (140, finding("warning")),
        ]
    )
    assert seen == [
        (60, "firing", "warning"),
        (70, "severity_changed", "critical"),
        (140, "severity_changed", "warning"),
    ]


def test_no_verdict_holds_the_state() -> None:
    states, seen = run(
        [
            (0, finding("warning")),
            (60, finding("warning")),
            (100, finding("ok", 0.0, clear=True, known=False)),
            (500, finding("ok", 0.0, clear=True, known=False)),
        ]
    )
    assert seen == [(60, "firing", "warning")]
    assert states["FeatureDrift/amount/15m"].status == "firing"


def test_an_identity_that_disappears_is_resolved() -> None:
    states, _ = run([(0, finding("warning", for_seconds=0))])
    _, transitions = step(states, [], 10)
    assert [t.kind for t in transitions] == ["resolved"]


def test_notification_ids_are_stable_for_an_episode() -> None:
    states, _ = run([(0, finding("warning", for_seconds=0))])
    again, transitions = step({}, [finding("warning", for_seconds=0)], 0)
    _, first = step({}, [finding("warning", for_seconds=0)], 0)
    a = to_notification("fraud", transitions[0], 5, "https://x/runbooks/")
    b = to_notification("fraud", first[0], 9, "https://x/runbooks/")
    assert a.id == b.id  # computed twice (e.g. after a crash): queued once
    assert a.alert.runbook_url == "https://x/runbooks/FeatureDrift.md"
    assert a.alert.labels() == {
        "alertname": "FeatureDrift",
        "severity": "warning",
        "model": "fraud",
        "window": "15m",
        "service": "driftmon",
        "feature": "amount",
    }
    assert states and again
