"""Evaluation round: 100 models x 50 features, windows 15m and 1h of 60 s buckets

What `Evaluator.run_once` does in one round, against a private redis-server: renew the
leases; read bucket versions, progress and alert states; read and parse the buckets that
changed; bring the window sums up to date; evaluate (PSI, JS, quality ratios, latency
quantiles, severities, findings, the alert state machine); write every state document.
Each model's 1h window holds 60 buckets written by the stream's apply script (every
feature bin populated, 40 latency buckets). Steady state: before each round, one flush
lands in every model's current bucket, so the round re-reads one bucket per model.
Cold: a new evaluator (empty cache) reads and parses all 60 buckets of every model.
The "of which" rows time the same steps alone, on the same data.
"""

from __future__ import annotations

import time

import msgspec
import numpy as np
import redis

from bench.core import Config, Row, Target, measure
from monitor.app import tune_gc
from monitor.baseline import baseline_from_document, build_baseline
from monitor.clock import FakeClock
from monitor.decode import ModelSchema
from monitor.evaluate import EvaluationInput, WindowTotals, evaluate_totals
from monitor.evaluator import Evaluator
from monitor.logs import configure_logging
from monitor.metrics import Metrics
from monitor.settings import Settings
from monitor.window.buckets import expire_at, window_buckets
from monitor.window.cache import WindowCache
from monitor.window.counts import layout_of, parse_packed
from monitor.window.keys import Keys
from monitor.window.store import BucketDelta, WindowStore, parse_versions
from tests.services import RedisServer

N_MODELS = 100
N_FEATURES = 50
BUCKET = 60
WINDOWS = {"15m": 900, "1h": 3600}
GRACE = 120
PREFIX = "bench"


def _schema(rng: np.random.Generator) -> ModelSchema:
    columns = {f"f{j:02d}": rng.normal(0, 1, 2000).tolist() for j in range(N_FEATURES)}
    doc = build_baseline("bench", columns, bins=10)
    return ModelSchema.from_baseline(baseline_from_document(doc))


def _fields(rng: np.random.Generator, events: int) -> dict[str, int]:
    """A bucket's (or a flush's) hash fields: `events` events over every feature."""
    fields = {"n": events}
    bins = rng.multinomial(events, [0.1] * 10, size=N_FEATURES)
    for j in range(N_FEATURES):
        fields |= {f"f:f{j:02d}:{b}": int(c) for b, c in enumerate(bins[j]) if c}
        fields[f"f:f{j:02d}:m"] = max(1, events // 300)
    fields |= {f"l:{i}": max(1, events // 40) for i in range(400, 440)}
    return fields


def run(config: Config) -> list[Row]:
    configure_logging("warning", "console")  # not one lease_acquired line per model
    tune_gc()  # as `driftmon run` does
    models = [f"m{i:03d}" for i in range(10 if config.quick else N_MODELS)]
    rng = np.random.default_rng(9)
    schema = _schema(rng)
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        try:
            return _run(config, client, schema, models, rng)
        finally:
            client.close()


def _run(
    config: Config,
    client: redis.Redis,
    schema: ModelSchema,
    models: list[str],
    rng: np.random.Generator,
) -> list[Row]:
    # Real time, so that the buckets' EXPIREAT lies ahead; the clock then stands still.
    clock = FakeClock(time.time())
    now = clock.now()
    starts = window_buckets(now, WINDOWS["1h"], BUCKET)
    current = starts[-1]
    store = WindowStore(client, Keys(PREFIX))

    def bucket(start: int, events: int) -> BucketDelta:
        return BucketDelta(
            start, expire_at(start, BUCKET, WINDOWS["1h"], GRACE), _fields(rng, events)
        )

    for model in models:
        store.apply(model, [], [bucket(start, 1000) for start in starts])
    settings = Settings(
        redis={"key_prefix": PREFIX},
        windows={"bucket_seconds": BUCKET, "sizes": list(WINDOWS), "grace_seconds": GRACE},
        models={m: {"baseline": "unused.json", "latency_slo_ms": 250.0} for m in models},
    )

    def evaluator() -> Evaluator:  # the same replica id: it keeps the leases
        return Evaluator(
            settings, dict.fromkeys(models, schema), client, clock, Metrics(), replica="bench"
        )

    def timed(fn: object) -> float:
        started = time.perf_counter()
        evaluated = fn()  # type: ignore[operator]
        elapsed = (time.perf_counter() - started) * 1000
        if len(evaluated) != len(models):
            raise RuntimeError(f"evaluated {len(evaluated)} of {len(models)} models")
        return elapsed

    cold = [timed(evaluator().run_once) for _ in range(2 if config.quick else 3)]

    steady_evaluator = evaluator()
    steady_evaluator.run_once()
    flushes = 0
    steady = []
    for _ in range(max(3, 3 * config.repeat)):
        for model in models:  # the stream's flush, not timed
            store.apply(model, [], [bucket(current, 10)])
        flushes += 1
        steady.append(timed(steady_evaluator.run_once))
    _check(client, models, 60 * 1000 + flushes * 10)

    # The same steps alone.
    quick = Config(repeat=config.repeat, min_run_s=0.0 if config.quick else 0.1, quick=config.quick)
    layout = layout_of(schema)
    current_only = [(m, current) for m in models]
    every_bucket = [(m, s) for m in models for s in starts]
    packed_current = store.read_packed(current_only)
    packed_all = store.read_packed(every_bucket)
    reads = measure(lambda: store.read_packed(current_only), quick, warmup=1)
    parse_steady = measure(
        lambda: [parse_packed(layout, p) for p in packed_current], quick, warmup=1
    )
    parse_cold = measure(lambda: [parse_packed(layout, p) for p in packed_all], quick, warmup=1)
    caches = []
    for i, model in enumerate(models):
        cache = WindowCache(layout, {w: s // BUCKET for w, s in WINDOWS.items()})
        versions = parse_versions(client.hgetall(Keys(PREFIX).bucket_versions(model)))
        flats = packed_all[i * len(starts) : (i + 1) * len(starts)]
        cache.update(
            starts,
            versions,
            {s: parse_packed(layout, p) for s, p in zip(starts, flats, strict=True)},
        )
        caches.append(cache)
    spec = EvaluationInput(
        schema=schema,
        rules=settings.rules,
        windows=WINDOWS,
        bucket_seconds=BUCKET,
        latency_slo_ms=250.0,
        no_traffic_seconds=300.0,
    )

    def evaluate_only() -> None:
        inputs = [WindowTotals(spec, c.totals(), c.last_traffic()) for c in caches]
        for result in evaluate_totals(inputs, now):
            result.findings_for({})

    compute = measure(evaluate_only, quick, warmup=1)

    ms = [s * 1000 for s in reads], [s * 1000 for s in parse_steady], [s * 1000 for s in compute]
    n = len(models)
    label = f"{n} models x {N_FEATURES} features, 15m + 1h windows"
    return [
        Row.from_samples(
            f"steady-state round, {label}: 1 changed bucket per model, with Redis",
            steady,
            "ms",
            Target("<", 50),
        ),
        Row.from_samples(f"of which reading the {n} changed buckets (one pipeline)", ms[0], "ms"),
        Row.from_samples(f"of which parsing the {n} changed buckets", ms[1], "ms"),
        Row.from_samples(
            f"of which evaluating {n} models (window sums kept, no Redis)", ms[2], "ms"
        ),
        Row.from_samples(
            f"cold round (new evaluator): reads and parses {n * len(starts):,} buckets", cold, "ms"
        ),
        Row.from_samples(
            f"of which parsing the {n * len(starts):,} buckets",
            [s * 1000 for s in parse_cold],
            "ms",
        ),
    ]


def _check(client: redis.Redis, models: list[str], events: int) -> None:
    """The state documents hold every event of the hour: the rounds did the real work."""
    for model in models:
        raw = client.get(Keys(PREFIX).state(model))
        doc = msgspec.json.decode(raw) if raw else {}
        got = doc.get("windows", {}).get("1h", {}).get("events")
        if got != events:
            raise RuntimeError(f"{model}: 1h window holds {got} events, expected {events}")
