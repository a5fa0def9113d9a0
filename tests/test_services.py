"""Tests of the service launchers, and the broker facts docs/dev-services.md relies on.

Timings are printed (``pytest -s``) and asserted with generous bounds: they document
orders of magnitude, not benchmarks.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.services import (
    MockCluster,
    RedisServer,
    TansuBroker,
    create_topic,
    docker_engine_answers,
    port_accepts,
    produce_json,
    redis_url_for_tests,
)

TopicFactory = Callable[..., str]  # the `topic` fixture

# What the monitor's consumer uses; 6000 is also the smallest session timeout a real
# Kafka broker accepts by default (group.min.session.timeout.ms).
GROUP_CONF = {
    "partition.assignment.strategy": "cooperative-sticky",
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
    "auto.offset.reset": "earliest",
    "enable.auto.offset.store": False,
    "enable.auto.commit": False,
}
# ~380 bytes, shaped like an inference event.
EVENT = {
    "event_id": "0" * 32,
    "model": "fraud-v3",
    "ts": 1_700_000_000.123,
    "features": {f"f{i:02d}": i * 1.5 for i in range(14)},
    "prediction": 0.73,
    "label": None,
    "latency_ms": 12.5,
    "request": {"region": "eu-west-1", "tier": "gold"},
}
EVENT_BYTES = json.dumps(EVENT).encode()


def consume_n(consumer: Consumer, n: int, timeout: float = 20.0) -> list[object]:
    out: list[object] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out.extend(m for m in consumer.consume(5000, 0.2) if m.error() is None)
    assert len(out) >= n, f"consumed {len(out)} of {n}"
    return out


# --------------------------------------------------------------------------- Redis
def test_own_redis_pause_resume_restart(own_redis: RedisServer) -> None:
    with own_redis.client(socket_timeout=0.3) as client:
        client.set("k", "v")

        own_redis.pause()
        with pytest.raises(redis.TimeoutError):
            client.get("k")
        own_redis.resume()
        assert client.get("k") == b"v"

        port = own_redis.port
        own_redis.restart()
        assert own_redis.port == port
        assert client.get("k") is None  # no persistence: a restart loses data


def test_redis_server_stop_and_finalizer_reap_the_process() -> None:
    server = RedisServer().start()
    port = server.port
    server.stop()
    assert not port_accepts(port)

    server = RedisServer().start()
    port = server.port
    del server
    gc.collect()
    assert not port_accepts(port)


def test_redis_url_for_tests_prefers_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example.invalid:1/0")
    assert redis_url_for_tests() == "redis://example.invalid:1/0"


def test_redis_client_fixture_uses_a_unique_prefix(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    assert key_prefix.startswith("t:test_redis_client_fixture")
    redis_client.set(f"{key_prefix}a", 1)
    assert redis_client.get(f"{key_prefix}a") == b"1"


# --------------------------------------------------------------------------- Kafka
def test_docker_check_is_fast() -> None:
    started = time.monotonic()
    docker_engine_answers()
    assert time.monotonic() - started < 3


def test_tansu_starts_fast_and_restart_loses_topics(own_tansu: TansuBroker) -> None:
    started = time.monotonic()
    with TansuBroker() as other:
        print(f"tansu ready in {time.monotonic() - started:.3f}s")
        assert time.monotonic() - started < 5
        other.create_topic("x", 3)

    own_tansu.create_topic("before", 2)
    port = own_tansu.port
    own_tansu.restart()
    assert own_tansu.port == port
    admin_topics = Producer({"bootstrap.servers": own_tansu.bootstrap}).list_topics(timeout=5)
    assert "before" not in admin_topics.topics  # memory storage


def test_create_topic_is_idempotent(kafka_bootstrap: str, topic: TopicFactory) -> None:
    name = topic(3)
    assert create_topic(kafka_bootstrap, name, 3) == name


def test_timestamps_headers_and_keys_are_preserved(
    kafka_bootstrap: str, topic: TopicFactory
) -> None:
    name = topic(1)
    headers = [("reason", b"invalid json"), ("source.offset", b"42"), ("empty", b"")]
    produce_json(
        kafka_bootstrap,
        name,
        [EVENT],
        key=b"fraud-v3",
        headers=headers,
        timestamp_ms=1_700_000_000_123,
    )
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": name})
    consumer.assign([TopicPartition(name, 0, 0)])
    [message] = consume_n(consumer, 1)
    consumer.close()
    assert message.timestamp() == (1, 1_700_000_000_123)  # TIMESTAMP_CREATE_TIME
    assert message.headers() == headers
    assert message.key() == b"fraud-v3"
    assert json.loads(message.value()) == EVENT


def test_store_offsets_then_commit_and_resume(kafka_bootstrap: str, topic: TopicFactory) -> None:
    name = topic(2)
    for partition in (0, 1):
        produce_json(kafka_bootstrap, name, [{"i": i} for i in range(50)], partition=partition)
    conf = {"bootstrap.servers": kafka_bootstrap, "group.id": name, **GROUP_CONF}

    consumer = Consumer(conf)
    consumer.subscribe([name])
    started = time.monotonic()
    consume_n(consumer, 100)
    print(f"first assignment + 100 messages in {time.monotonic() - started:.2f}s")
    consumer.store_offsets(offsets=[TopicPartition(name, 0, 20), TopicPartition(name, 1, 30)])
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(name, 0), TopicPartition(name, 1)], timeout=5)
    assert [tp.offset for tp in committed] == [20, 30]
    consumer.close()

    consumer = Consumer(conf)
    consumer.subscribe([name])
    first: dict[int, int] = {}
    for message in consume_n(consumer, 50):
        first.setdefault(message.partition(), message.offset())
    consumer.close()
    assert first == {0: 20, 1: 30}


def test_explicit_offsets_in_on_assign(kafka_bootstrap: str, topic: TopicFactory) -> None:
    name = topic(2)
    for partition in (0, 1):
        produce_json(kafka_bootstrap, name, [{"i": i} for i in range(50)], partition=partition)
    conf = {"bootstrap.servers": kafka_bootstrap, "group.id": name, **GROUP_CONF}
    consumer = Consumer(conf)
    # the group's committed offset (10) is ignored in favour of our own (e.g. from Redis)
    consumer.commit(offsets=[TopicPartition(name, 0, 10)], asynchronous=False)

    def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            tp.offset = 5 if tp.partition == 0 else 40
        c.incremental_assign(partitions)

    consumer.subscribe([name], on_assign=on_assign)
    first: dict[int, int] = {}
    for message in consume_n(consumer, 55):
        first.setdefault(message.partition(), message.offset())
    assert first == {0: 5, 1: 40}

    consumer.seek(TopicPartition(name, 0, 48))
    offsets = [m.offset() for m in consume_n(consumer, 2) if m.partition() == 0]
    consumer.close()
    assert offsets[0] == 48


class _Member:
    """A group member polling in its own thread; tracks its partitions via callbacks."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str) -> None:
        self.owned: set[int] = set()
        self._stop = threading.Event()
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "client.id": name, **GROUP_CONF}
        )
        self._consumer.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _assigned(self, _c: Consumer, partitions: list[TopicPartition]) -> None:
        self.owned.update(tp.partition for tp in partitions)

    def _revoked(self, _c: Consumer, partitions: list[TopicPartition]) -> None:
        self.owned.difference_update(tp.partition for tp in partitions)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._consumer.poll(0.05)
        self._consumer.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _wait_until(condition: object, timeout: float) -> float:
    started = time.monotonic()
    while not condition() and time.monotonic() - started < timeout:  # type: ignore[operator]
        time.sleep(0.01)
    return time.monotonic() - started


@pytest.mark.slow
def test_cooperative_sticky_rebalance_timings(kafka_bootstrap: str, topic: TopicFactory) -> None:
    name = topic(4)
    members: list[_Member] = []
    try:
        first = _Member(kafka_bootstrap, name, name, "c1")
        members.append(first)
        joined = _wait_until(lambda: len(first.owned) == 4, 30)
        assert len(first.owned) == 4

        second = _Member(kafka_bootstrap, name, name, "c2")
        members.append(second)
        rebalanced = _wait_until(lambda: len(second.owned) == 2, 40)
        assert len(second.owned) == 2
        assert len(first.owned) == 2
        assert first.owned.isdisjoint(second.owned)

        second.close()
        taken_back = _wait_until(lambda: len(first.owned) == 4, 30)
        assert len(first.owned) == 4
        print(
            f"first assignment {joined:.2f}s, second member gets partitions "
            f"{rebalanced:.2f}s, partitions back after leave {taken_back:.2f}s"
        )
    finally:
        for member in members:
            member.close()


@pytest.mark.xfail(
    reason="tansu 0.6.0: ListOffsets(LATEST) answers last batch base offset + 1",
    strict=True,
)
def test_tansu_list_offsets_latest_is_log_end(own_tansu: TansuBroker) -> None:
    name = own_tansu.create_topic("wm", 1)
    produce_json(own_tansu.bootstrap, name, [{"i": i} for i in range(100)])  # one batch
    consumer = Consumer({"bootstrap.servers": own_tansu.bootstrap, "group.id": "wm"})
    consumer.assign([TopicPartition(name, 0, 0)])
    consume_n(consumer, 100)
    fetched = consumer.get_watermark_offsets(TopicPartition(name, 0), cached=True)
    listed = consumer.get_watermark_offsets(TopicPartition(name, 0), timeout=5)
    consumer.close()
    assert fetched == (0, 100)  # the high watermark from Fetch is right
    assert listed == (0, 100)  # tansu answers (0, 1)


def test_produce_and_consume_throughput_tansu(own_tansu: TansuBroker) -> None:
    name = own_tansu.create_topic("tp", 1)
    n = 30_000
    started = time.monotonic()
    produce_json(own_tansu.bootstrap, name, [EVENT_BYTES] * n)
    produce_rate = n / (time.monotonic() - started)

    consumer = Consumer({"bootstrap.servers": own_tansu.bootstrap, "group.id": "tp"})
    consumer.assign([TopicPartition(name, 0, 0)])
    started = time.monotonic()
    consume_n(consumer, n)
    consume_rate = n / (time.monotonic() - started)
    consumer.close()
    print(
        f"tansu {len(EVENT_BYTES)} B: produce {produce_rate:,.0f}/s consume {consume_rate:,.0f}/s"
    )
    assert produce_rate > 5_000
    assert consume_rate > 5_000


@pytest.fixture
def loaded_mock() -> Iterator[tuple[MockCluster, str, int]]:
    # the mock keeps ~5 MB per partition (older segments are deleted): stay below it
    with MockCluster() as cluster:
        per_partition = 10_000
        for partition in range(4):
            produce_json(cluster.bootstrap, "events", [EVENT_BYTES] * per_partition, partition)
        yield cluster, "events", 4 * per_partition


def test_mock_cluster_consume_throughput(loaded_mock: tuple[MockCluster, str, int]) -> None:
    cluster, name, n = loaded_mock
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "bench"})
    consumer.assign([TopicPartition(name, p, 0) for p in range(4)])
    started = time.monotonic()
    batches = 0
    got = 0
    while got < n and time.monotonic() - started < 30:
        got += len(consumer.consume(5000, 0.5))
        batches += 1
    rate = got / (time.monotonic() - started)
    consumer.close()
    print(f"mock cluster: {got} x {len(EVENT_BYTES)} B in {batches} batches, {rate:,.0f}/s")
    assert got == n
    assert rate > 20_000


def test_mock_cluster_auto_creates_four_partitions(mock_cluster: MockCluster) -> None:
    produce_json(mock_cluster.bootstrap, "auto", [{"a": 1}])
    meta = Producer({"bootstrap.servers": mock_cluster.bootstrap}).list_topics("auto", timeout=5)
    assert len(meta.topics["auto"].partitions) == 4


@pytest.mark.skipif(
    "KAFKA_BOOTSTRAP_SERVERS" in os.environ, reason="checks the local tansu fallback"
)
def test_kafka_bootstrap_is_reachable(kafka_bootstrap: str) -> None:
    meta = Producer({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=5)
    assert meta.brokers
