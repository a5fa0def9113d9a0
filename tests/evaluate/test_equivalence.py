"""The vectorized evaluation reproduces the per-feature reference exactly.

Random schemas, buckets and rules; the state document (byte for byte, key order
included), every finding and the model severity must equal what
`tests/evaluate/reference.py` (one feature at a time, `classify_feature`) computes.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest

from monitor.alerts.rules import AlertState, step
from monitor.baseline import baseline_from_document, build_baseline
from monitor.decode import PREDICTION, ModelSchema
from monitor.evaluate import EvaluationInput, WindowTotals, evaluate_model, evaluate_totals
from monitor.kernels import N_BUCKETS
from monitor.settings import SEVERITIES, Rules
from monitor.window.counts import Counts
from tests.evaluate.reference import reference_evaluate

NOW = 1_795_311_017.0
BUCKET = 60
WINDOWS = {"1m": 60, "5m": 300}


def _schema(rng: np.random.Generator) -> ModelSchema:
    columns: dict[str, list[Any]] = {}
    for j in range(int(rng.integers(0, 5))):
        values: list[Any] = rng.normal(0, 1, 400).round(int(rng.integers(0, 3))).tolist()
        if rng.random() < 0.3:
            values = [None if rng.random() < 0.2 else v for v in values]
        columns[f"n{j}:x" if j == 1 else f"n{j}"] = values
    for j in range(int(rng.integers(0 if columns else 1, 4))):
        cats = [f"c{i}" for i in range(int(rng.integers(1, 8)))]
        columns[f"c{j}"] = [
            None if rng.random() < 0.1 else str(rng.choice(cats)) for _ in range(400)
        ]
    if rng.random() < 0.5:
        columns[PREDICTION] = rng.uniform(0, 1, 400).tolist()
    doc = build_baseline("m", columns, bins=int(rng.integers(1, 9)), top_k=int(rng.integers(1, 6)))
    return ModelSchema.from_baseline(baseline_from_document(doc))


def _counts(rng: np.random.Generator, schema: ModelSchema) -> Counts:
    counts = Counts.zeros(schema)
    scale = int(rng.choice([0, 5, 40, 400, 5000]))
    counts.events = int(rng.integers(0, scale + 1))
    counts.invalid = int(rng.integers(0, 3)) * int(rng.integers(0, scale + 1))
    counts.numeric = rng.integers(0, scale + 1, counts.numeric.shape)
    counts.numeric_missing = rng.integers(0, scale + 1, counts.numeric_missing.shape)
    counts.numeric_oor = rng.integers(0, max(1, scale // 20) + 1, counts.numeric_oor.shape)
    for bins in counts.categorical:
        bins[:] = rng.integers(0, scale + 1, bins.shape)
    counts.categorical_missing = rng.integers(0, scale + 1, counts.categorical_missing.shape)
    counts.unseen = rng.integers(0, max(1, scale // 10) + 1, counts.unseen.shape)
    if rng.random() < 0.7:
        lo = int(rng.integers(0, N_BUCKETS - 50))
        counts.latency[lo : lo + 50] = rng.integers(0, scale + 1, 50)
    return counts


def _rules(rng: np.random.Generator) -> Rules:
    variants: list[dict[str, Any]] = [
        {},
        {"psi_chi2": {"significance": 0.01, "floor": 0.01}},
        {"psi_chi2": {"significance": 0.2}},
        {"psi_chi2": {"significance": 0.01, "floor": 0.25}, "min_samples_per_bin": 1.0},
        {"js_metric": "js_divergence"},
        {"pseudocount": 0.0},
        {"min_samples_per_bin": 0.0},
        {"min_samples_per_bin": 50.0},
        {
            "psi": {"info": 0.05, "warning": 0.05, "critical": 0.4, "for_seconds": 5},
            "js_distance": {"info": 0.01, "warning": 0.2, "critical": 0.2, "resolve_ratio": 0.5},
            "missing": {"info": 0.0, "warning": 0.1, "critical": 0.9},
            "out_of_range": {"info": 0.001, "warning": 0.002, "critical": 0.5},
            "unseen": {"info": 0.3, "warning": 0.3, "critical": 0.3, "for_seconds": 0},
        },
    ]
    return Rules.model_validate(variants[int(rng.integers(0, len(variants)))])


def _scenario(seed: int) -> tuple[EvaluationInput, list[tuple[int, Counts]]]:
    rng = np.random.default_rng(seed)
    schema = _schema(rng)
    current = int(NOW // BUCKET) * BUCKET
    starts = sorted(
        {current - BUCKET * int(i) for i in rng.integers(0, 7, int(rng.integers(0, 6)))}
    )
    buckets = [(start, _counts(rng, schema)) for start in starts]
    spec = EvaluationInput(
        schema=schema,
        rules=_rules(rng),
        windows=WINDOWS,
        bucket_seconds=BUCKET,
        latency_slo_ms=[None, 1.0, 250.0][int(rng.integers(0, 3))],
        no_traffic_seconds=float(rng.choice([30.0, 300.0])),
        progress=None if rng.random() < 0.5 else (NOW - 1, NOW - float(rng.integers(0, 300))),
    )
    return spec, buckets


@pytest.mark.parametrize("seed", range(120))
def test_matches_the_per_feature_reference(seed: int) -> None:
    spec, buckets = _scenario(seed)
    result = evaluate_model(spec, buckets, NOW)
    windows, findings, severity = reference_evaluate(spec, buckets, NOW)
    assert msgspec.json.encode(result.windows) == msgspec.json.encode(windows)
    assert result.findings == findings
    assert result.severity == severity


def test_a_batch_of_different_models_matches_each_alone() -> None:
    scenarios = [_scenario(seed) for seed in range(60)]
    batch = []
    for spec, buckets in scenarios:
        current = int(NOW // BUCKET) * BUCKET
        totals = {}
        for name, seconds in spec.windows.items():
            total = Counts.zeros(spec.schema)
            for start, counts in buckets:
                if start > current - seconds:
                    total.add(counts)
            totals[name] = total
        last = max((s for s, c in buckets if c.events > 0), default=None)
        batch.append(WindowTotals(spec, totals, last))
    assert len({id(spec.rules) for spec, _ in scenarios}) > 1
    for (spec, buckets), result in zip(scenarios, evaluate_totals(batch, NOW), strict=True):
        windows, findings, severity = reference_evaluate(spec, buckets, NOW)
        assert msgspec.json.encode(result.windows) == msgspec.json.encode(windows)
        assert result.findings == findings
        assert result.severity == severity


def test_scenarios_reach_every_severity_and_rule() -> None:
    """The random scenarios above are not all quiet: they exercise what they claim to."""
    seen: set[tuple[str, str]] = set()
    unknown = 0
    for seed in range(120):
        spec, buckets = _scenario(seed)
        for f in evaluate_model(spec, buckets, NOW).findings:
            seen.add((f.alertname, f.severity))
            unknown += not f.known
    for alertname in ("FeatureDrift", "DataQualityMissing", "DataQualityOutOfRange"):
        assert {(alertname, s) for s in SEVERITIES} <= seen, alertname
    assert ("PredictionDrift", "critical") in seen
    assert ("DataQualityUnseenCategory", "critical") in seen
    assert unknown > 0


@pytest.mark.parametrize("seed", range(60))
def test_findings_for_held_states_step_like_all_findings(seed: int) -> None:
    spec, buckets = _scenario(seed)
    result = evaluate_model(spec, buckets, NOW)
    everything = result.findings
    rng = np.random.default_rng(1000 + seed)
    keys = [f.key for f in everything if rng.random() < 0.2] + ["FeatureDrift/gone/1m"]
    states = {
        key: AlertState(
            status=str(rng.choice(["pending", "firing"])),  # type: ignore[arg-type]
            severity=str(rng.choice(SEVERITIES[1:])),  # type: ignore[arg-type]
            condition_since=NOW - float(rng.integers(0, 600)),
            firing_since=NOW - 30,
            clear_since=None if rng.random() < 0.5 else NOW - float(rng.integers(0, 120)),
            lower_since=None if rng.random() < 0.5 else NOW - float(rng.integers(0, 120)),
        )
        for key in keys
    }
    assert step(states, result.findings_for(states), NOW) == step(states, everything, NOW)
    active = [f for f in everything if f.known and f.severity != "ok"]
    assert set(result.findings_for({})) == set(active)
