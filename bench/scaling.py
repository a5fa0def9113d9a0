"""Scaling out: two `driftmon` stream processes in one consumer group versus one

The same topics as bench/stream.py (4 topics x 4 partitions of the in-process librdkafka
mock broker, 160 k events of PERF.md's shape). Each member is a separate process running
the real `Stream`/`KafkaSource`/`Runner` against the Redis server of this machine, in
one consumer group (cooperative-sticky). The members join with their partitions paused
and start together once the group has handed out every partition, so the time measured
is counting only, not the group join: as in bench/stream.py, from the first event
counted until every event is counted; the Redis counts are checked against the events
produced.

This machine has 2 cores, and the mock broker's threads run in the benchmark's own
process beside the members, so two members compete with the broker for the cores:
the ratio shows what a second replica buys here, not on a larger node. (Before driftmon
set `fetch.queue.backoff.ms`, librdkafka's 1 s default back-off held a member in its own
process to ~0.15 M events/s; with 100 ms it reaches ~0.5 M, as in bench/stream.py.)
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
import uuid
from multiprocessing.sharedctypes import Synchronized, SynchronizedArray
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import numpy as np
import redis

from bench.core import Config, Row, Target
from bench.stream import FETCH, MODEL, N_TOPICS, _events, _produce, reference_baseline
from tests.services import MockCluster, redis_url_for_tests

N_PARTITIONS = N_TOPICS * 4  # the mock broker creates topics with 4 partitions
START_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 120.0


def _member(
    index: int,
    bootstrap: str,
    topics: list[str],
    group: str,
    prefix: str,
    baseline: str,
    redis_url: str,
    assigned: SynchronizedArray[int],
    counted: Synchronized[int],
    go: EventType,
    done: EventType,
) -> None:
    """One group member: join paused, wait for `go`, count until `done`."""
    from monitor.app import Runner, tune_gc  # noqa: PLC0415 - a fresh (spawned) process
    from monitor.baseline import load_baseline  # noqa: PLC0415
    from monitor.clock import SystemClock  # noqa: PLC0415
    from monitor.decode import ModelSchema  # noqa: PLC0415
    from monitor.logs import configure_logging  # noqa: PLC0415
    from monitor.metrics import Metrics  # noqa: PLC0415
    from monitor.settings import KafkaSettings, WindowSettings  # noqa: PLC0415
    from monitor.source.kafka import KafkaSource  # noqa: PLC0415
    from monitor.stream import Health, Stream  # noqa: PLC0415
    from monitor.window.keys import Keys  # noqa: PLC0415
    from monitor.window.store import WindowStore  # noqa: PLC0415

    configure_logging("warning", "console")
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap,
        topics=topics,
        group_id=group,
        options={"auto.offset.reset": "earliest", **FETCH},
    )
    windows = WindowSettings()
    schema = ModelSchema.from_baseline(load_baseline(Path(baseline)))
    client = redis.Redis.from_url(redis_url)
    metrics, health, clock = Metrics(), Health(), SystemClock()
    stream = Stream(
        kafka,
        windows,
        {MODEL: schema},
        {MODEL: windows.size_seconds()},
        WindowStore(client, Keys(prefix)),
        clock,
        metrics,
        health,
    )
    source = KafkaSource(kafka, stream)
    stream.source = source
    source.pause()  # partitions arrive paused: nobody counts before the group is complete
    source.subscribe()
    runner = Runner(stream, source, health, clock)
    while not go.is_set():
        records = source.poll_idle(0.05)  # serves the join; paused: nothing to count
        if records:
            stream.process(records)
        assigned[index] = len(source.assignment)
    source.resume()
    tune_gc()
    events = metrics.events.labels(MODEL)
    last = 0.0
    while not done.is_set():
        runner.step()
        value = events._value.get()
        if value > last:
            with counted.get_lock():
                counted.value += int(value - last)
            last = value
    stream.flush()
    runner.shutdown()
    client.close()


def _run(
    members: int, bootstrap: str, topics: list[str], n: int, baseline: Path, redis_url: str
) -> float:
    """Events/s of `members` processes in one group, counting `n` events."""
    ctx = mp.get_context("spawn")
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    group = f"scale-{uuid.uuid4().hex}"
    assigned = ctx.Array("i", members)
    counted = ctx.Value("q", 0)
    go, done = ctx.Event(), ctx.Event()
    procs = [
        ctx.Process(
            target=_member,
            args=(
                i,
                bootstrap,
                topics,
                group,
                prefix,
                str(baseline),
                redis_url,
                assigned,
                counted,
                go,
                done,
            ),
            daemon=True,
        )
        for i in range(members)
    ]
    for proc in procs:
        proc.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (sum(assigned[:]) == N_PARTITIONS and all(a > 0 for a in assigned[:])):
            if time.monotonic() > deadline:
                raise RuntimeError(f"group not complete: partitions per member {assigned[:]}")
            time.sleep(0.05)
        go.set()
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while counted.value == 0:  # as bench/stream.py: from the first event counted
            if time.monotonic() > deadline:
                raise RuntimeError(f"{members} members counted nothing")
            time.sleep(0.001)
        start = time.perf_counter()
        while counted.value < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{members} members counted {counted.value} of {n}")
            time.sleep(0.002)
        elapsed = time.perf_counter() - start
    finally:
        done.set()
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    _check_and_clean(redis_url, prefix, n)
    return n / elapsed


def _check_and_clean(redis_url: str, prefix: str, n: int) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        total = sum(int(client.hget(k, "n") or 0) for k in client.scan_iter(f"{prefix}:*:b:*"))
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
    finally:
        client.close()
    if total != n:
        raise RuntimeError(f"scaling: {total} events in Redis, {n} produced")


def run(config: Config) -> list[Row]:
    n = 40_000 if config.quick else 160_000
    repeat = 2 if config.quick else 3
    rng = np.random.default_rng(12)
    with tempfile.TemporaryDirectory() as tmp:
        baseline = reference_baseline(Path(tmp) / "bench.json", MODEL, rng)
        redis_url = redis_url_for_tests()
        with MockCluster() as cluster:
            topics = [f"scale-{uuid.uuid4().hex[:8]}-{i}" for i in range(N_TOPICS)]
            _produce(cluster.bootstrap, topics, _events(n, rng, time.time()))
            one, two = [], []
            for _ in range(repeat):
                one.append(_run(1, cluster.bootstrap, topics, n, baseline, redis_url))
                two.append(_run(2, cluster.bootstrap, topics, n, baseline, redis_url))
    ratios = [b / a for a, b in zip(one, two, strict=True)]
    return [
        Row.from_samples("one process, 16 partitions", one, "events/s"),
        Row.from_samples("two processes in one group", two, "events/s"),
        Row.from_samples("two / one (same run)", ratios, "ratio", Target(">=", 1.7)),
    ]
