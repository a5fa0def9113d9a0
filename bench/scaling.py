"""Scaling out: two `driftmon` stream processes in one consumer group versus one

Events of PERF.md's shape, as in bench/stream.py, on 16 topics x 4 partitions of the
in-process librdkafka mock broker (64 partitions, 640 k events). The mock broker keeps
only ~10 k such events a partition (5 MB) and cannot create topics with more than 4
partitions, so the run is made longer with more topics: with bench/stream.py's 16
partitions (160 k events) two members counted for ~0.4 s, in which a start skew of
0.1-0.2 s moved the ratio between 1.4 and 1.9 from run to run. Each member is a
separate process running the real `Stream`/`KafkaSource`/`Runner` against the Redis
server of this machine, in one consumer group (cooperative-sticky); the Redis counts
are checked against the events produced.

Each member first warms up as a running replica is (numba kernels loaded from their
cache, Lua scripts loaded: ~0.3 s, once up to 1.2 s), then joins with its partitions
paused; all start together once the group has handed out every partition. Each member
records when each batch was counted. Two numbers per run:
- steady (the target): events counted while every member was counting, from the last
  member's first batch to the first member's last batch, per second. A stream that
  never ends has no start skew and no tail; this is what a second replica adds to it.
- whole: all events from the first batch counted to the last, start skew and the tail
  of whichever member finishes last included.
A two-member run in which the members counted together for less than half of it has no
steady state to measure: it is run again (at most 3 times per repeat) and the rejected
runs are counted in their own row.

Two ways to share this machine's 2 cores, both measured in every repeat:
- a core per process (the target): each member, with librdkafka's threads, runs on one
  core of its own (`sched_setaffinity`), as replicas with a whole CPU each do (their own
  node, or Kubernetes' static CPU manager for integer CPU requests). The mock broker
  (in the benchmark's own process) and redis-server run on either core. One member
  pinned counts ~3-4% less than unpinned (its librdkafka fetch thread, ~0.1 core, no
  longer runs beside it on the idle core), which is part of what this ratio gains.
- cores shared: the scheduler places every thread. One member alone then also uses the
  second core (~1.2 cores in all with its fetch thread, the broker and this harness:
  `/proc` CPU accounting per thread), which two members must share: both cores are
  busy (members ~1.7, fetch threads ~0.1-0.2, mock broker ~0.06-0.1, harness ~0.05).
  Medians of 5 runs: 1.64-1.80 (a core per process: 1.78-1.90) on 2026-12-07.

Found on the way, each held the ratio down: librdkafka's 1 s `fetch.queue.backoff.ms`
default (driftmon sets 100 ms), the second member loading its kernels while the first
counted, librdkafka not fetching resumed partitions for up to 1 s (KafkaSource.resume
now wakes it), and a 1 M `queued.min.messages` (see MOCK_FETCH).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import numpy as np
import redis
from confluent_kafka import Message

from bench.core import Config, Row, Target
from bench.stream import FETCH, MODEL, _events, _produce, reference_baseline
from tests.services import MockCluster, redis_url_for_tests

N_TOPICS = 16
N_PARTITIONS = N_TOPICS * 4  # the mock broker creates topics with 4 partitions
PER_PARTITION = 10_000  # of ~10 k the mock broker keeps
START_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 120.0
STEADY_MIN_SHARE = 0.5  # of the whole run; else the run is rejected (and run again)
REJECTS_MAX = 3  # per repeat; then the module fails
WARM_UP_EVENTS = 5_000
# The mock broker needs a short fetch wait (bench/stream.py); bench/stream.py's
# queued.min.messages (1 M: each consumer prefetches the whole topic) is left at
# librdkafka's default (100 k), as driftmon runs: with 1 M two members at once spent ~13%
# more CPU per event than one alone (fresh memory for every message), ratio 1.54.
MOCK_FETCH = {"fetch.wait.max.ms": FETCH["fetch.wait.max.ms"]}


def _member(
    index: int,
    bootstrap: str,
    topics: list[str],
    group: str,
    prefix: str,
    baseline: str,
    redis_url: str,
    assigned: SynchronizedArray[int],
    counted: SynchronizedArray[int],
    timeline: str,
    go: EventType,
    done: EventType,
    cpu: int | None,
) -> None:
    """One group member: warm up, join paused, wait for `go`, count until `done`.

    Writes its timeline (time, events counted so far), one point per batch, to `timeline`.
    With `cpu`, the process and the threads it starts (librdkafka's) run on that core only.
    """
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
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
        options={"auto.offset.reset": "earliest", **MOCK_FETCH},
    )
    windows = WindowSettings()
    schema = ModelSchema.from_baseline(load_baseline(Path(baseline)))
    client = redis.Redis.from_url(redis_url)
    health, clock = Health(), SystemClock()

    def stream_for(key_prefix: str, metrics: Metrics) -> Stream:
        return Stream(
            kafka,
            windows,
            {MODEL: schema},
            {MODEL: windows.size_seconds()},
            WindowStore(client, Keys(key_prefix)),
            clock,
            metrics,
            health,
        )

    # Warm up as a running replica is: numba kernels loaded from their cache, Lua
    # scripts loaded, first allocations made. Without this the second member spends its
    # first ~0.3 s (up to 1.2 s seen) loading while the first one counts.
    warm = stream_for(f"{prefix}warm{index}", Metrics())
    payloads = _events(WARM_UP_EVENTS, np.random.default_rng(index), time.time())
    warm.process(
        [
            Message(topic="warm-up", partition=0, offset=i, value=v, timestamp=(1, 0))
            for i, v in enumerate(payloads)
        ]
    )
    warm.flush()
    for key in client.scan_iter(f"{prefix}warm{index}:*"):
        client.delete(key)
    metrics = Metrics()
    stream = stream_for(prefix, metrics)
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
    points: list[tuple[float, float]] = []
    last = 0.0
    while not done.is_set():
        runner.step()
        value = events._value.get()
        if value > last:
            points.append((time.perf_counter(), value))  # one clock for all processes
            counted[index] = int(value)
            last = value
    np.save(timeline, np.array(points, dtype=np.float64).reshape(-1, 2))
    stream.flush()
    runner.shutdown()
    client.close()


@dataclass(frozen=True)
class Sample:
    """One run: events/s over the whole run, and while every member was counting."""

    whole: float
    steady: float


def _run(
    members: int,
    bootstrap: str,
    topics: list[str],
    n: int,
    baseline: Path,
    redis_url: str,
    pinned: bool,
) -> Sample:
    """Events/s of `members` processes in one group, counting `n` events; `pinned`: each
    member on a core of its own."""
    cpus = sorted(os.sched_getaffinity(0))
    ctx = mp.get_context("spawn")
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    group = f"scale-{uuid.uuid4().hex}"
    assigned = ctx.Array("i", members)
    counted = ctx.Array("q", members, lock=False)
    go, done = ctx.Event(), ctx.Event()
    with tempfile.TemporaryDirectory() as tmp:
        timelines = [str(Path(tmp) / f"member{i}.npy") for i in range(members)]
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
                    timelines[i],
                    go,
                    done,
                    cpus[i % len(cpus)] if pinned else None,
                ),
                daemon=True,
            )
            for i in range(members)
        ]
        for proc in procs:
            proc.start()
        try:
            _wait_for_group(assigned)
            go.set()
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while sum(counted[:]) < n:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{members} members counted {sum(counted[:])} of {n}")
                time.sleep(0.002)
        finally:
            done.set()
            for proc in procs:
                proc.join(30)
                if proc.is_alive():
                    proc.kill()
        points = [np.load(t) for t in timelines]
    _check_and_clean(redis_url, prefix, n)
    return _rates(points, n)


def _wait_for_group(assigned: SynchronizedArray[int]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (sum(assigned[:]) == N_PARTITIONS and all(a > 0 for a in assigned[:])):
        if time.monotonic() > deadline:
            raise RuntimeError(f"group not complete: partitions per member {assigned[:]}")
        time.sleep(0.05)


def _rates(points: list[np.ndarray], n: int) -> Sample:
    """Whole run: `n` events from the first batch counted by any member to the last.

    Steady: events counted by all members while every one of them was counting (from
    the last member's first batch to the first member's last batch), read off each
    member's timeline by linear interpolation. A stream that never ends has no start
    skew and no tail; the second is what a second replica adds to it.
    """
    firsts = [float(p[0, 0]) for p in points]
    lasts = [float(p[-1, 0]) for p in points]
    whole = n / (max(lasts) - min(firsts))
    begin, end = max(firsts), min(lasts)
    if end - begin < STEADY_MIN_SHARE * (max(lasts) - min(firsts)):
        raise NoSteadyState(
            f"members counted together for {end - begin:.3f} s only: no steady state"
        )
    counted = sum(
        float(np.interp(end, p[:, 0], p[:, 1]) - np.interp(begin, p[:, 0], p[:, 1])) for p in points
    )
    return Sample(whole, counted / (end - begin))


class NoSteadyState(RuntimeError):
    """A run whose members counted together for less than half of it (start skew)."""


def _two_members(
    bootstrap: str, topics: list[str], n: int, baseline: Path, redis_url: str, pinned: bool
) -> tuple[Sample, int]:
    """A two-member run, repeated while it has no steady state (at most REJECTS_MAX
    times); returns it and how many runs were rejected before it."""
    for rejected in range(REJECTS_MAX + 1):
        try:
            return _run(2, bootstrap, topics, n, baseline, redis_url, pinned), rejected
        except NoSteadyState:
            if rejected == REJECTS_MAX:
                raise
    raise AssertionError("unreachable")


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
    n = N_PARTITIONS * (2_500 if config.quick else PER_PARTITION)
    repeat = 2 if config.quick else min(config.repeat, 5)
    rng = np.random.default_rng(12)
    one: dict[bool, list[Sample]] = {True: [], False: []}
    two: dict[bool, list[Sample]] = {True: [], False: []}
    rejected = 0
    with tempfile.TemporaryDirectory() as tmp:
        baseline = reference_baseline(Path(tmp) / "bench.json", MODEL, rng)
        redis_url = redis_url_for_tests()
        with MockCluster() as cluster:
            topics = [f"scale-{uuid.uuid4().hex[:8]}-{i}" for i in range(N_TOPICS)]
            _produce(cluster.bootstrap, topics, _events(n, rng, time.time()))
            args = (cluster.bootstrap, topics, n, baseline, redis_url)
            for _ in range(repeat):
                for pinned in (True, False):
                    one[pinned].append(_run(1, *args, pinned))
                    sample, skipped = _two_members(*args, pinned)
                    two[pinned].append(sample)
                    rejected += skipped
    rows = []
    for pinned, how in ((True, "a core per process"), (False, "cores shared")):
        steady = [b.steady / a.steady for a, b in zip(one[pinned], two[pinned], strict=True)]
        whole = [b.whole / a.whole for a, b in zip(one[pinned], two[pinned], strict=True)]
        target = Target(">=", 1.7) if pinned else None
        rows += [
            Row.from_samples(
                f"one process, {N_PARTITIONS} partitions ({how})",
                [s.steady for s in one[pinned]],
                "events/s",
            ),
            Row.from_samples(
                f"two processes in one group ({how})", [s.steady for s in two[pinned]], "events/s"
            ),
            Row.from_samples(f"two / one, same run ({how})", steady, "ratio", target),
            Row.from_samples(
                f"two / one, whole run incl. start skew and tail ({how})", whole, "ratio"
            ),
        ]
    rows.append(
        Row(
            "two-member runs rejected and run again (members counted together < half the run)",
            rejected,
            "runs",
        )
    )
    return rows
