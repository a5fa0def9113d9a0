"""Severity of one feature's metrics under the rules (pure; SPEC §3, §5).

Pipeline position: kernels -> **severity** -> evaluate/alerts. Both `driftmon compare`
(one batch) and the streaming evaluator (one window) call `classify_feature` with plain
numbers; `for` durations and hysteresis belong to the evaluator, which tracks time.

Rules applied here:
- drift: PSI and the Jensen-Shannon metric (`rules.js_metric`, default js_distance)
  against their thresholds, but only when the window holds at least
  ``rules.min_samples_per_bin · K`` binned values (the sample-size guard); below that
  the drift metrics are ``ok``. With `rules.psi_chi2` set, each PSI threshold is raised
  to at least the level sampling noise alone reaches (`psi_chi2_threshold`).
- missing: (missing ratio - the reference's own missing ratio) against `rules.missing`.
- out-of-range / unseen ratios against their thresholds.
A NaN or absent metric ("no data") is ``ok``. A feature's severity is the highest of
its metrics'.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor.kernels import enough_samples, psi_chi2_threshold
from monitor.settings import SEVERITIES, Rules, Severity, Thresholds

DRIFT_METRICS = ("psi", "js_distance", "js_divergence")
QUALITY_METRICS = ("missing_ratio", "out_of_range_ratio", "unseen_ratio")


@dataclass(frozen=True, slots=True)
class FeatureVerdict:
    """The severity of one feature and of each rule that was applied to it.

    `metrics` and `thresholds` are keyed by metric name (``psi``, the JS metric in
    force, ``missing_ratio``, ``out_of_range_ratio``, ``unseen_ratio``); `thresholds`
    holds the thresholds in force (PSI possibly raised by the chi² bar), and `values`
    the value each was compared with (the missing *excess* for ``missing_ratio``).
    """

    severity: Severity
    metrics: dict[str, Severity]
    thresholds: dict[str, Thresholds]
    values: dict[str, float]
    enough_samples: bool


def severity_rank(severity: Severity) -> int:
    """0 ok, 1 info, 2 warning, 3 critical (the `driftmon_drift_severity` gauge)."""
    return SEVERITIES.index(severity)


def max_severity(severities: Iterable[Severity]) -> Severity:
    """The highest severity; ``ok`` for none."""
    return max(severities, key=severity_rank, default="ok")


def at_least(severity: Severity, gate: Severity) -> bool:
    """True when `severity` reaches `gate` (``warning`` reaches ``warning`` and ``info``)."""
    return severity_rank(severity) >= severity_rank(gate)


def classify_feature(
    metrics: Mapping[str, float | None],
    rules: Rules,
    nbins: int,
    reference_missing_ratio: float,
    window_count: float,
    *,
    reference_count: float = math.inf,
) -> FeatureVerdict:
    """Classify one feature.

    `metrics` holds any of psi, js_distance, js_divergence, missing_ratio,
    out_of_range_ratio, unseen_ratio (None or NaN = no data). `window_count` is the
    number of *binned* (present, valid) values in the window, `reference_count` the
    reference's (for the chi² bar's 1/R term).
    """
    enough = enough_samples(window_count, nbins, rules.min_samples_per_bin)
    psi_rule = rules.psi
    if rules.psi_chi2 is not None:
        bar = psi_chi2_threshold(
            window_count,
            nbins,
            significance=rules.psi_chi2.significance,
            floor=rules.psi_chi2.floor,
            reference_count=reference_count,
        )
        psi_rule = _raised(rules.psi, bar)
    checks: dict[str, tuple[float, Thresholds]] = {
        "psi": (_value(metrics, "psi") if enough else math.nan, psi_rule),
        rules.js_metric: (
            _value(metrics, rules.js_metric) if enough else math.nan,
            rules.js_distance,
        ),
    }
    reference_missing = reference_missing_ratio if math.isfinite(reference_missing_ratio) else 0.0
    checks["missing_ratio"] = (_value(metrics, "missing_ratio") - reference_missing, rules.missing)
    if metrics.get("out_of_range_ratio") is not None:
        checks["out_of_range_ratio"] = (_value(metrics, "out_of_range_ratio"), rules.out_of_range)
    if metrics.get("unseen_ratio") is not None:
        checks["unseen_ratio"] = (_value(metrics, "unseen_ratio"), rules.unseen)
    severities = {name: rule.classify(value) for name, (value, rule) in checks.items()}
    return FeatureVerdict(
        severity=max_severity(severities.values()),
        metrics=severities,
        thresholds={name: rule for name, (_, rule) in checks.items()},
        values={name: value for name, (value, _) in checks.items()},
        enough_samples=enough,
    )


def _value(metrics: Mapping[str, float | None], name: str) -> float:
    value = metrics.get(name)
    return math.nan if value is None else float(value)


def _raised(rule: Thresholds, bar: float) -> Thresholds:
    if not bar > rule.info:
        return rule
    return Thresholds(
        info=max(rule.info, bar),
        warning=max(rule.warning, bar),
        critical=max(rule.critical, bar),
        for_seconds=rule.for_seconds,
        resolve_ratio=rule.resolve_ratio,
    )
