"""Per-model gauges from the state documents in Redis, computed at scrape time (SPEC §6).

A custom collector: every replica exports every tracked model's current numbers, read
from `<prefix>:{<model>}:state`, so a scrape of any replica (or of all, deduplicated
with `max by`) shows the same state that `redis-cli` and `driftmon status` show.
Label values are bounded: models from configuration, features from baselines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.errors import RedisUnavailable
from monitor.settings import SEVERITIES

log = structlog.get_logger(__name__)

StatesReader = Callable[[], dict[str, dict[str, Any]]]

_FEATURE_GAUGES = (
    ("psi", "driftmon_feature_psi", "Population stability index of the window vs the baseline."),
    ("js_distance", "driftmon_feature_js_distance", "Jensen-Shannon distance (base 2)."),
    ("js_divergence", "driftmon_feature_js_divergence", "Jensen-Shannon divergence (base 2)."),
    ("missing_ratio", "driftmon_feature_missing_ratio", "Share of events missing the feature."),
    (
        "out_of_range_ratio",
        "driftmon_feature_out_of_range_ratio",
        "Share of present values outside the reference min/max.",
    ),
    (
        "unseen_ratio",
        "driftmon_feature_unseen_ratio",
        "Share of present values that are categories never seen in the reference.",
    ),
)


class StateCollector(Collector):
    """Turns state documents into gauge families."""

    def __init__(self, read_states: StatesReader) -> None:
        self._read = read_states

    def describe(self) -> list[Any]:
        return []  # families depend on Redis content: collected at scrape time only

    def collect(self) -> Iterator[Metric]:
        try:
            states = self._read()
        except RedisUnavailable as exc:
            log.warning("metrics_state_unavailable", error=str(exc))
            states = {}
        labels = ["model", "feature", "window"]
        features = {
            key: GaugeMetricFamily(name, text, labels=labels) for key, name, text in _FEATURE_GAUGES
        }
        # A summary (quantile label + _count/_sum), as the exposition format requires.
        latency = Metric(
            "driftmon_latency_seconds", "Model latency over the window (quantiles).", "summary"
        )
        events = GaugeMetricFamily(
            "driftmon_window_events",
            "Valid events of the model in the window.",
            labels=["model", "window"],
        )
        rate = GaugeMetricFamily(
            "driftmon_window_events_per_second",
            "Event rate of the model over the window.",
            labels=["model", "window"],
        )
        severity = GaugeMetricFamily(
            "driftmon_drift_severity",
            "Severity: 0 ok, 1 info, 2 warning, 3 critical; per feature, and per window "
            "without the feature label.",
            labels=["model", "window", "feature"],
        )
        firing = GaugeMetricFamily(
            "driftmon_alerts_firing",
            "Alerts firing, by model, alert name and severity.",
            labels=["model", "alertname", "severity"],
        )
        for model, doc in states.items():
            for window, w in doc.get("windows", {}).items():
                events.add_metric([model, window], w.get("events", 0))
                rate.add_metric([model, window], w.get("events_per_second", 0.0))
                severity.add_metric([model, window, ""], _rank(w.get("severity")))
                _add_latency(latency, model, window, w.get("latency_ms") or {})
                for feature, f in w.get("features", {}).items():
                    severity.add_metric([model, window, feature], _rank(f.get("severity")))
                    for key, family in features.items():
                        value = f.get(key)
                        if value is not None:
                            family.add_metric([model, feature, window], value)
            counts: dict[tuple[str, str], int] = {}
            for alert in doc.get("alerts", []):
                k = (alert["alertname"], alert["severity"])
                counts[k] = counts.get(k, 0) + 1
            for (alertname, sev), n in sorted(counts.items()):
                firing.add_metric([model, alertname, sev], n)
        yield from features.values()
        yield from (latency, events, rate, severity, firing)


def _add_latency(family: Metric, model: str, window: str, lat: dict[str, Any]) -> None:
    labels = {"model": model, "window": window}
    name = family.name
    for key, quantile in (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99")):
        if lat.get(key) is not None:
            family.add_sample(name, {**labels, "quantile": quantile}, lat[key] / 1000.0)
    family.add_sample(f"{name}_count", labels, float(lat.get("count", 0)))
    family.add_sample(f"{name}_sum", labels, float(lat.get("sum", 0.0)) / 1000.0)


def _rank(severity: Any) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0
