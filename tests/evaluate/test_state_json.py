"""The state document the evaluator writes is byte for byte the one msgspec makes of the
dicts: `ModelEvaluation.windows_json` (per-feature entries poured into a byte template)
against `windows` (a dict per feature) and the per-feature reference, for the random
scenarios of test_equivalence, for feature names JSON must escape, and through an
evaluator round on Redis."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import numpy as np
import pytest
import redis

from monitor.baseline import baseline_from_document, build_baseline
from monitor.clock import FakeClock
from monitor.decode import ModelSchema
from monitor.evaluate import EvaluationInput, WindowTotals, evaluate_model, evaluate_totals
from monitor.evaluator import Evaluator
from monitor.metrics import Metrics
from monitor.settings import Rules, Settings
from monitor.window.buckets import expire_at, window_buckets
from monitor.window.counts import Counts, parse_bucket
from monitor.window.keys import Keys
from monitor.window.store import BucketDelta, WindowStore
from tests.evaluate.reference import reference_evaluate
from tests.evaluate.test_equivalence import NOW, _counts, _scenario

# Names JSON escapes, and % (a format character of the template).
ODD_NAMES = ["a%s", "100%", "%%b", 'q"uote', "back\\slash", "tab\tnew\nline", "é ü 中", "\x01"]


@pytest.mark.parametrize("seed", range(120))
def test_windows_json_encodes_like_the_dicts(seed: int) -> None:
    spec, buckets = _scenario(seed)
    result = evaluate_model(spec, buckets, NOW)
    expected = msgspec.json.encode(reference_evaluate(spec, buckets, NOW)[0])
    assert msgspec.json.encode(result.windows_json()) == expected
    assert msgspec.json.encode(result.windows) == expected


def test_windows_json_of_a_batch_matches_each_alone() -> None:
    """Every model of a batch reads its own rows of the shared columns."""
    scenarios = [_scenario(seed) for seed in range(60)]
    batch = []
    for spec, buckets in scenarios:
        totals = {}
        for name, seconds in spec.windows.items():
            total = Counts.zeros(spec.schema)
            for start, counts in buckets:
                if start > int(NOW // 60) * 60 - seconds:
                    total.add(counts)
            totals[name] = total
        last = max((s for s, c in buckets if c.events > 0), default=None)
        batch.append(WindowTotals(spec, totals, last))
    for (spec, buckets), result in zip(scenarios, evaluate_totals(batch, NOW), strict=True):
        expected = msgspec.json.encode(reference_evaluate(spec, buckets, NOW)[0])
        assert msgspec.json.encode(result.windows_json()) == expected


def _odd_schema(rng: np.random.Generator) -> ModelSchema:
    columns: dict[str, list[Any]] = {}
    for j, name in enumerate(ODD_NAMES):
        if j % 2:
            columns[name] = [str(rng.choice(["x", "y", "z"])) for _ in range(300)]
        else:
            columns[name] = rng.normal(0, 1, 300).tolist()
    doc = build_baseline("odd", columns, bins=4)
    return ModelSchema.from_baseline(baseline_from_document(doc))


def test_feature_names_json_escapes() -> None:
    rng = np.random.default_rng(5)
    schema = _odd_schema(rng)
    assert {p.name for p in (*schema.numeric, *schema.categorical)} == set(ODD_NAMES)
    spec = EvaluationInput(
        schema=schema,
        rules=Rules(),
        windows={"1m": 60, "5m": 300},
        bucket_seconds=60,
        latency_slo_ms=100.0,
        no_traffic_seconds=300.0,
    )
    current = int(NOW // 60) * 60
    buckets = [(current - 60 * i, _counts(rng, schema)) for i in range(3)]
    result = evaluate_model(spec, buckets, NOW)
    expected = msgspec.json.encode(reference_evaluate(spec, buckets, NOW)[0])
    assert msgspec.json.encode(result.windows_json()) == expected
    assert set(msgspec.json.decode(expected)["1m"]["features"]) == set(ODD_NAMES)


def test_the_evaluator_writes_the_documents_msgspec_makes_of_the_dicts(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    rng = np.random.default_rng(11)
    schema = _odd_schema(rng)
    keys = Keys(key_prefix.rstrip(":"))
    store = WindowStore(redis_client, keys)
    clock = FakeClock(time.time())  # real time: the buckets' TTLs lie ahead
    models = ["m0", "m1", "m2"]
    windows = {"5m": 300, "10m": 600}
    settings = Settings(
        redis={"key_prefix": keys.prefix},
        windows={"bucket_seconds": 60, "sizes": list(windows), "grace_seconds": 60},
        models={m: {"baseline": "unused.json", "latency_slo_ms": 50.0} for m in models},
    )
    starts = window_buckets(clock.now(), 600, 60)
    for i, model in enumerate(models):
        for start in starts[i::2]:
            fields = {"n": 100 + i, "l:300": 100}
            fields |= {
                f"f:{name}:{b}": int(rng.integers(0, 60)) for name in ODD_NAMES for b in (0, 1, 2)
            }
            fields |= {f"f:{ODD_NAMES[0]}:m": 7, f"f:{ODD_NAMES[1]}:u": 3}
            store.apply(model, [], [BucketDelta(start, expire_at(start, 60, 600, 60), fields)])
    evaluator = Evaluator(
        settings, dict.fromkeys(models, schema), redis_client, clock, Metrics(), replica="r"
    )
    assert evaluator.run_once() == models
    spec = EvaluationInput(
        schema=schema,
        rules=settings.rules,
        windows=windows,
        bucket_seconds=60,
        latency_slo_ms=50.0,
        no_traffic_seconds=settings.rules.no_traffic_seconds,
    )
    for model in models:
        raw = redis_client.get(keys.state(model))
        assert raw is not None
        buckets = []
        for start in starts:
            fields = {
                k.decode(): int(v)
                for k, v in redis_client.hgetall(keys.bucket(model, start)).items()
            }
            buckets.append((start, parse_bucket(schema, fields)))
        result = evaluate_model(spec, buckets, clock.now())
        doc = msgspec.json.decode(raw)
        expected = {**doc, "severity": result.severity, "windows": result.windows}
        assert list(doc) == [
            "model",
            "evaluated_at",
            "baseline_id",
            "severity",
            "windows",
            "alerts",
        ]
        assert raw == msgspec.json.encode(expected), model
