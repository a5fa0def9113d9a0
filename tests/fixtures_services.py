"""Pytest fixtures over ``tests/services.py``; load with ``pytest_plugins``.

Shared services are session-scoped (env var -> Docker -> local binary); tests that
pause, kill or restart a service take a private one (``own_redis``, ``own_tansu``).
Every test gets its own Redis key prefix and Kafka topic names.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.services import (
    MockCluster,
    RedisServer,
    TansuBroker,
    create_topic,
    kafka_bootstrap_for_tests,
    redis_url_for_tests,
)


def _slug(request: pytest.FixtureRequest) -> str:
    name = "".join(ch if ch.isalnum() or ch in "_-" else "-" for ch in request.node.name)[:40]
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    return redis_url_for_tests()


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix no other test uses, e.g. ``t:test_counts-3f2a9c1b:``."""
    return f"t:{_slug(request)}:"


@pytest.fixture
def redis_client(redis_url: str, key_prefix: str) -> Iterator[redis.Redis]:
    """A client on the shared Redis; keys under ``key_prefix`` are deleted afterwards."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        keys = list(client.scan_iter(match=f"{key_prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A private redis-server this test may pause, kill or restart."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Shared broker: KAFKA_BOOTSTRAP_SERVERS, else testcontainers Kafka, else tansu."""
    return kafka_bootstrap_for_tests()


@pytest.fixture
def own_tansu() -> Iterator[TansuBroker]:
    """A private tansu broker this test may pause, kill or restart (restart loses data)."""
    with TansuBroker() as broker:
        yield broker


TopicFactory = Callable[..., str]


@pytest.fixture
def topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> TopicFactory:
    """Factory: ``topic(partitions=1, suffix="")`` creates a uniquely named topic.

    >>> events = topic(4)
    >>> dlq = topic(1, suffix="dlq")
    """

    def make(partitions: int = 1, suffix: str = "") -> str:
        name = f"t-{_slug(request)}" + (f"-{suffix}" if suffix else "")
        return create_topic(kafka_bootstrap, name, partitions)

    return make


@pytest.fixture
def mock_cluster() -> Iterator[MockCluster]:
    """librdkafka's in-process mock cluster; topics auto-create with 4 partitions."""
    with MockCluster() as cluster:
        yield cluster
