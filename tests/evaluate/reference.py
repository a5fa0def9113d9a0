"""The evaluation as it was written first: one feature at a time, in plain Python.

Kept as the slow, obviously correct reference the vectorized `monitor.evaluate` must
reproduce exactly (tests/evaluate/test_equivalence.py). It applies
`monitor.severity.classify_feature` per feature, as `driftmon compare` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.baseline import CategoricalProfile, NumericProfile
from monitor.decode import PREDICTION
from monitor.evaluate import EvaluationInput, Finding
from monitor.kernels import (
    divergence_rows,
    latency_quantiles,
    latency_sum,
    quality_ratios,
)
from monitor.settings import Rules, Severity, Thresholds
from monitor.severity import classify_feature, max_severity
from monitor.window.counts import Counts

IntArray = npt.NDArray[np.int64]


def reference_evaluate(
    spec: EvaluationInput, buckets: Sequence[tuple[int, Counts]], now: float
) -> tuple[dict[str, dict[str, Any]], list[Finding], Severity]:
    """Metrics and findings for every window; `buckets` are (start, counts), oldest first."""
    windows: dict[str, dict[str, Any]] = {}
    findings: list[Finding] = []
    for name, seconds in sorted(spec.windows.items(), key=lambda kv: kv[1]):
        oldest = (
            int(now // spec.bucket_seconds) * spec.bucket_seconds - seconds + spec.bucket_seconds
        )
        total = Counts.zeros(spec.schema)
        for start, counts in buckets:
            if start >= oldest:
                total.add(counts)
        doc, window_findings = _evaluate_window(spec, name, seconds, total)
        windows[name] = doc
        findings += window_findings
    findings += _no_traffic(spec, buckets, now)
    findings += _lagging(spec, now)
    severity = max_severity(w["severity"] for w in windows.values())
    return windows, findings, severity


def _evaluate_window(
    spec: EvaluationInput, window: str, seconds: int, total: Counts
) -> tuple[dict[str, Any], list[Finding]]:
    schema, rules = spec.schema, spec.rules
    features: dict[str, dict[str, Any]] = {}
    findings: list[Finding] = []
    profiles: list[NumericProfile | CategoricalProfile] = [*schema.numeric, *schema.categorical]
    k_max = max([total.numeric.shape[1], *(c.size for c in total.categorical)], default=1)
    ref = np.zeros((len(profiles), k_max))
    cur = np.zeros((len(profiles), k_max))
    nbins = np.array([p.nbins for p in profiles], dtype=np.int64)
    for j, p in enumerate(profiles):
        ref[j, : p.nbins] = p.counts
    n_num = len(schema.numeric)
    cur[:n_num, : total.numeric.shape[1]] = total.numeric
    for j, counts in enumerate(total.categorical):
        cur[n_num + j, : counts.size] = counts
    psi, jsd, jsdist = divergence_rows(ref, cur, nbins, rules.pseudocount)
    events = np.full(len(profiles), float(total.events))
    missing = np.concatenate([total.numeric_missing, total.categorical_missing]).astype(float)
    flagged = np.concatenate([total.numeric_oor, total.unseen]).astype(float)
    flagged = np.minimum(flagged, np.maximum(events - missing, 0))
    missing = np.minimum(missing, events)
    missing_ratio, flagged_ratio = quality_ratios(events, missing, flagged)
    for j, p in enumerate(profiles):
        numeric = j < n_num
        metrics = {
            "psi": _num(psi[j]),
            "js_distance": _num(jsdist[j]),
            "js_divergence": _num(jsd[j]),
            "missing_ratio": _num(missing_ratio[j]),
            "out_of_range_ratio": _num(flagged_ratio[j]) if numeric else None,
            "unseen_ratio": None if numeric else _num(flagged_ratio[j]),
        }
        binned = float(cur[j, : p.nbins].sum())
        verdict = classify_feature(
            metrics, rules, p.nbins, p.missing_ratio, binned, reference_count=float(p.counts.sum())
        )
        features[p.name] = {"events": total.events, **metrics, "severity": verdict.severity}
        findings += _feature_findings(
            window,
            p.name,
            verdict.values,
            verdict.thresholds,
            verdict.metrics,
            verdict.enough_samples,
            rules,
            total.events,
        )
    latency = latency_quantiles(total.latency, (0.5, 0.95, 0.99))
    p99 = float(latency[2])
    findings += _latency_finding(spec, window, p99)
    findings.append(_invalid_finding(rules, window, total))
    doc = {
        "events": total.events,
        "events_per_second": total.events / seconds,
        "invalid_events": total.invalid,
        "severity": max_severity(f["severity"] for f in features.values()),
        "latency_ms": {
            **{q: _num(v) for q, v in zip(("p50", "p95", "p99"), latency, strict=True)},
            "count": int(total.latency.sum()),
            "sum": latency_sum(total.latency),
        },
        "features": features,
    }
    return doc, findings


def _feature_findings(
    window: str,
    feature: str,
    values: Mapping[str, float],
    thresholds: Mapping[str, Thresholds],
    severities: Mapping[str, Severity],
    enough: bool,
    rules: Rules,
    events: int,
) -> list[Finding]:
    drift_name = "PredictionDrift" if feature == PREDICTION else "FeatureDrift"
    drift = [m for m in ("psi", rules.js_metric) if m in values]
    out = [_pick(drift_name, window, feature, drift, values, thresholds, severities, enough)]
    min_events = rules.min_samples_per_bin * 10  # a ratio over fewer events is noise
    quality = (
        ("DataQualityMissing", "missing_ratio"),
        ("DataQualityOutOfRange", "out_of_range_ratio"),
        ("DataQualityUnseenCategory", "unseen_ratio"),
    )
    for alertname, metric in quality:
        if metric in values:
            out.append(
                _pick(
                    alertname,
                    window,
                    feature,
                    [metric],
                    values,
                    thresholds,
                    severities,
                    events >= min_events,
                )
            )
    return out


def _pick(
    alertname: str,
    window: str,
    feature: str,
    metrics: list[str],
    values: Mapping[str, float],
    thresholds: Mapping[str, Thresholds],
    severities: Mapping[str, Severity],
    known: bool,
) -> Finding:
    """The finding of the metric with the highest severity (the first one on ties)."""
    ranked = sorted(
        metrics, key=lambda m: -["ok", "info", "warning", "critical"].index(severities[m])
    )
    metric = ranked[0]
    rule, severity, value = thresholds[metric], severities[metric], values[metric]
    # Clear only when *every* metric of the rule is below its resolve bound.
    clear = all(not values[m] >= thresholds[m].resolve_ratio * thresholds[m].info for m in metrics)
    return Finding(
        alertname=alertname,
        window=window,
        feature=feature,
        severity=severity,
        value=value if math.isfinite(value) else 0.0,
        threshold=_threshold(rule, severity),
        clear=clear,
        for_seconds=rule.for_seconds,
        known=known and math.isfinite(value),
    )


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


def _no_traffic(
    spec: EvaluationInput, buckets: Sequence[tuple[int, Counts]], now: float
) -> list[Finding]:
    """A model that was sending (within its longest window) has gone silent."""
    with_events = [start for start, counts in buckets if counts.events > 0]
    if not with_events:
        return []  # never sent (or long gone): not "a model that was sending"
    silence = max(0.0, now - (max(with_events) + spec.bucket_seconds))
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
