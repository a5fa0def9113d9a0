"""End-to-end stream: Kafka -> decode -> bin -> Redis, against a bare consume+decode loop

Both read the same topics of the librdkafka mock broker (in this process), in the same
run, each with its own consumer group from the earliest offset. The mock broker keeps
only ~5 MB (and 100 k messages) per partition and creates topics with 4 partitions, so
160 k events are spread over 4 topics x 4 partitions (~4.1 MB each). More partitions make
the in-process mock broker itself the limit: consume() alone fell from ~0.8-1.1 M msg/s
with 16 partitions to ~0.24-0.27 M msg/s with 32 or 64 (measured here, 2026-11-22), which
would measure the mock broker rather than driftmon.
Events are ~410-byte JSON with 20 numeric features, a prediction and a latency (PERF.md's shape).
- bare loop: ``Consumer.consume(5000)`` + the stream's own typed decode of every
  message (per-model msgspec structs, `monitor.typed_decode`) and nothing else: the
  practical limit of librdkafka + JSON in one Python process;
- end to end: the real ``Stream``/``KafkaSource``/``Runner`` with flushes (one Lua call
  per model) to the Redis server of this machine, until every event is in Redis.
The ratio end-to-end / bare is the share of the limit that driftmon keeps (target 0.5).
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import redis
from confluent_kafka import Consumer, Producer

from bench.core import Config, Row, Target, measure
from monitor.app import Runner, tune_gc
from monitor.baseline import build_baseline, load_baseline, write_baseline
from monitor.clock import SystemClock
from monitor.decode import ModelSchema, columnize, decode_message
from monitor.logs import configure_logging
from monitor.metrics import Metrics
from monitor.settings import KafkaSettings, WindowSettings
from monitor.source.kafka import KafkaSource
from monitor.stream import Health, Stream
from monitor.typed_decode import TypedColumns, TypedDecoder
from monitor.window.keys import Keys
from monitor.window.store import WindowStore
from tests.services import MockCluster, redis_url_for_tests

N_FEATURES = 20
MODEL = "bench"
N_TOPICS = 4
STALL_S = 30.0
# Both loops use these: with librdkafka's default fetch.wait.max.ms (500) the mock broker
# serves 64 partitions at ~150 k msg/s instead of ~950 k (measured here).
FETCH = {"fetch.wait.max.ms": 10, "queued.min.messages": 1_000_000}


def _events(n: int, rng: np.random.Generator, now: float) -> list[bytes]:
    values = rng.standard_normal((n, N_FEATURES)).round(4)
    names = [f"f{j:02d}" for j in range(N_FEATURES)]
    out = []
    for i in range(n):
        event = {
            "model": MODEL,
            "ts": now,
            "request_id": f"r-{i}",
            "features": dict(zip(names, values[i].tolist(), strict=True)),
            "prediction": float(values[i, 0] > 0),
            "latency_ms": 12.5,
        }
        out.append(json.dumps(event).encode())
    return out


def reference_baseline(path: Path, model: str, rng: np.random.Generator) -> Path:
    """A baseline of 20 k standard-normal rows of the benchmark's features, written to `path`."""
    ref = rng.standard_normal((20_000, N_FEATURES))
    columns = {f"f{j:02d}": ref[:, j].tolist() for j in range(N_FEATURES)}
    columns["__prediction__"] = (ref[:, 0] > 0).astype(float).tolist()
    write_baseline(build_baseline(model, columns, bins=10), path)
    return path


def _produce(bootstrap: str, topics: list[str], payloads: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i, payload in enumerate(payloads):
        while True:
            try:
                # explicit round robin: the sticky partitioner would overfill some
                producer.produce(topics[i % len(topics)], payload, partition=(i // len(topics)) % 4)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(60)


def _stalled(last_progress: float) -> None:
    if time.monotonic() - last_progress > STALL_S:
        raise RuntimeError(f"no progress for {STALL_S}s: events lost by the mock broker?")


def _bare(bootstrap: str, topics: list[str], n: int, baseline: Path) -> float:
    decode = TypedDecoder({MODEL: ModelSchema.from_baseline(load_baseline(baseline))}).decode
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bare-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **FETCH,
        }
    )
    consumer.subscribe(topics)
    seen = 0
    start = None
    progress = time.monotonic()
    while seen < n:
        msgs = consumer.consume(5000, 1.0)
        _stalled(progress)
        if msgs:
            progress = time.monotonic()
        if msgs and start is None:
            start = time.perf_counter()
        for msg in msgs:
            if msg.error() is None:
                decode(msg.value())
                seen += 1
    elapsed = time.perf_counter() - (start or time.perf_counter())
    consumer.close()
    return n / elapsed


def _end_to_end(
    bootstrap: str,
    topics: list[str],
    n: int,
    baseline: Path,
    redis_url: str,
    flushes: list[float] | None = None,
) -> float:
    """Events/s of the real stream; the duration of every flush is appended to `flushes`."""
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap,
        topics=topics,
        group_id=f"e2e-{uuid.uuid4().hex}",
        options={"auto.offset.reset": "earliest", **FETCH},
    )
    windows = WindowSettings()
    schema = ModelSchema.from_baseline(load_baseline(baseline))
    client = redis.Redis.from_url(redis_url)
    metrics, health, clock = Metrics(), Health(), SystemClock()
    store = WindowStore(client, Keys(prefix))
    stream = Stream(
        kafka,
        windows,
        {MODEL: schema},
        {MODEL: windows.size_seconds()},
        store,
        clock,
        metrics,
        health,
    )
    source = KafkaSource(kafka, stream)
    stream.source = source
    source.subscribe()
    runner = Runner(stream, source, health, clock)
    if flushes is not None:
        flush = stream.flush

        def timed_flush() -> None:  # what `Stream.flush` observes into the histogram
            started = time.perf_counter()
            flush()
            flushes.append(time.perf_counter() - started)

        stream.flush = timed_flush  # type: ignore[method-assign]
    tune_gc()  # as `driftmon run` does
    counted = metrics.events.labels(MODEL)
    start = None
    progress, last = time.monotonic(), 0.0
    while (value := counted._value.get()) < n:
        runner.step()
        if value > last:
            progress, last = time.monotonic(), value
        _stalled(progress)
        if start is None and value > 0:
            start = time.perf_counter()
    stream.flush()
    elapsed = time.perf_counter() - (start or time.perf_counter())
    total = sum(int(client.hget(k, "n") or 0) for k in client.scan_iter(f"{prefix}:*:b:*"))
    runner.shutdown()
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()
    applied = counted._value.get()
    if total != applied or total < n:
        raise RuntimeError(f"end to end: {total} events in Redis, {applied} counted, {n} wanted")
    return n / elapsed


def _decode_paths(payloads: list[bytes], baseline: Path, config: Config) -> list[Row]:
    """Decode + columns of the same messages, typed fast path vs the generic path."""
    schema = ModelSchema.from_baseline(load_baseline(baseline))
    typed = TypedDecoder({MODEL: schema})
    columns = TypedColumns(schema)
    now = time.time()
    times = [now] * len(payloads)

    def fast() -> None:
        events = [typed.decode(p) for p in payloads]
        columns.columns(events, lambda: times)

    def generic() -> None:
        events = [e for p in payloads for e in decode_message(p, 1 << 20).events]
        columnize(schema, events, times)

    quick = Config(repeat=min(config.repeat, 5), min_run_s=0.0, quick=config.quick)
    n = len(payloads)
    fast_rate = [n / s for s in measure(fast, quick, warmup=1)]
    generic_rate = [n / s for s in measure(generic, quick, warmup=1)]
    return [
        Row.from_samples("decode + columns, typed path (no broker)", fast_rate, "events/s"),
        Row.from_samples("decode + columns, generic path (no broker)", generic_rate, "events/s"),
    ]


def run(config: Config) -> list[Row]:
    configure_logging("warning", "console")
    n = 40_000 if config.quick else 160_000  # < 5 MB per partition (see docstring)
    repeat = 2 if config.quick else 3
    rng = np.random.default_rng(11)
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        baseline = reference_baseline(Path(tmp) / "bench.json", MODEL, rng)
        redis_url = redis_url_for_tests()
        with MockCluster() as cluster:
            run_id = uuid.uuid4().hex[:8]
            topics = [f"bench-{run_id}-{i}" for i in range(N_TOPICS)]
            payloads = _events(n, rng, now)
            decode_rows = _decode_paths(payloads[:50_000], baseline, config)
            _produce(cluster.bootstrap, topics, payloads)
            _end_to_end(cluster.bootstrap, topics, n // 10, baseline, redis_url)  # warm-up
            bare, e2e = [], []
            flushes: list[float] = []
            for _ in range(repeat):
                bare.append(_bare(cluster.bootstrap, topics, n, baseline))
                e2e.append(_end_to_end(cluster.bootstrap, topics, n, baseline, redis_url, flushes))
    ratios = [e / b for e, b in zip(e2e, bare, strict=True)]
    return [
        Row.from_samples("bare consume + typed decode (mock broker)", bare, "events/s"),
        Row.from_samples(
            "end to end Kafka -> Redis, 20 features", e2e, "events/s", Target(">=", 250_000)
        ),
        Row.from_samples("end to end / bare (same run)", ratios, "ratio", Target(">=", 0.5)),
        Row(
            f"flush (one Lua call per model + offsets), p50 of {len(flushes)}",
            float(np.percentile(flushes, 50)) * 1000,
            "ms",
        ),
        Row(f"flush p99 of {len(flushes)}", float(np.percentile(flushes, 99)) * 1000, "ms"),
        *decode_rows,
    ]
