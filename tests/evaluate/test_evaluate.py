"""evaluate_model on hand-made bucket counts, checked against scipy and plain formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from monitor.baseline import baseline_from_document, build_baseline
from monitor.decode import ModelSchema
from monitor.evaluate import EvaluationInput, evaluate_model
from monitor.kernels import insert_latencies, new_histogram
from monitor.settings import Rules
from monitor.window.counts import Counts, parse_bucket

NOW = 1_795_311_000.0


@pytest.fixture(scope="module")
def schema() -> ModelSchema:
    rng = np.random.default_rng(3)
    doc = build_baseline(
        "m",
        {"x": rng.normal(0, 1, 5000).tolist(), "c": rng.choice(["a", "b", "z"], 5000).tolist()},
        bins=4,
        top_k=2,
    )
    return ModelSchema.from_baseline(baseline_from_document(doc))


def spec(schema: ModelSchema, **kw: object) -> EvaluationInput:
    base = {
        "schema": schema,
        "rules": Rules(),
        "windows": {"1m": 60, "5m": 300},
        "bucket_seconds": 60,
        "latency_slo_ms": None,
        "no_traffic_seconds": 300.0,
    }
    return EvaluationInput(**{**base, **kw})  # type: ignore[arg-type]


def test_parse_bucket_and_numbers_match_scipy(schema: ModelSchema) -> None:
    fields = {
        "n": 400,
        "f:x:0": 10,
        "f:x:1": 90,
        "f:x:2": 100,
        "f:x:3": 200,
        "f:x:m": 0,
        "f:x:o": 7,
        "f:c:0": 50,
        "f:c:1": 150,
        "f:c:2": 180,
        "f:c:m": 20,
        "f:c:u": 30,
        "x:wrong_type": 4,
        "unknown": 1,
    }
    counts = parse_bucket(schema, fields)
    start = int(NOW // 60) * 60
    result = evaluate_model(spec(schema), [(start, counts)], NOW)
    x = result.windows["1m"]["features"]["x"]
    ref = schema.numeric[0].counts.astype(float)
    cur = np.array([10, 90, 100, 200], dtype=float)
    assert x["js_distance"] == pytest.approx(jensenshannon(ref, cur, base=2), abs=1e-9)
    p = (ref + 0.5) / (ref.sum() + 4 * 0.5)
    q = (cur + 0.5) / (cur.sum() + 4 * 0.5)
    assert x["psi"] == pytest.approx(float(np.sum((q - p) * np.log(q / p))), abs=1e-9)
    assert x["out_of_range_ratio"] == pytest.approx(7 / 400)
    c = result.windows["1m"]["features"]["c"]
    assert c["missing_ratio"] == pytest.approx(20 / 400)
    assert c["unseen_ratio"] == pytest.approx(30 / 380)
    assert result.windows["1m"]["invalid_events"] == 4
    assert x["severity"] == "critical"  # a large shift
    assert {f.alertname for f in result.findings if f.feature == "x" and f.severity != "ok"} >= {
        "FeatureDrift",
        "DataQualityOutOfRange",
    }


def test_windows_are_suffixes_of_the_buckets(schema: ModelSchema) -> None:
    start = int(NOW // 60) * 60
    one = parse_bucket(schema, {"n": 10, "f:x:0": 10})
    old = parse_bucket(schema, {"n": 5, "f:x:1": 5})
    result = evaluate_model(spec(schema), [(start - 240, old), (start, one)], NOW)
    assert result.windows["1m"]["events"] == 10
    assert result.windows["5m"]["events"] == 15
    assert result.windows["5m"]["events_per_second"] == pytest.approx(15 / 300)


def test_sample_size_guard_gives_no_drift_verdict(schema: ModelSchema) -> None:
    start = int(NOW // 60) * 60
    few = parse_bucket(schema, {"n": 39, "f:x:0": 39})  # < 10·K = 40
    result = evaluate_model(spec(schema), [(start, few)], NOW)
    drift = [f for f in result.findings if f.alertname == "FeatureDrift" and f.feature == "x"]
    assert drift and not any(f.known for f in drift)
    assert result.windows["1m"]["features"]["x"]["psi"] > 0.3  # still exported


def test_no_traffic_and_monitor_lagging(schema: ModelSchema) -> None:
    start = int(NOW // 60) * 60
    old = parse_bucket(schema, {"n": 100, "f:x:0": 100})
    silent = evaluate_model(spec(schema), [(start - 240, old), (start, Counts.zeros(schema))], NOW)
    (no_traffic,) = [f for f in silent.findings if f.alertname == "NoTraffic"]
    assert no_traffic.severity == "ok" and no_traffic.value == pytest.approx(NOW - (start - 180))
    later = evaluate_model(spec(schema, no_traffic_seconds=100.0), [(start - 240, old)], NOW)
    assert [f.severity for f in later.findings if f.alertname == "NoTraffic"] == ["warning"]
    lagging = evaluate_model(spec(schema, progress=(NOW - 1, NOW - 400)), [(start, old)], NOW)
    (lag,) = [f for f in lagging.findings if f.alertname == "MonitorLagging"]
    assert lag.severity == "warning" and lag.known and lag.value == pytest.approx(399)
    stale = evaluate_model(spec(schema, progress=(NOW - 600, NOW - 1000)), [(start, old)], NOW)
    assert not next(f for f in stale.findings if f.alertname == "MonitorLagging").known


def test_latency_slo(schema: ModelSchema) -> None:
    start = int(NOW // 60) * 60
    hist = new_histogram()
    insert_latencies(hist, np.full(1000, 300.0))
    counts = Counts.zeros(schema)
    counts.latency += hist
    counts.events = 1000
    result = evaluate_model(spec(schema, latency_slo_ms=250.0), [(start, counts)], NOW)
    (lat,) = [f for f in result.findings if f.alertname == "LatencyHigh" and f.window == "1m"]
    assert lat.severity == "critical" and math.isclose(lat.value, 300.0, rel_tol=0.01)
    assert result.windows["1m"]["latency_ms"]["count"] == 1000
    assert result.windows["1m"]["latency_ms"]["sum"] == pytest.approx(300_000, rel=0.01)
