"""A model whose window sums did not change since the last round is not evaluated again
(`Evaluator._evaluations`), yet its document and alerts are those of a full evaluation:
what depends on the time (NoTraffic, MonitorLagging) moves on, and any change of the
counts or of the window is evaluated in full."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import numpy as np
import redis

from monitor.baseline import baseline_from_document, build_baseline
from monitor.clock import FakeClock
from monitor.decode import ModelSchema
from monitor.evaluator import Evaluator
from monitor.metrics import Metrics
from monitor.settings import Settings
from monitor.window.buckets import expire_at
from monitor.window.keys import Keys
from monitor.window.store import BucketDelta, WindowStore

BUCKET = 60
MODELS = ["quiet", "busy"]


def _schema() -> ModelSchema:
    rng = np.random.default_rng(2)
    doc = build_baseline("m", {"x": rng.normal(0, 1, 2000).tolist()}, bins=4)
    return ModelSchema.from_baseline(baseline_from_document(doc))


class _World:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.store = WindowStore(client, self.keys)
        # 5 s into a bucket (real time: the buckets' TTLs lie ahead)
        self.clock = FakeClock(int(time.time() // BUCKET) * BUCKET + 5.0)
        self.settings = Settings(
            redis={"key_prefix": prefix},
            windows={"bucket_seconds": BUCKET, "sizes": ["5m", "10m"], "grace_seconds": 60},
            models={m: {"baseline": "unused.json"} for m in MODELS},
            rules={"no_traffic_seconds": 30},
        )
        self.schema = _schema()

    def evaluator(self) -> Evaluator:
        schemas = dict.fromkeys(MODELS, self.schema)
        return Evaluator(self.settings, schemas, self.client, self.clock, Metrics(), replica="r")

    def flush(self, model: str, buckets_ago: int, events: int) -> None:
        start = int(self.clock.now() // BUCKET) * BUCKET - buckets_ago * BUCKET
        fields = {"n": events, "f:x:0": events // 2, "f:x:1": events - events // 2}
        self.store.apply(model, [], [BucketDelta(start, expire_at(start, BUCKET, 600, 60), fields)])

    def docs(self) -> dict[str, dict[str, Any]]:
        raw = {m: self.client.get(self.keys.state(m)) for m in MODELS}
        return {m: msgspec.json.decode(d) for m, d in raw.items() if d}


def test_unchanged_models_write_what_a_fresh_evaluator_writes(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    world = _World(redis_client, key_prefix.rstrip(":"))
    for model in MODELS:
        world.flush(model, 1, 400)
    kept = world.evaluator()
    kept.run_once()
    first = world.docs()
    assert first["quiet"]["alerts"] == []  # silent for 5 s of the 30 allowed

    # 40 s later, in the same bucket: nothing new for "quiet", a flush for "busy".
    world.clock.advance(40)
    world.flush("busy", 0, 100)
    kept.run_once()
    second = world.docs()
    assert [a["alertname"] for a in second["quiet"]["alerts"]] == ["NoTraffic"]
    assert second["quiet"]["windows"] == first["quiet"]["windows"]
    assert second["busy"]["windows"]["5m"]["events"] == 500

    # A new evaluator (nothing kept) at the same time writes the same documents.
    world.evaluator().run_once()
    assert world.docs() == second

    # The window moves on (next bucket): "quiet" is evaluated in full again.
    world.clock.advance(BUCKET)
    kept.run_once()
    moved = world.docs()
    world.evaluator().run_once()
    assert world.docs() == moved
