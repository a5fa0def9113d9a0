"""Where partitions start and resume, against librdkafka's mock cluster.

The mock cluster is a real Kafka-protocol broker (in this process) whose retention
deletes old log segments (~5 MB per partition), which tansu's memory storage never
does. That makes it the broker for the case this file is about: a position the broker
no longer has. librdkafka's own `auto.offset.reset` would move such a partition to the
end of the log without any error event, skipping what is still retained; driftmon
resumes at the earliest retained message and counts what was deleted.

Events are ~2.1 kB (a long `request_id`, which driftmon does not read) so that a few
thousand per partition are enough for retention to delete the first segments.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition
from structlog.testing import capture_logs

from monitor.errors import ServiceError
from monitor.metrics import Metrics
from monitor.settings import KafkaSettings
from monitor.source.kafka import KafkaSource, Record, TopicPartition
from tests.services import MockCluster
from tests.stream.harness import (
    Daemon,
    assert_exact,
    expected_counts,
    make_events,
    redis_counts,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)

TOPIC = "events"
PARTITIONS = range(4)  # the mock cluster auto-creates 4
PAD = "x" * 2000


@pytest.fixture
def cluster() -> Iterator[MockCluster]:
    with MockCluster() as mock:
        yield mock


@pytest.fixture
def broker(cluster: MockCluster) -> str:
    """`make_config`'s broker: the mock cluster (see the module docstring)."""
    return cluster.bootstrap


@pytest.fixture
def topic() -> str:
    return TOPIC  # the mock cluster auto-creates it


def produce(bootstrap: str, values: Sequence[Any], partition: int | None = None) -> list[int]:
    """Produce `values` as JSON; return the partition each one landed in (in order)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    landed: dict[int, int] = {}
    errors: list[Any] = []

    def report(i: int) -> Callable[[Any, Any], None]:
        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(err)
            else:
                landed[i] = msg.partition()

        return on_delivery

    extra = {} if partition is None else {"partition": partition}
    for i, value in enumerate(values):
        payload = value if isinstance(value, bytes) else json.dumps(value).encode()
        while True:
            try:
                producer.produce(TOPIC, payload, on_delivery=report(i), **extra)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0 and not errors, errors
    return [landed[i] for i in range(len(values))]


def watermarks(bootstrap: str) -> dict[int, tuple[int, int]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return {
            p: consumer.get_watermark_offsets(KafkaTopicPartition(TOPIC, p), timeout=10)
            for p in PARTITIONS
        }
    finally:
        consumer.close()


def push_out_of_retention(bootstrap: str, below: dict[int, int]) -> dict[int, int]:
    """Produce padding until every partition's log starts above `below`; return the starts."""
    filler = json.dumps({"model": "unknown-model", "request_id": PAD}).encode()
    for _ in range(20):
        lows = {p: low for p, (low, _high) in watermarks(bootstrap).items()}
        behind = [p for p in PARTITIONS if lows[p] <= below[p]]
        if not behind:
            return lows
        for p in behind:
            produce(bootstrap, [filler] * 2000, partition=p)
    raise AssertionError(f"retention never passed {below}: log starts {lows}")


class Starts:
    """The source's `Rebalance`: fixed start offsets (None: no watermark), records calls."""

    def __init__(self, starts: dict[TopicPartition, int | None] | None = None) -> None:
        self.starts = starts or {}
        self.assigned_calls: list[list[TopicPartition]] = []
        self.started_calls: list[dict[TopicPartition, int]] = []

    def assigned(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        self.assigned_calls.append(list(partitions))
        return {tp: self.starts.get(tp) for tp in partitions}

    def started(self, offsets: dict[TopicPartition, int]) -> None:
        self.started_calls.append(dict(offsets))

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        pass

    def lost(self, partitions: Sequence[TopicPartition]) -> None:
        pass


def source_for(
    bootstrap: str, rebalance: Starts, metrics: Metrics, **options: str | int
) -> KafkaSource:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap,
        topics=[TOPIC],
        group_id=f"g-{time.monotonic_ns()}",
        batch_size=1000,
        options={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, **options},
    )
    source = KafkaSource(settings, rebalance, metrics=metrics)
    source.subscribe()
    return source


def read_until(
    source: KafkaSource, done: Callable[[list[Record]], bool], timeout: float = 30.0
) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done(records):
        records.extend(source.consume())
    return records


def offsets_by_partition(records: list[Record]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for r in records:
        out.setdefault(r.partition() or 0, []).append(r.offset() or 0)
    return out


def lag_of(metrics: Metrics, partition: int) -> float | None:
    return metrics.registry.get_sample_value(
        "driftmon_consumer_lag_messages", {"topic": TOPIC, "partition": str(partition)}
    )


def lost(metrics: Metrics, partition: int) -> float:
    value = metrics.registry.get_sample_value(
        "driftmon_messages_lost_total", {"topic": TOPIC, "partition": str(partition)}
    )
    return value or 0.0


@pytest.mark.parametrize("strategy", ["cooperative-sticky", "range"])
def test_a_position_deleted_by_retention_resumes_at_the_log_start_and_counts_the_gap(
    cluster: MockCluster, strategy: str
) -> None:
    for p in PARTITIONS:
        produce(cluster.bootstrap, [{"model": "m", "request_id": PAD}] * 10, partition=p)
    lows = push_out_of_retention(cluster.bootstrap, dict.fromkeys(PARTITIONS, 0))
    highs = {p: high for p, (_low, high) in watermarks(cluster.bootstrap).items()}
    metrics = Metrics()
    # the stream's watermarks say "read up to offset 4": the next to read is 5
    rebalance = Starts({(TOPIC, p): 5 for p in PARTITIONS})
    source = source_for(
        cluster.bootstrap, rebalance, metrics, **{"partition.assignment.strategy": strategy}
    )
    try:
        want = sum(highs[p] - lows[p] for p in PARTITIONS)
        records = read_until(source, lambda r: len(r) >= want)
        source.export_lag()
        lags = {p: lag_of(metrics, p) for p in PARTITIONS}
    finally:
        source.close()
    got = offsets_by_partition(records)
    for p in PARTITIONS:
        assert got[p] == list(range(lows[p], highs[p])), f"partition {p}"
        assert lost(metrics, p) == lows[p] - 5
    assert lags == dict.fromkeys(PARTITIONS, 0.0)
    assert {p: lag_of(metrics, p) for p in PARTITIONS} == dict.fromkeys(PARTITIONS), (
        "a revoked partition keeps no lag series"
    )


def test_a_partition_stopped_while_paused_restarts_paused(cluster: MockCluster) -> None:
    """The fetch fails before the pause; its error event is served by `poll_idle` (the
    back-off loop while Redis is down), which must restart the partition paused."""
    produce(cluster.bootstrap, [{"model": "m", "request_id": PAD}] * 10, partition=0)
    lows = push_out_of_retention(cluster.bootstrap, {0: 0, 1: -1, 2: -1, 3: -1})
    high = watermarks(cluster.bootstrap)[0][1]
    metrics = Metrics()
    starts = {(TOPIC, p): 2 if p == 0 else 0 for p in PARTITIONS}
    source = source_for(cluster.bootstrap, Starts(starts), metrics)
    try:
        deadline = time.monotonic() + 30
        while not source.assignment:
            assert time.monotonic() < deadline, "never assigned"
            assert source.poll_idle(0.05) == []
        time.sleep(1.0)  # not polling: partition 0's fetch fails, its error waits
        source.pause()
        assert source.poll_idle(1.0) == []
        assert lost(metrics, 0) == lows[0] - 2
        assert source.poll_idle(1.0) == []  # restarted, but still paused
        source.resume()
        records = read_until(source, lambda r: len(r) >= high - lows[0])
    finally:
        source.close()
    assert offsets_by_partition(records) == {0: list(range(lows[0], high))}


@pytest.mark.parametrize(
    ("policy", "reads_backlog"), [(None, False), ("latest", False), ("earliest", True)]
)
def test_a_partition_without_any_start_follows_auto_offset_reset(
    cluster: MockCluster, policy: str | None, reads_backlog: bool
) -> None:
    """10 messages per partition before the member joins, then one more per partition
    every 0.5 s until each partition has delivered something."""
    for p in PARTITIONS:
        produce(cluster.bootstrap, [{"model": "m"}] * 10, partition=p)
    options = {} if policy is None else {"auto.offset.reset": policy}
    source = source_for(cluster.bootstrap, Starts(), Metrics(), **options)
    records: list[Record] = []
    try:
        deadline = time.monotonic() + 30
        while set(offsets_by_partition(records)) != set(PARTITIONS):
            assert time.monotonic() < deadline, f"read {offsets_by_partition(records)}"
            for p in PARTITIONS:
                produce(cluster.bootstrap, [{"model": "m"}], partition=p)
            records.extend(read_until(source, lambda _r: False, timeout=0.5))
    finally:
        source.close()
    for p, offsets in offsets_by_partition(records).items():
        assert offsets == sorted(offsets)
        if reads_backlog:
            assert offsets[:10] == list(range(10)), f"partition {p}"
        else:
            assert offsets[0] >= 10, f"partition {p} read the backlog: {offsets}"


def test_a_committed_partition_without_watermark_resumes_there_and_says_why(
    cluster: MockCluster,
) -> None:
    """Redis lost driftmon's data (restarted without persistence) while the group's
    commits survived: start at the committed offsets, not by policy, and warn."""
    for p in PARTITIONS:
        produce(cluster.bootstrap, [{"model": "m"}] * 10, partition=p)
    group = f"g-{time.monotonic_ns()}"
    committer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group})
    committer.commit(
        offsets=[KafkaTopicPartition(TOPIC, p, 3 + p) for p in PARTITIONS], asynchronous=False
    )
    committer.close()
    settings = KafkaSettings(
        bootstrap_servers=cluster.bootstrap,
        topics=[TOPIC],
        group_id=group,
        options={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
    )
    starts = Starts()
    source = KafkaSource(settings, starts, metrics=Metrics())
    source.subscribe()
    with capture_logs() as logs:
        try:
            records = read_until(source, lambda r: len(r) >= sum(7 - p for p in PARTITIONS))
        finally:
            source.close()
    assert offsets_by_partition(records) == {p: list(range(3 + p, 10)) for p in PARTITIONS}
    # the stream is told, to record the starts even if nothing is read before a restart
    started = {tp: o for call in starts.started_calls for tp, o in call.items()}
    assert started == {(TOPIC, p): 3 + p for p in PARTITIONS}
    warning = next(e for e in logs if e["event"] == "committed_without_watermark")
    assert warning["resumed_from"] == {f"{TOPIC}:{p}": 3 + p for p in PARTITIONS}


def test_auto_offset_reset_error_stops_with_the_partition_named(cluster: MockCluster) -> None:
    produce(cluster.bootstrap, [{"model": "m"}] * 4)
    source = source_for(cluster.bootstrap, Starts(), Metrics(), **{"auto.offset.reset": "error"})
    try:
        with pytest.raises(ServiceError, match=r"kafka: events:\d has no watermark in Redis"):
            read_until(source, lambda _r: False, timeout=15.0)
    finally:
        source.close()


def test_the_daemon_counts_what_is_left_after_retention_exactly(
    tmp_path: Path,
    cluster: MockCluster,
    shared_redis: redis.Redis,
    make_config: Callable[..., Path],
    prefix: str,
    baselines: dict[str, Path],
) -> None:
    """Stop the daemon, let retention delete part of its backlog, start it again."""
    now = time.time()
    events = [{**e, "request_id": PAD} for e in make_events(8_000, seed=11, now=now)]
    first, rest = events[:400], events[400:]
    config = make_config()
    totals = expected_counts(first, baselines)
    want = {m: totals[m]["n"] for m in ("fraud", "churn")}
    first_landed = produce(cluster.bootstrap, first)
    daemon = Daemon(config, tmp_path).start()
    try:
        wait_for(
            lambda: {m: redis_counts(shared_redis, prefix, m)["n"] for m in want} == want,
            90,
            what=f"first counts {want}",
        )
    finally:
        assert daemon.terminate() == 0
    read_up_to = {p: high for p, (_low, high) in watermarks(cluster.bootstrap).items()}
    assert sum(read_up_to.values()) == len(first) and set(first_landed) <= set(PARTITIONS)

    rest_landed = produce(cluster.bootstrap, rest)
    lows = push_out_of_retention(cluster.bootstrap, read_up_to)
    # what retention left of `rest`: its events at offsets >= the log start, per partition
    next_offset = dict(read_up_to)
    kept = list(first)
    for event, p in zip(rest, rest_landed, strict=True):
        if next_offset[p] >= lows[p]:
            kept.append(event)
        next_offset[p] += 1
    assert len(first) < len(kept) < len(events), "retention kept none or all of the backlog"

    daemon.start()
    try:
        expected = expected_counts(kept, baselines)
        want = {m: expected[m]["n"] for m in ("fraud", "churn")}
        wait_for(
            lambda: {m: redis_counts(shared_redis, prefix, m)["n"] for m in want} == want,
            120,
            what=f"counts {want} (a jump to the end would count {len(first)} events only)",
        )
        time.sleep(1.0)  # anything counted twice would show up now
        for model in ("fraud", "churn"):
            assert_exact(redis_counts(shared_redis, prefix, model), expected[model])
        for p in PARTITIONS:
            assert daemon.metric("driftmon_messages_lost_total", topic=TOPIC, partition=str(p)) == (
                lows[p] - read_up_to[p]
            )
        assert "kafka_messages_lost" in daemon.log_text()
    finally:
        daemon.stop()


def test_a_restart_reads_what_arrived_while_down_on_partitions_never_read_before(
    tmp_path: Path,
    cluster: MockCluster,
    shared_redis: redis.Redis,
    make_config: Callable[..., Path],
    prefix: str,
    baselines: dict[str, Path],
) -> None:
    """With the default start policy (latest) the first run starts every partition at the
    log end and reads nothing; what is produced while the daemon is stopped is read by the
    next run, not skipped by the policy deciding again."""
    # the default start policy: no auto.offset.reset
    config = make_config(
        kafka={"options": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}}
    )
    produce(cluster.bootstrap, [{"model": "unknown-model"}] * 40)  # before: never counted
    daemon = Daemon(config, tmp_path).start()
    try:
        wait_for(lambda: "partitions_assigned" in daemon.log_text(), 60, what="assignment")
    finally:
        assert daemon.terminate() == 0
    starts = {
        tuple(field.decode().rsplit(":", 1)): int(value)
        for field, value in shared_redis.hgetall(f"{prefix}:offsets").items()
    }
    assert starts == {
        (TOPIC, str(p)): high - 1 for p, (_low, high) in watermarks(cluster.bootstrap).items()
    }

    events = make_events(600, seed=5, now=time.time())
    produce(cluster.bootstrap, events)
    expected = expected_counts(events, baselines)
    want = {m: expected[m]["n"] for m in ("fraud", "churn")}
    daemon.start()
    try:
        wait_for(
            lambda: {m: redis_counts(shared_redis, prefix, m)["n"] for m in want} == want,
            90,
            what=f"counts {want}",
        )
        time.sleep(1.0)
        for model in ("fraud", "churn"):
            assert_exact(redis_counts(shared_redis, prefix, model), expected[model])
    finally:
        assert daemon.terminate() == 0
