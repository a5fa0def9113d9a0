"""Evaluation round: 100 models x 50 features, windows 15m and 1h of 60 s buckets

Pure evaluation work, no Redis: for each model, parse the bucket hashes of its longest
window (60 buckets, every feature and bin populated, latency buckets too) and run
`evaluate_model` (PSI, JS, quality ratios, latency quantiles, severities, findings).
The evaluator also reads the buckets from Redis (one pipelined HGETALL per bucket) and
writes the state; those round trips are not in this number.
"""

from __future__ import annotations

import numpy as np

from bench.core import Config, Row, Target, measure
from monitor.baseline import baseline_from_document, build_baseline
from monitor.decode import ModelSchema
from monitor.evaluate import EvaluationInput, evaluate_model
from monitor.settings import Rules
from monitor.window.counts import parse_bucket

N_MODELS = 100
N_FEATURES = 50
BUCKET = 60
WINDOWS = {"15m": 900, "1h": 3600}


def _schema(rng: np.random.Generator) -> ModelSchema:
    columns = {f"f{j:02d}": rng.normal(0, 1, 2000).tolist() for j in range(N_FEATURES)}
    doc = build_baseline("bench", columns, bins=10)
    return ModelSchema.from_baseline(baseline_from_document(doc))


def _bucket(rng: np.random.Generator) -> dict[str, int]:
    fields = {"n": 1000}
    for j in range(N_FEATURES):
        for b, count in enumerate(rng.multinomial(1000, [0.1] * 10)):
            fields[f"f:f{j:02d}:{b}"] = int(count)
        fields[f"f:f{j:02d}:m"] = 3
    for i in range(400, 440):
        fields[f"l:{i}"] = 25
    return fields


def run(config: Config) -> list[Row]:
    rng = np.random.default_rng(9)
    schema = _schema(rng)
    now = 1_795_311_000.0
    start = int(now // BUCKET) * BUCKET
    n_buckets = WINDOWS["1h"] // BUCKET
    models = 10 if config.quick else N_MODELS
    hashes = [[_bucket(rng) for _ in range(n_buckets)] for _ in range(models)]
    spec = EvaluationInput(
        schema=schema,
        rules=Rules(),
        windows=WINDOWS,
        bucket_seconds=BUCKET,
        latency_slo_ms=250.0,
        no_traffic_seconds=300.0,
    )

    def parse_only() -> None:
        for rows in hashes:
            for row in rows:
                parse_bucket(schema, row)

    def round_() -> None:
        for rows in hashes:
            buckets = [
                (start - (n_buckets - 1 - i) * BUCKET, parse_bucket(schema, row))
                for i, row in enumerate(rows)
            ]
            evaluate_model(spec, buckets, now)

    quick = Config(repeat=min(config.repeat, 3), min_run_s=0.0, quick=config.quick)
    total = [s * 1000 for s in measure(round_, quick, warmup=1)]
    parse = [s * 1000 for s in measure(parse_only, quick, warmup=1)]
    label = f"{models} models x {N_FEATURES} features, 15m + 1h windows"
    return [
        Row.from_samples(f"evaluation round, {label}", total, "ms", Target("<", 50)),
        Row.from_samples(f"of which parsing bucket hashes ({n_buckets} per model)", parse, "ms"),
    ]
