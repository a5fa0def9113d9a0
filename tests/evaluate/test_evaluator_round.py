"""Evaluator rounds on a real Redis: what the cache and the chunked, overlapped round
write equals evaluating every bucket from scratch, through flushes, late data, a script
flush, lost data and a lease split."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import numpy as np
import pytest
import redis

from monitor.baseline import baseline_from_document, build_baseline
from monitor.clock import FakeClock
from monitor.conversation import Conversation
from monitor.decode import ModelSchema
from monitor.evaluate import EvaluationInput, evaluate_model
from monitor.evaluator import CHUNK, Evaluator
from monitor.metrics import Metrics
from monitor.settings import Settings
from monitor.states import read_states
from monitor.window.buckets import expire_at, window_buckets
from monitor.window.counts import parse_bucket
from monitor.window.keys import Keys
from monitor.window.store import BucketDelta, WindowStore

BUCKET = 60
WINDOWS = {"5m": 300, "10m": 600}
MODELS = [f"m{i:02d}" for i in range(2 * CHUNK + 5)]  # three chunks


@pytest.fixture(scope="module")
def schema() -> ModelSchema:
    rng = np.random.default_rng(8)
    doc = build_baseline(
        "m",
        {"x": rng.normal(0, 1, 3000).tolist(), "c": rng.choice(["a", "b", "c"], 3000).tolist()},
        bins=4,
    )
    return ModelSchema.from_baseline(baseline_from_document(doc))


def _fields(rng: np.random.Generator, events: int, shift: float = 0.0) -> dict[str, int]:
    bins = rng.multinomial(events, np.roll([0.4, 0.3, 0.2, 0.1], int(shift)))
    fields = {"n": events, "f:c:0": events // 2, "f:c:1": events - events // 2}
    fields |= {f"f:x:{i}": int(c) for i, c in enumerate(bins) if c}
    fields |= {"f:x:m": events // 20, "l:500": events, "x:bad_json": int(rng.integers(0, 3))}
    return fields


class World:
    def __init__(self, client: redis.Redis, prefix: str, schema: ModelSchema) -> None:
        self.client, self.schema = client, schema
        self.keys = Keys(prefix)
        self.store = WindowStore(client, self.keys)
        self.clock = FakeClock(time.time())  # real time: the buckets' TTLs lie ahead
        self.rng = np.random.default_rng(3)
        self.settings = Settings(
            redis={"key_prefix": prefix},
            windows={"bucket_seconds": BUCKET, "sizes": list(WINDOWS), "grace_seconds": 60},
            models={m: {"baseline": "unused.json", "latency_slo_ms": 50.0} for m in MODELS},
        )

    def evaluator(self, replica: str = "r1") -> Evaluator:
        schemas = dict.fromkeys(MODELS, self.schema)
        return Evaluator(
            self.settings, schemas, self.client, self.clock, Metrics(), replica=replica
        )

    def flush(self, model: str, buckets_ago: int, events: int, shift: float = 0.0) -> None:
        start = int(self.clock.now() // BUCKET) * BUCKET - buckets_ago * BUCKET
        fields = _fields(self.rng, events, shift)
        self.store.apply(model, [], [BucketDelta(start, expire_at(start, BUCKET, 600, 60), fields)])

    def from_scratch(self, model: str) -> dict[str, Any]:
        now = self.clock.now()
        starts = window_buckets(now, max(WINDOWS.values()), BUCKET)
        buckets = []
        for start in starts:
            raw = self.client.hgetall(self.keys.bucket(model, start))
            fields = {k.decode(): int(v) for k, v in raw.items()}
            buckets.append((start, parse_bucket(self.schema, fields)))
        spec = EvaluationInput(
            schema=self.schema,
            rules=self.settings.rules,
            windows=WINDOWS,
            bucket_seconds=BUCKET,
            latency_slo_ms=50.0,
            no_traffic_seconds=self.settings.rules.no_traffic_seconds,
        )
        windows = evaluate_model(spec, buckets, now).windows
        return dict(msgspec.json.decode(msgspec.json.encode(windows)))

    def check(self) -> None:
        states = read_states(self.client, self.keys)
        assert set(states) >= set(MODELS)
        for model in MODELS:
            assert states[model]["windows"] == self.from_scratch(model), model


@pytest.fixture
def world(redis_client: redis.Redis, key_prefix: str, schema: ModelSchema) -> World:
    w = World(redis_client, key_prefix.rstrip(":"), schema)
    redis_client.sadd(w.keys.models, *MODELS)
    return w


def test_rounds_match_evaluating_every_bucket_from_scratch(world: World) -> None:
    for i, model in enumerate(MODELS):
        for ago in range(0, 12, 1 + i % 3):  # some buckets empty, one past the 10m window
            world.flush(model, ago, 200 + 37 * ago, shift=ago % 3)
    evaluator = world.evaluator()
    assert evaluator.run_once() == MODELS
    world.check()

    for model in MODELS[::2]:  # the current bucket, and a late flush into an old one
        world.flush(model, 0, 50, shift=2)
        world.flush(model, 4, 80, shift=1)
    assert evaluator.run_once() == MODELS
    world.check()

    world.clock.advance(2 * BUCKET)  # two buckets on: windows move, nothing new
    assert evaluator.run_once() == MODELS
    world.check()

    world.client.script_flush()  # Redis forgot the scripts
    world.flush(MODELS[0], 0, 10)
    assert evaluator.run_once() == MODELS
    world.check()

    # Everything lost (a Redis restart without persistence), then new traffic.
    for key in world.client.scan_iter(match=f"{world.keys.prefix}:{{*}}:b*"):
        world.client.delete(key)
    world.flush(MODELS[1], 0, 300)
    assert evaluator.run_once() == MODELS
    world.check()
    states = read_states(world.client, world.keys)
    assert states[MODELS[0]]["windows"]["10m"]["events"] == 0
    assert states[MODELS[1]]["windows"]["10m"]["events"] == 300


def test_rounds_survive_health_checks_between_pipelined_commands(
    world: World, redis_url: str
) -> None:
    """The daemon's client PINGs idle connections; never with replies still pending.

    The connection checks its health before every command once connected: redis-py
    8.2's connection handshake itself fails when a check falls inside it (it pipelines
    the handshake and reads a handshake reply as the PONG), so the interval is set after.
    """
    for model in MODELS:
        world.flush(model, 0, 100)
    checking = redis.Redis.from_url(redis_url, health_check_interval=30)
    pool = checking.connection_pool
    connection = pool.get_connection()  # connected; the evaluator reuses it (one thread)
    connection.health_check_interval = 1e-6
    pings = 0
    send_ping = connection._send_ping

    def counted_ping() -> None:
        nonlocal pings
        pings += 1
        send_ping()

    connection._send_ping = counted_ping  # type: ignore[method-assign]
    pool.release(connection)
    try:
        world.client, client = checking, world.client
        evaluator = world.evaluator()
        assert evaluator.run_once() == MODELS
        world.flush(MODELS[-1], 0, 5)
        assert evaluator.run_once() == MODELS
        world.client = client
        world.check()
    finally:
        checking.close()
    assert pings >= 2, "the health checks did not run"  # at least one per round


def test_models_leased_to_another_replica_are_left_alone(world: World) -> None:
    for model in MODELS:
        world.flush(model, 0, 100)
    first, second = world.evaluator("r1"), world.evaluator("r2")
    for model in MODELS[:7]:  # r2 already holds these
        world.client.set(world.keys.lease(model), "r2", px=30_000)
    assert first.run_once() == MODELS[7:]
    assert second.run_once() == MODELS[:7]
    world.check()


def test_a_conversation_closed_early_does_not_poison_the_pool(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    key = f"{key_prefix}k"
    redis_client.set(key, "v")
    with Conversation(redis_client) as talk:
        talk.send([("GET", key), ("INCR", key)])
        talk.send([("GET", key)])  # its reply is never asked for
    assert redis_client.get(key) == b"v"  # the unread reply did not leak into this call
    with Conversation(redis_client) as talk, pytest.raises(ValueError, match="pending"):
        talk.replies(1)
