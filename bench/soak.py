"""Soak: `driftmon run` for 10 minutes at 50 k events/s; memory and flush latency flat

The real daemon (a `driftmon run` subprocess, evaluator and HTTP included) reads 4 topics
x 4 partitions of the in-process librdkafka mock broker, into the Redis server of this
machine. A producer thread in this process keeps 50 k events/s (PERF.md's shape,
without `ts`: the Kafka timestamp is the event time) in 10 ms ticks. After a one-minute
warm-up the daemon's RSS (/proc/<pid>/status VmRSS) and its mean flush duration
(`driftmon_flush_duration_seconds` sum/count) are sampled every 10 s; growth compares
the median of the last fifth of the samples with the first fifth. At the end every event
produced must be counted in Redis, exactly.

The mock broker keeps only ~5 MB per partition (~4 s of this traffic over 16 partitions):
a daemon that fell further behind would lose events (it counts them in
`driftmon_messages_lost_total`, reported below), and the exact-count check would say so.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import msgspec
import numpy as np
import redis
from confluent_kafka import Producer

from bench.core import Config, Row, Target
from bench.stream import reference_baseline
from tests.services import MockCluster, redis_url_for_tests
from tests.stream.harness import Daemon, write_config

MODEL = "soak"
N_FEATURES = 20
N_TOPICS = 4
RATE = 50_000
TICK_S = 0.01
SAMPLE_S = 10.0


class _Traffic(threading.Thread):
    """Produces `rate` events/s round-robin over the topics' partitions until stopped."""

    def __init__(self, bootstrap: str, topics: list[str], payloads: list[bytes], rate: int):
        super().__init__(daemon=True)
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self._topics = topics
        self._payloads = payloads
        self._rate = rate
        self._stop_event = threading.Event()
        self.produced = 0
        self.failed = 0

    def _delivered(self, err: object, _msg: object) -> None:
        if err is not None:
            self.failed += 1

    def run(self) -> None:
        per_tick = int(self._rate * TICK_S)
        n_payloads, n_topics = len(self._payloads), len(self._topics)
        next_tick = time.monotonic()
        i = 0
        while not self._stop_event.is_set():
            for _ in range(per_tick):
                topic = self._topics[i % n_topics]
                partition = (i // n_topics) % 4
                while True:
                    try:
                        self._producer.produce(
                            topic,
                            self._payloads[i % n_payloads],
                            partition=partition,
                            on_delivery=self._delivered,
                        )
                        break
                    except BufferError:
                        self._producer.poll(0.005)
                i += 1
            self.produced = i
            self._producer.poll(0)
            next_tick += TICK_S
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def finish(self) -> int:
        self._stop_event.set()
        if self.ident is not None:  # started
            self.join(30)
        self._producer.flush(60)
        return self.produced - self.failed


def _seed(bootstrap: str, topics: list[str], payload: bytes) -> int:
    """Produce one event to every partition of every topic; returns how many."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for topic in topics:
        for partition in range(4):
            producer.produce(topic, payload, partition=partition)
    if producer.flush(30):
        raise RuntimeError("soak: seed events not delivered")
    return len(topics) * 4


def _payloads(rng: np.random.Generator, n: int) -> list[bytes]:
    values = rng.standard_normal((n, N_FEATURES)).round(4)
    names = [f"f{j:02d}" for j in range(N_FEATURES)]
    encode = msgspec.json.encode
    return [
        encode(
            {
                "model": MODEL,
                "features": dict(zip(names, row, strict=True)),
                "prediction": float(row[0] > 0),
                "latency_ms": 12.5,
            }
        )
        for row in values.tolist()
    ]


def _pid(daemon: Daemon) -> int:
    if daemon.proc is None:
        raise RuntimeError("soak: the daemon is not running")
    return daemon.proc.pid


def _rss_mb(pid: int) -> float:
    with Path(f"/proc/{pid}/status").open() as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _counted(redis_url: str, prefix: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return sum(int(client.hget(k, "n") or 0) for k in client.scan_iter(f"{prefix}:*:b:*"))
    finally:
        client.close()


def _clean(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
    finally:
        client.close()


def _wait_counted(redis_url: str, prefix: str, n: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    counted = _counted(redis_url, prefix)
    while counted < n and time.monotonic() < deadline:
        time.sleep(1.0)
        counted = _counted(redis_url, prefix)
    return counted


def _kafka_errors(log_dir: Path) -> list[str]:
    """The daemon's `kafka_error` log lines (an offset reset means the broker dropped
    events the daemon had not read yet)."""
    return [
        line.strip()[:300]
        for log in sorted(log_dir.glob("soak-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "kafka_error" in line
    ]


def _metric_sum(daemon: Daemon, name: str) -> float:
    """The sum of every sample of `name` on the daemon's /metrics (all label sets)."""
    total = 0.0
    for line in daemon.get("/metrics").text.splitlines():
        if line.startswith((f"{name} ", f"{name}{{")):
            total += float(line.rpartition(" ")[2])
    return total


def _flush_stats(daemon: Daemon) -> tuple[float, float]:
    return (
        daemon.metric("driftmon_flush_duration_seconds_sum"),
        daemon.metric("driftmon_flush_duration_seconds_count"),
    )


def run(config: Config) -> list[Row]:
    duration = 30.0 if config.quick else 600.0
    warmup = 5.0 if config.quick else 60.0
    rng = np.random.default_rng(13)
    prefix = f"soak{uuid.uuid4().hex[:8]}"
    redis_url = redis_url_for_tests()
    with tempfile.TemporaryDirectory() as tmp, MockCluster() as cluster:
        baseline = reference_baseline(Path(tmp) / "soak.json", MODEL, rng)
        topics = [f"soak-{prefix}-{i}" for i in range(N_TOPICS)]
        config_path = write_config(
            Path(tmp),
            bootstrap=cluster.bootstrap,
            topic=topics[0],
            redis_url=redis_url,
            prefix=prefix,
            baselines={MODEL: baseline},
            kafka={"topics": topics},
            log={"level": "warning"},
        )
        payloads = _payloads(rng, 20_000)
        # One event per partition creates the topics before the daemon subscribes; the
        # traffic starts once the daemon has counted them, so every event is produced
        # after its partition has a position (events produced while the daemon starts
        # could be deleted by the mock broker before the first fetch: not a loss the
        # daemon can see, and not what the soak measures).
        seeds = _seed(cluster.bootstrap, topics, payloads[0])
        traffic = _Traffic(cluster.bootstrap, topics, payloads, RATE)
        daemon = Daemon(config_path, Path(tmp), name="soak").start()
        rss: list[float] = []
        flush_ms: list[float] = []
        lag: list[float] = []
        try:
            _wait_ready(daemon)
            if _wait_counted(redis_url, prefix, seeds, timeout=60) != seeds:
                raise RuntimeError("soak: the daemon did not count the seed events")
            traffic.start()
            time.sleep(warmup)
            started = time.monotonic()
            produced_at_start = traffic.produced
            last = _flush_stats(daemon)
            while time.monotonic() - started < duration:
                time.sleep(SAMPLE_S)
                rss.append(_rss_mb(_pid(daemon)))
                lag.append(_metric_sum(daemon, "driftmon_consumer_lag_messages"))
                now = _flush_stats(daemon)
                if now[1] > last[1]:
                    flush_ms.append(1000 * (now[0] - last[0]) / (now[1] - last[1]))
                last = now
            rate = (traffic.produced - produced_at_start) / (time.monotonic() - started)
            produced = seeds + traffic.finish()
            counted = _wait_counted(redis_url, prefix, produced, timeout=60)
            if not daemon.alive():
                raise RuntimeError("soak: the daemon died")
            kafka_errors = _kafka_errors(Path(tmp))
            lost = _metric_sum(daemon, "driftmon_messages_lost_total")
        finally:
            traffic.finish()
            daemon.stop()
            _clean(redis_url, prefix)
    if counted != produced:
        raise RuntimeError(
            f"soak: {counted} events counted of {produced} produced; the daemon reported "
            f"{lost:.0f} messages lost to retention (max consumer lag {max(lag, default=0):.0f}) "
            f"and logged {len(kafka_errors)} Kafka errors"
            f"{': ' + kafka_errors[0] if kafka_errors else ''}"
        )
    k = max(1, len(rss) // 5)
    rss_first, rss_last = statistics.median(rss[:k]), statistics.median(rss[-k:])
    flush_first, flush_last = statistics.median(flush_ms[:k]), statistics.median(flush_ms[-k:])
    minutes = duration / 60
    return [
        Row(f"soak {minutes:.1f} min: traffic held", rate, "events/s", Target(">=", RATE * 0.95)),
        Row(
            f"soak: events counted / produced ({produced:,} produced)",
            counted / produced,
            "ratio",
            Target(">=", 1.0),
        ),
        Row("soak: messages lost to retention (driftmon_messages_lost_total)", lost, "messages"),
        Row("soak: consumer lag, median of samples", statistics.median(lag), "messages"),
        Row("soak: consumer lag, max of samples", max(lag), "messages"),
        Row("soak: daemon RSS, first fifth of samples", rss_first, "MB"),
        Row("soak: daemon RSS, last fifth of samples", rss_last, "MB"),
        Row("soak: RSS growth", 100 * (rss_last / rss_first - 1), "%", Target("<", 5.0)),
        Row("soak: mean flush, first fifth", flush_first, "ms"),
        Row("soak: mean flush, last fifth", flush_last, "ms"),
    ]


def _wait_ready(daemon: Daemon, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not daemon.alive():
            raise RuntimeError("soak: the daemon exited during start-up")
        try:
            if daemon.get("/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("soak: the daemon never became ready")
