"""Evaluation round: 100 models x 50 features, windows 15m and 1h of 60 s buckets

What `Evaluator.run_once` does in one round, against a private redis-server: renew the
leases; read bucket versions, progress and alert states; read and parse the buckets that
changed; bring the window sums up to date; evaluate (PSI, JS, quality ratios, latency
quantiles, severities, findings, the alert state machine); write every state document.
Each model's 1h window holds 60 buckets written by the stream's apply script (every
feature bin populated, 40 latency buckets). Steady state: before each round, one flush
lands in every model's current bucket, so the round re-reads one bucket per model.
Cold: a new evaluator (empty cache) reads and parses all 60 buckets of every model.
Idle: models without any traffic in the hour (nothing to read, documents still written).
The "alone" rows time one step of the steady round by itself, on the same data; in the
round, Redis packs buckets while Python evaluates, so they do not add up to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
import numpy as np
import redis

from bench.core import Config, Row, Target, measure
from monitor.app import tune_gc
from monitor.baseline import baseline_from_document, build_baseline
from monitor.clock import FakeClock
from monitor.conversation import raw_replies
from monitor.decode import ModelSchema
from monitor.evaluate import EvaluationInput, WindowTotals, evaluate_totals
from monitor.evaluator import Evaluator
from monitor.logs import configure_logging
from monitor.metrics import Metrics
from monitor.settings import Settings
from monitor.window.buckets import expire_at, window_buckets
from monitor.window.cache import WindowCache
from monitor.window.counts import layout_of, parse_raw
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


class _Setup:
    """A private Redis holding an hour of buckets for every model, and evaluators on it."""

    def __init__(self, client: redis.Redis, schema: ModelSchema, n_models: int) -> None:
        self.client, self.schema = client, schema
        self.models = [f"m{i:03d}" for i in range(n_models)]
        self.rng = np.random.default_rng(9)
        self.clock = FakeClock(time.time())  # real time: the buckets' EXPIREAT lies ahead
        self.starts = window_buckets(self.clock.now(), WINDOWS["1h"], BUCKET)
        self.store = WindowStore(client, Keys(PREFIX))
        for model in self.models:
            self.store.apply(model, [], [self.bucket(start, 1000) for start in self.starts])

    def bucket(self, start: int, events: int) -> BucketDelta:
        expires = expire_at(start, BUCKET, WINDOWS["1h"], GRACE)
        return BucketDelta(start, expires, _fields(self.rng, events))

    def settings(self, prefix: str, models: list[str]) -> Settings:
        return Settings(
            redis={"key_prefix": prefix},
            windows={"bucket_seconds": BUCKET, "sizes": list(WINDOWS), "grace_seconds": GRACE},
            models={m: {"baseline": "unused.json", "latency_slo_ms": 250.0} for m in models},
        )

    def evaluator(self, prefix: str = PREFIX, models: list[str] | None = None) -> Evaluator:
        names = models or self.models
        schemas = dict.fromkeys(names, self.schema)
        settings = self.settings(prefix, names)
        # The same replica id every time: it keeps the leases.
        return Evaluator(settings, schemas, self.client, self.clock, Metrics(), replica="bench")


def run(config: Config) -> list[Row]:
    configure_logging("warning", "console")  # not one lease_acquired line per model
    tune_gc()  # as `driftmon run` does
    rng = np.random.default_rng(9)
    schema = _schema(rng)
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        try:
            setup = _Setup(client, schema, 10 if config.quick else N_MODELS)
            return _rows(config, setup)
        finally:
            client.close()


def _rows(config: Config, setup: _Setup) -> list[Row]:
    n, buckets = len(setup.models), len(setup.models) * len(setup.starts)
    cold = [_round(setup.evaluator().run_once, n) for _ in range(2 if config.quick else 3)]
    steady = _steady(config, setup)
    idle_models = [f"idle{i:03d}" for i in range(n)]
    idle_evaluator = setup.evaluator("idle", idle_models)
    idle_evaluator.run_once()
    idle = [_round(idle_evaluator.run_once, n) for _ in range(config.repeat)]
    reads, parse_current, parse_all, evaluate_alone = _alone(config, setup)
    label = f"{n} models x {N_FEATURES} features, 15m + 1h windows"
    return [
        Row.from_samples(
            f"steady-state round, {label}: 1 changed bucket per model, with Redis",
            steady,
            "ms",
            Target("<", 50),
        ),
        Row.from_samples(f"alone: reading the {n} changed buckets (one pipeline)", reads, "ms"),
        Row.from_samples(f"alone: parsing the {n} changed buckets", parse_current, "ms"),
        Row.from_samples(
            f"alone: evaluating {n} models from their window sums (no Redis)",
            evaluate_alone,
            "ms",
        ),
        Row.from_samples(
            f"cold round (new evaluator): reads and parses {buckets:,} buckets", cold, "ms"
        ),
        Row.from_samples(f"alone: parsing the {buckets:,} buckets", parse_all, "ms"),
        Row.from_samples(f"idle round: {n} models without traffic", idle, "ms"),
    ]


def _round(run_once: Callable[[], list[str]], n: int) -> float:
    started = time.perf_counter()
    evaluated = run_once()
    elapsed = (time.perf_counter() - started) * 1000
    if len(evaluated) != n:
        raise RuntimeError(f"evaluated {len(evaluated)} of {n} models")
    return elapsed


def _steady(config: Config, setup: _Setup) -> list[float]:
    evaluator = setup.evaluator()
    evaluator.run_once()
    current = setup.starts[-1]
    samples = []
    rounds = max(3, 3 * config.repeat)
    for _ in range(rounds):
        for model in setup.models:  # the stream's flush, not timed
            setup.store.apply(model, [], [setup.bucket(current, 10)])
        samples.append(_round(evaluator.run_once, len(setup.models)))
    _check(setup.client, setup.models, 60 * 1000 + rounds * 10)
    return samples


def _alone(config: Config, setup: _Setup) -> tuple[list[float], ...]:
    """Reading and parsing the current buckets, parsing all, evaluating: each alone."""
    quick = Config(repeat=config.repeat, min_run_s=0.0 if config.quick else 0.1)
    layout = layout_of(setup.schema)
    keys = Keys(PREFIX)
    current = [("HGETALL", keys.bucket(m, setup.starts[-1])) for m in setup.models]
    every = [("HGETALL", keys.bucket(m, s)) for m in setup.models for s in setup.starts]
    raw_current, raw_all = raw_replies(setup.client, current), raw_replies(setup.client, every)
    caches = []
    for i, model in enumerate(setup.models):
        cache = WindowCache(layout, {w: s // BUCKET for w, s in WINDOWS.items()})
        versions = parse_versions(setup.client.hgetall(Keys(PREFIX).bucket_versions(model)))
        flats = raw_all[i * len(setup.starts) : (i + 1) * len(setup.starts)]
        parsed = {s: parse_raw(layout, r) for s, r in zip(setup.starts, flats, strict=True)}
        cache.update(setup.starts, versions, parsed)
        caches.append(cache)
    spec = EvaluationInput(
        schema=setup.schema,
        rules=setup.settings(PREFIX, setup.models).rules,
        windows=WINDOWS,
        bucket_seconds=BUCKET,
        latency_slo_ms=250.0,
        no_traffic_seconds=300.0,
    )

    def evaluate_only() -> None:
        inputs = [WindowTotals(spec, c.totals(), c.last_traffic()) for c in caches]
        for result in evaluate_totals(inputs, setup.clock.now()):
            result.findings_for({})

    timings = (
        measure(lambda: raw_replies(setup.client, current), quick, warmup=1),
        measure(lambda: [parse_raw(layout, r) for r in raw_current], quick, warmup=1),
        measure(lambda: [parse_raw(layout, r) for r in raw_all], quick, warmup=1),
        measure(evaluate_only, quick, warmup=1),
    )
    return tuple([s * 1000 for s in samples] for samples in timings)


def _check(client: redis.Redis, models: list[str], events: int) -> None:
    """The state documents hold every event of the hour: the rounds did the real work."""
    for model in models:
        raw = client.get(Keys(PREFIX).state(model))
        doc = msgspec.json.decode(raw) if raw else {}
        got = doc.get("windows", {}).get("1h", {}).get("events")
        if got != events:
            raise RuntimeError(f"{model}: 1h window holds {got} events, expected {events}")
