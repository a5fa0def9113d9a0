"""The evaluate suite reuses the stream suite's broker, Redis and baseline fixtures."""

from tests.stream.conftest import (
    baselines,
    broker,
    make_config,
    prefix,
    shared_redis,
    shared_redis_url,
    topic,
)

__all__ = [
    "baselines",
    "broker",
    "make_config",
    "prefix",
    "shared_redis",
    "shared_redis_url",
    "topic",
]
