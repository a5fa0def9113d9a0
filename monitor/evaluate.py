"""Evaluate: window counts + baseline + rules -> metrics, severities, findings (pure).

Stage 5 of the pipeline (source -> decode -> window -> kernels -> **evaluate** -> alerts).
Each window is a sum of bucket counts (`monitor.window.counts`): `evaluate_model` sums
the buckets itself; `evaluate_totals` takes the sums the evaluator keeps up to date
(`monitor.window.cache`), for many models at once. Metrics come from the kernels and
severities follow `monitor.severity.classify_feature`, for every feature of every window
of every model in one pass over arrays (`monitor.verdicts`). A `Finding` per alert
identity carries what the alert state machine (`monitor.alerts.rules`) needs: the
severity now, the value and threshold, the level below which the alert may resolve, and
the `for`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np

from monitor.decode import ModelSchema
from monitor.kernels import latency_summaries
from monitor.settings import Rules, Severity, Thresholds
from monitor.severity import max_severity
from monitor.verdicts import FeatureTable, Finding, evaluate_features
from monitor.window.counts import Counts, layout_of, sum_flat

__all__ = [
    "EvaluationInput",
    "Finding",
    "ModelEvaluation",
    "WindowTotals",
    "evaluate_model",
    "evaluate_totals",
    "iso_time",
]


@dataclass(frozen=True, slots=True)
class EvaluationInput:
    """Everything `evaluate_model` needs besides the counts."""

    schema: ModelSchema
    rules: Rules
    windows: Mapping[str, int]  # name -> seconds
    bucket_seconds: int
    latency_slo_ms: float | None
    no_traffic_seconds: float
    progress: tuple[float, float] | None = None  # (flushed_at, newest message time)
    evaluation_interval: float = 10.0


class ModelEvaluation:
    """The state document's `windows` section and the findings of one evaluation.

    Per-feature findings stay in arrays until asked for: `findings` builds every one,
    `findings_for(keys)` only those the alert state machine can act on. Likewise the
    per-feature entries of `windows` are built on first use; `windows_json` is what the
    evaluator encodes, without them.
    """

    __slots__ = ("_parts", "_summaries", "_tables", "_windows", "severity")

    def __init__(
        self,
        summaries: dict[str, dict[str, Any]],
        tables: list[FeatureTable],
        parts: list[FeatureTable | list[Finding]],
        severity: Severity,
    ) -> None:
        self._summaries = summaries  # per window, every key but the last, `features`
        self._tables = tables  # per window, its features
        self._windows: dict[str, dict[str, Any]] | None = None
        self.severity = severity
        self._parts = parts

    @property
    def windows(self) -> dict[str, dict[str, Any]]:
        """Per window: events, rates, latency and the `features` entries."""
        if self._windows is None:
            self._windows = {
                name: {**summary, "features": table.documents}
                for (name, summary), table in zip(
                    self._summaries.items(), self._tables, strict=True
                )
            }
        return self._windows

    def at(self, spec: EvaluationInput, last_traffic: int | None, now: float) -> ModelEvaluation:
        """This evaluation again at `now`, for a `spec` that differs at most in `progress`,
        and the same window sums: only NoTraffic and MonitorLagging can differ."""
        again = ModelEvaluation(
            self._summaries,
            self._tables,
            [*self._parts[:-1], _timely(spec, last_traffic, now)],
            self.severity,
        )
        again._windows = self._windows
        return again

    def windows_json(self) -> dict[str, dict[str, Any]]:
        """`windows` with each `features` already JSON (`msgspec.Raw`): msgspec encodes it
        to the same bytes as `windows`, without a dict per feature."""
        return {
            name: {**summary, "features": msgspec.Raw(table.documents_json())}
            for (name, summary), table in zip(self._summaries.items(), self._tables, strict=True)
        }

    @property
    def findings(self) -> list[Finding]:
        """Every alert identity's finding: per window the features', then the window's."""
        out: list[Finding] = []
        for part in self._parts:
            out += part.findings() if isinstance(part, FeatureTable) else part
        return out

    def findings_for(self, keys: Collection[str]) -> list[Finding]:
        """The findings `monitor.alerts.rules.step` can act on, in `findings` order.

        Those with a verdict above ``ok``, and those whose key is in `keys` (the alert
        states held). For any `states`, ``step(states, findings_for(states), now)``
        equals ``step(states, findings, now)``: a finding without a state and without
        an active verdict changes nothing.
        """
        out: list[Finding] = []
        for part in self._parts:
            if isinstance(part, FeatureTable):
                out += part.findings(keys)
            else:
                out += [f for f in part if (f.known and f.severity != "ok") or f.key in keys]
        return out


@dataclass(frozen=True, slots=True)
class WindowTotals:
    """One model's window sums, ready to evaluate."""

    spec: EvaluationInput
    totals: Mapping[str, Counts]  # window name -> summed counts
    last_traffic: int | None  # start of the newest bucket holding events (longest window)


def evaluate_model(
    spec: EvaluationInput, buckets: Sequence[tuple[int, Counts]], now: float
) -> ModelEvaluation:
    """Metrics and findings for every window; `buckets` are (start, counts), oldest first."""
    layout = layout_of(spec.schema)
    current = int(now // spec.bucket_seconds) * spec.bucket_seconds
    totals = {
        name: sum_flat(
            layout,
            (c.flat for start, c in buckets if start >= current - seconds + spec.bucket_seconds),
        )
        for name, seconds in spec.windows.items()
    }
    with_events = [start for start, counts in buckets if counts.events > 0]
    return evaluate_totals([WindowTotals(spec, totals, max(with_events, default=None))], now)[0]


def evaluate_totals(models: Sequence[WindowTotals], now: float) -> list[ModelEvaluation]:
    """Metrics and findings of many models at once, from their window sums."""
    if not models:
        return []
    ordered = [sorted(m.spec.windows.items(), key=lambda kv: kv[1]) for m in models]
    tables = evaluate_features(
        [
            (m.spec.schema, m.spec.rules, [(name, m.totals[name]) for name, _ in windows])
            for m, windows in zip(models, ordered, strict=True)
        ]
    )
    # p50, p95, p99, count, sum of every window of every model: one kernel call.
    latency = latency_summaries(
        np.stack(
            [
                m.totals[name].latency
                for m, windows in zip(models, ordered, strict=True)
                for name, _ in windows
            ]
        ),
        _QUANTILES,
    ).tolist()
    out, row = [], 0
    for m, windows, model_tables in zip(models, ordered, tables, strict=True):
        out.append(_evaluation(m, windows, model_tables, latency[row : row + len(windows)], now))
        row += len(windows)
    return out


_QUANTILES = (0.5, 0.95, 0.99)


def _evaluation(
    model: WindowTotals,
    ordered: list[tuple[str, int]],
    tables: list[FeatureTable],
    latencies: list[list[float]],
    now: float,
) -> ModelEvaluation:
    spec = model.spec
    windows: dict[str, dict[str, Any]] = {}
    parts: list[FeatureTable | list[Finding]] = []
    for (name, seconds), table, latency in zip(ordered, tables, latencies, strict=True):
        total = model.totals[name]
        p50, p95, p99, count, latency_sum = latency
        windows[name] = {
            "events": total.events,
            "events_per_second": total.events / seconds,
            "invalid_events": total.invalid,
            "severity": table.severity,
            "latency_ms": {
                "p50": _num(p50),
                "p95": _num(p95),
                "p99": _num(p99),
                "count": int(count),
                "sum": latency_sum,
            },
        }
        parts += [
            table,
            [
                *_latency_finding(spec, name, p99),
                _invalid_finding(spec.rules, name, total),
            ],
        ]
    parts.append(_timely(spec, model.last_traffic, now))
    severity = max_severity(w["severity"] for w in windows.values())
    return ModelEvaluation(windows, tables, parts, severity)


def _timely(spec: EvaluationInput, last_traffic: int | None, now: float) -> list[Finding]:
    """The findings that depend on the time and progress, not on the window sums (the
    last part of `ModelEvaluation`'s, which `ModelEvaluation.at` replaces)."""
    return [*_no_traffic(spec, last_traffic, now), *_lagging(spec, now)]


def _threshold(rule: Thresholds, severity: Severity) -> float:
    return {"critical": rule.critical, "warning": rule.warning}.get(severity, rule.info)


def _latency_finding(spec: EvaluationInput, window: str, p99: float) -> list[Finding]:
    slo = spec.latency_slo_ms
    if slo is None:
        return []
    breached = math.isfinite(p99) and p99 > slo
    return [
        Finding(
            alertname="LatencyHigh",
            window=window,
            feature=None,
            severity="critical" if breached else "ok",
            value=p99 if math.isfinite(p99) else 0.0,
            threshold=slo,
            clear=not p99 >= 0.8 * slo,
            for_seconds=spec.rules.latency_for_seconds,
            known=math.isfinite(p99),
        )
    ]


def _invalid_finding(rules: Rules, window: str, total: Counts) -> Finding:
    seen = total.events + total.invalid
    ratio = total.invalid / seen if seen else 0.0
    rule = rules.invalid
    severity = rule.classify(ratio)
    return Finding(
        alertname="InvalidEvents",
        window=window,
        feature=None,
        severity=severity,
        value=ratio,
        threshold=_threshold(rule, severity),
        clear=ratio < rule.resolve_ratio * rule.info,
        for_seconds=rule.for_seconds,
        known=seen >= rules.min_samples_per_bin * 10,
    )


def _no_traffic(spec: EvaluationInput, last_traffic: int | None, now: float) -> list[Finding]:
    """A model that was sending (within its longest window) has gone silent."""
    if last_traffic is None:
        return []  # never sent (or long gone): not "a model that was sending"
    silence = max(0.0, now - (last_traffic + spec.bucket_seconds))
    limit = spec.no_traffic_seconds
    longest = max(spec.windows, key=lambda w: spec.windows[w])
    return [
        Finding(
            alertname="NoTraffic",
            window=longest,
            feature=None,
            severity="warning" if silence >= limit else "ok",
            value=silence,
            threshold=limit,
            clear=silence < limit,
            for_seconds=0.0,
        )
    ]


def _lagging(spec: EvaluationInput, now: float) -> list[Finding]:
    """Counts reach Redis, but for messages produced long ago: the consumer is behind.

    Only judged while flushes are recent (a silent model is NoTraffic's business).
    """
    if spec.progress is None:
        return []
    flushed_at, newest = spec.progress
    fresh = now - flushed_at <= 3 * spec.evaluation_interval + 5
    lag = max(0.0, flushed_at - newest)
    limit = spec.rules.lag_seconds
    longest = max(spec.windows, key=lambda w: spec.windows[w])
    return [
        Finding(
            alertname="MonitorLagging",
            window=longest,
            feature=None,
            severity="warning" if lag >= limit else "ok",
            value=lag,
            threshold=limit,
            clear=lag < 0.8 * limit,
            for_seconds=spec.rules.lag_for_seconds,
            known=fresh,
        )
    ]


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def iso_time(epoch: float) -> str:
    """RFC 3339 UTC with a Z, second precision (the state document's timestamps)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
