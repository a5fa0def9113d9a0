"""Fixtures of the stream suite: a real Kafka-protocol broker and a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.services import create_topic, kafka_bootstrap_for_tests, redis_url_for_tests
from tests.stream.harness import write_baselines, write_config


@pytest.fixture(scope="session")
def broker() -> str:
    return kafka_bootstrap_for_tests()


@pytest.fixture(scope="session")
def shared_redis_url() -> str:
    return redis_url_for_tests()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def shared_redis(shared_redis_url: str, prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(shared_redis_url)
    yield client
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def topic(broker: str, prefix: str) -> str:
    return create_topic(broker, f"{prefix}-events", partitions=3)


@pytest.fixture
def baselines(tmp_path: Path) -> dict[str, Path]:
    return write_baselines(tmp_path)


@pytest.fixture
def make_config(
    tmp_path: Path,
    broker: str,
    topic: str,
    shared_redis_url: str,
    prefix: str,
    baselines: dict[str, Path],
) -> Callable[..., Path]:
    """A daemon config for this test's broker, topic, prefix and baselines."""

    def make(redis_url: str | None = None, **sections: Any) -> Path:
        return write_config(
            tmp_path,
            bootstrap=broker,
            topic=topic,
            redis_url=redis_url or shared_redis_url,
            prefix=prefix,
            baselines=baselines,
            **sections,
        )

    return make
