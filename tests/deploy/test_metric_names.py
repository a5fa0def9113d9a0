"""Every metric the dashboard and the alert rules query is one the daemon exports.

The exported names come from the daemon's own registry: `monitor.metrics.Metrics` plus
the `StateCollector` fed one state document (SPEC §4), expanded to the series Prometheus
sees (`_total` for counters, `_bucket`/`_sum`/`_count` for histograms, `_info`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from monitor.exporter import StateCollector
from monitor.metrics import Metrics
from tests.deploy.promql import (
    as_recording_rules,
    dashboard,
    dashboard_exprs,
    dashboard_variable_queries,
    metric_names,
    promtool,
    rule_exprs,
)

STATE: dict[str, Any] = {
    "model": "fraud",
    "evaluated_at": "2026-11-22T10:00:00Z",
    "baseline_id": "sha256:0",
    "severity": "warning",
    "windows": {
        "15m": {
            "events": 12345,
            "events_per_second": 13.7,
            "severity": "warning",
            "latency_ms": {"p50": 8.1, "p95": 20.4, "p99": 41.0},
            "features": {
                "amount": {
                    "events": 12345,
                    "psi": 0.23,
                    "js_distance": 0.12,
                    "js_divergence": 0.0144,
                    "missing_ratio": 0.0,
                    "out_of_range_ratio": 0.01,
                    "unseen_ratio": 0.0,
                    "severity": "warning",
                }
            },
        }
    },
    "alerts": [
        {
            "alertname": "FeatureDrift",
            "severity": "warning",
            "feature": "amount",
            "window": "15m",
            "value": 0.23,
            "threshold": 0.2,
            "since": "2026-11-22T09:58:10Z",
        }
    ],
}

_SERIES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}


def exported() -> set[str]:
    metrics = Metrics()
    metrics.registry.register(StateCollector(lambda: {"fraud": STATE}))
    names = set()
    for family in metrics.registry.collect():
        names.update(family.name + s for s in _SERIES.get(family.type, ("",)))
    return names


def test_the_state_collector_exports_the_document() -> None:
    metrics = Metrics()
    metrics.registry.register(StateCollector(lambda: {"fraud": STATE}))
    value = metrics.registry.get_sample_value(
        "driftmon_latency_seconds", {"model": "fraud", "window": "15m", "quantile": "0.99"}
    )
    assert value is not None and abs(value - 0.041) < 1e-9


def test_rules_use_only_exported_metrics() -> None:
    used = metric_names(rule_exprs())
    assert used, "no metric found in the rules"
    assert used <= exported(), f"not exported by the daemon: {sorted(used - exported())}"


def test_dashboard_uses_only_exported_metrics() -> None:
    used = metric_names(dashboard_exprs() + dashboard_variable_queries())
    assert used <= exported(), f"not exported by the daemon: {sorted(used - exported())}"


def test_dashboard_covers_the_issue_panels() -> None:
    used = metric_names(dashboard_exprs())
    assert {
        "driftmon_feature_psi",
        "driftmon_feature_js_distance",
        "driftmon_drift_severity",
        "driftmon_latency_seconds",
        "driftmon_window_events_per_second",
        "driftmon_events_total",
        "driftmon_events_invalid_total",
        "driftmon_alerts_firing",
        "driftmon_consumer_lag_messages",
    } <= used
    latency = next(e for e in dashboard_exprs() if "driftmon_latency_seconds" in e)
    assert "0.5|0.95|0.99" in latency
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["model"]["query"]["query"] == "label_values(driftmon_window_events, model)"


def test_dashboard_expressions_parse(tmp_path: Path) -> None:
    """promtool parses every panel query (as recording rules)."""
    rules = as_recording_rules(dashboard_exprs(), tmp_path / "dashboard-rules.yaml")
    proc = subprocess.run(
        [promtool(), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
