"""Rich renderings of the state documents and of the incidents (demo and drill output).

Pure functions from plain dicts to rich renderables: `state_table` (per model and
feature: PSI, JS distance, severity, events/s, latency p95/p99), `alerts_table` (firing
alerts with their runbook links), `incidents_table` (injected / detected / alerted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from monitor.alerts.model import runbook_url
from monitor.demo.tracker import Watch

STYLE = {"ok": "green", "info": "cyan", "warning": "yellow", "critical": "bold red"}


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _sev(severity: str) -> str:
    return f"[{STYLE.get(severity, 'white')}]{severity}[/]"


def state_table(states: dict[str, dict[str, Any]], title: str = "drift state") -> Table:
    """One row per model and feature of each model's first window."""
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("model", "window", "feature", "psi", "js_distance", "missing", "severity"):
        table.add_column(column, justify="right" if column in {"psi", "js_distance"} else "left")
    for column in ("events/s", "p95 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for model in sorted(states):
        doc = states[model]
        windows = doc.get("windows", {})
        if not windows:
            continue
        name, window = next(iter(windows.items()))
        latency = window.get("latency_ms", {})
        first = True
        for feature, values in window.get("features", {}).items():
            table.add_row(
                escape(model) if first else "",
                name if first else "",
                escape(feature),
                _num(values.get("psi")),
                _num(values.get("js_distance")),
                _num(values.get("missing_ratio"), 2),
                _sev(values.get("severity", "ok")),
                _num(window.get("events_per_second"), 1) if first else "",
                _num(latency.get("p95"), 1) if first else "",
                _num(latency.get("p99"), 1) if first else "",
            )
            first = False
        table.add_section()
    return table


def alerts_table(states: dict[str, dict[str, Any]], runbook_base: str, limit: int = 10) -> Table:
    """Alerts firing now, from the state documents, with their runbook links."""
    table = Table(title="alerts firing", title_justify="left")
    for column in ("model", "alert", "feature", "severity", "value", "since", "runbook"):
        table.add_column(column)
    rows = [(model, alert) for model in sorted(states) for alert in states[model].get("alerts", [])]
    for model, alert in rows[:limit]:
        table.add_row(
            escape(model),
            alert["alertname"],
            escape(alert.get("feature") or "-"),
            _sev(alert["severity"]),
            _num(alert.get("value")),
            str(alert.get("since", "")).replace("T", " ").rstrip("Z"),
            runbook_url(runbook_base, alert["alertname"]),
        )
    if len(rows) > limit:
        table.caption = f"... and {len(rows) - limit} more"
    if not rows:
        table.add_row("-", "none", "", "", "", "", "")
    return table


def incidents_table(watches: Sequence[Watch], origin: float, title: str = "incidents") -> Table:
    """Each incident: when injected (seconds since `origin`), detected and alerted."""
    table = Table(title=title, title_justify="left")
    for column in ("incident", "expected alert", "injected", "detected", "alerted", "alert"):
        table.add_column(column)
    for w in watches:
        table.add_row(
            escape(w.label),
            w.alertname or "any",
            _at(w.injected_at, origin),
            _after(w.detected_at, w.time_to_detect, origin),
            _after(w.alerted_at, w.time_to_alert, origin),
            w.alert or "-",
        )
    return table


def _at(moment: float | None, origin: float) -> str:
    return "pending" if moment is None else f"t+{moment - origin:.1f}s"


def _after(moment: float | None, delta: float | None, origin: float) -> str:
    if moment is None or delta is None:
        return "[red]not yet[/]"
    return f"t+{moment - origin:.1f}s ([green]+{delta:.1f}s[/])"
