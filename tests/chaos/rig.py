"""The chaos rig: the real daemon between a real broker, a real Redis and real alert sinks.

One `Rig` per scenario owns everything it may break: a private `redis-server`, a tansu
broker (memory storage, or S3 storage when the broker itself is restarted), a webhook
receiver and a real Alertmanager that posts to the same receiver, and `driftmon run`
subprocesses (tests/stream/harness.py: Daemon).

Traffic: the stream suite's events for `fraud` and `churn` (exact-count models; a 5 m
window of 1 s buckets kept 20 min by the grace, so nothing expires before the check),
plus a `canary` model with a 10 s window whose category mix the scenario switches to
make an alert fire and resolve, so notifications flow through every fault.

What is checked, independently of the code under test:
- counts: the topic is read back by a separate consumer; expected bucket fields are
  computed from those messages (harness.expected_counts, numpy searchsorted on the
  baseline documents) and compared field by field with the sum of Redis' bucket hashes;
  the broker must hold every message the producer had acknowledged;
- notifications: every alert transition the evaluator wrote to `<prefix>:alerts:log`
  (polled all along, since a Redis that loses its data loses the log too) must reach
  the webhook receiver, and Alertmanager must end up holding exactly the firing alerts;
- readiness: /readyz answers 200 at the end.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis
import yaml
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition

from monitor.baseline import build_baseline, write_baseline
from tests.alerts.alertmanager import AlertmanagerServer
from tests.alerts.receiver import Receiver
from tests.chaos.services import DurableTansu, S3Server
from tests.services import RedisServer, TansuBroker, create_topic
from tests.stream.harness import Daemon, expected_counts, make_events, write_baselines

EXACT_MODELS = ("fraud", "churn")
COLORS = ["red", "green", "blue"]
TRANSITIONS = {"firing", "resolved", "severity_changed"}
PARTITIONS = 3


def write_canary_baseline(directory: Path, seed: int = 11) -> Path:
    rng = np.random.default_rng(seed)
    n = 3000
    columns = {
        "color": rng.choice(COLORS, n, p=[0.5, 0.3, 0.2]).tolist(),
        "x": rng.normal(0, 1, n).tolist(),
    }
    path = directory / "canary.json"
    write_baseline(build_baseline("canary", columns, bins=5, top_k=3), path)
    return path


def _rules(for_seconds: float) -> dict[str, Any]:
    def levels(info: float, warning: float, critical: float) -> dict[str, float]:
        return {
            "info": info,
            "warning": warning,
            "critical": critical,
            "for_seconds": for_seconds,
        }

    return {
        "psi": levels(0.1, 0.2, 0.3),
        "js_distance": levels(0.1, 0.2, 0.3),
        "missing": levels(0.05, 0.2, 0.5),
        "out_of_range": levels(0.01, 0.05, 0.2),
        "unseen": levels(0.01, 0.05, 0.2),
        "invalid": levels(0.01, 0.05, 0.2),
        "latency_for_seconds": for_seconds,
        "no_traffic_seconds": 120,
    }


class Traffic(threading.Thread):
    """Produces exact-count events at `rate`/s and canary events at `canary_rate`/s.

    Every message is acknowledged or the run fails (`errors`); `acked` counts the
    acknowledged exact-count events. Set `drift` to switch the canary to a mix with 60%
    of a colour its baseline never saw (DataQualityUnseenCategory, critical).
    """

    def __init__(
        self, bootstrap: str, topic: str, rate: float, canary_rate: float, seed: int
    ) -> None:
        super().__init__(daemon=True, name="chaos-traffic")
        self.topic = topic
        self.rate = rate
        self.canary_rate = canary_rate
        self.drift = False
        self.stop = threading.Event()
        self.acked = 0
        self.sent = 0
        self.errors: list[str] = []
        self._seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 10,
                "enable.idempotence": True,  # no duplicates from retries across faults
                "message.timeout.ms": 600_000,
                "log_level": 2,
            }
        )

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))
        elif msg.key() == b"x":
            with self._lock:
                self.acked += 1

    def _canary(self) -> bytes:
        rng = self._rng
        if self.drift and rng.random() < 0.6:
            color = "purple"
        else:
            color = rng.choices(COLORS, weights=[0.5, 0.3, 0.2])[0]
        return json.dumps(
            {"model": "canary", "features": {"color": color, "x": rng.gauss(0, 1)}}
        ).encode()

    def _produce(self, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(self.topic, value, key=key, on_delivery=self._on_delivery)
            except BufferError:
                self._producer.poll(0.05)
            else:
                return

    def run(self) -> None:
        tick = 0.1
        chunk = 0
        canary_due = 0.0
        try:
            while not self.stop.is_set():
                started = time.monotonic()
                n = int(self.rate * tick)
                chunk += 1
                for event in make_events(n, seed=self._seed * 100_000 + chunk, now=time.time()):
                    self._produce(b"x", json.dumps(event).encode())
                self.sent += n
                canary_due += self.canary_rate * tick
                while canary_due >= 1:
                    self._produce(b"c", self._canary())
                    canary_due -= 1
                self._producer.poll(0)
                self.stop.wait(max(0.0, tick - (time.monotonic() - started)))
            left = self._producer.flush(120)
            if left:
                self.errors.append(f"{left} messages not acknowledged")
        except Exception as exc:  # reported by finish()
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def finish(self) -> int:
        """Stop producing, wait for every acknowledgement; returns the acked exact events."""
        self.stop.set()
        self.join(180)
        assert not self.is_alive(), "producer did not finish"
        assert not self.errors, f"producer errors: {self.errors[:3]}"
        assert self.acked == self.sent, f"acked {self.acked} of {self.sent}"
        return self.acked


@dataclass
class Topic:
    """What the broker holds: exact-count events with their (partition, offset)."""

    events: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    canary: int = 0


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 120) -> Topic:
    """Everything in `topic`, read by an independent consumer (no group, explicit assign)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-reader-{random.random()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 2,
        }
    )
    out = Topic()
    try:
        consumer.assign([KafkaTopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        eof: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in consumer.consume(5000, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof.add(msg.partition())
                    continue
                eof.discard(msg.partition())
                if msg.key() == b"x":
                    out.events.append((msg.partition(), msg.offset(), json.loads(msg.value())))
                else:
                    out.canary += 1
            if len(eof) == PARTITIONS and len(out.events) >= expected:
                break
    finally:
        consumer.close()
    return out


def redis_totals(client: redis.Redis, prefix: str) -> dict[str, Counter[str]]:
    """Sum of every bucket hash per exact-count model (latency histogram summed)."""
    totals: dict[str, Counter[str]] = {}
    for model in EXACT_MODELS:
        total: Counter[str] = Counter()
        for key in client.scan_iter(match=f"{prefix}:{{{model}}}:b:*", count=1000):
            for name, value in client.hgetall(key).items():
                text = name.decode()
                if text.startswith("l:"):
                    total["latency"] += int(value)
                elif not text.startswith(("x:", "ign")):
                    total[text] += int(value)
        totals[model] = total
    return totals


def count_differences(
    actual: dict[str, Counter[str]], expected: dict[str, Counter[str]]
) -> dict[str, dict[str, tuple[int, int]]]:
    """Per model, the fields whose (actual, expected) differ."""
    out = {}
    for model in EXACT_MODELS:
        a, e = actual.get(model, Counter()), expected.get(model, Counter())
        diff = {k: (a.get(k, 0), e.get(k, 0)) for k in a | e if a.get(k, 0) != e.get(k, 0)}
        if diff:
            out[model] = dict(sorted(diff.items())[:10])
    return out


class AlertLogWatcher(threading.Thread):
    """Polls `<prefix>:alerts:log` and keeps every transition ever seen in it."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        super().__init__(daemon=True, name="chaos-alert-log")
        self._client = client
        self._key = f"{prefix}:alerts:log"
        self.transitions: set[tuple[str, str, str]] = set()
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def poll(self) -> None:
        try:
            entries = self._client.xrange(self._key)
        except redis.RedisError:
            return
        found = set()
        for _, raw in entries:
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            if fields["event"] in TRANSITIONS:
                found.add((fields["identity"], fields["event"], fields["severity"]))
        with self._lock:
            self.transitions |= found

    def run(self) -> None:
        while not self.stop.wait(0.3):
            self.poll()

    def snapshot(self) -> set[tuple[str, str, str]]:
        self.poll()
        with self._lock:
            return set(self.transitions)


def delivered(receiver: Receiver) -> list[tuple[str, str, str]]:
    """(identity, kind, severity) of each notification the webhook sink delivered."""
    return [
        (body["identity"], body["kind"], body["labels"]["severity"])
        for body in receiver.accepted()
        if isinstance(body, dict) and body.get("version") == 1
    ]


@dataclass
class Scale:
    """Durations of one chaos run: `full` for `make chaos`, `ci` inside `make test`."""

    name: str
    rate: float  # exact-count events per second
    kills: int
    kill_gap: tuple[float, float]  # seconds of progress between kills
    redis_pause: float
    broker_down: float
    sinks_down: float
    soak: float

    @classmethod
    def named(cls, name: str) -> Scale:
        if name == "full":
            return cls("full", 2000, 5, (1.0, 4.0), 30, 30, 300, 600)
        return cls("ci", 1000, 5, (0.5, 1.5), 5, 5, 15, 0)


class Rig:
    """Services, config, traffic and daemons of one scenario (a context manager)."""

    def __init__(self, tmp: Path, prefix: str, *, durable_broker: bool = False) -> None:
        self.tmp = tmp
        self.prefix = prefix
        self.durable_broker = durable_broker
        self._stack: list[Any] = []
        self.daemons: list[Daemon] = []
        self.traffic: Traffic | None = None

    # -- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> Rig:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        self.redis = self._keep(RedisServer().start())
        self.client = redis.Redis.from_url(self.redis.url, socket_timeout=5)
        self.broker: TansuBroker
        if self.durable_broker:
            s3 = self._keep(S3Server().start())
            bucket = s3.create_bucket(f"chaos-{self.prefix.lower()}")
            self.broker = self._keep(DurableTansu(s3, bucket).start())
        else:
            self.broker = self._keep(TansuBroker().start())
        self.topic = create_topic(self.broker.bootstrap, f"{self.prefix}-events", PARTITIONS)
        self.receiver = self._keep(Receiver().start())
        self.alertmanager = self._keep(AlertmanagerServer(f"{self.receiver.url}/am").start())
        baselines = write_baselines(self.tmp)
        baselines["canary"] = write_canary_baseline(self.tmp)
        self.baselines = {m: baselines[m] for m in EXACT_MODELS}
        self.config = self._write_config(baselines)
        self.watcher = AlertLogWatcher(self.client, self.prefix)
        self.watcher.start()

    def _keep(self, service: Any) -> Any:
        self._stack.append(service)
        return service

    def __exit__(self, *exc: object) -> None:
        if self.traffic is not None and self.traffic.is_alive():
            self.traffic.stop.set()
            self.traffic.join(30)
        for daemon in self.daemons:
            daemon.stop()
        if hasattr(self, "watcher"):
            self.watcher.stop.set()
            self.watcher.join(5)
        for service in reversed(self._stack):
            service.stop()
        if hasattr(self, "client"):
            self.client.close()

    def _write_config(self, baselines: dict[str, Path]) -> Path:
        config: dict[str, Any] = {
            "kafka": {
                "bootstrap_servers": self.broker.bootstrap,
                "topics": [self.topic],
                "group_id": f"{self.prefix}-group",
                "options": {
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": 3000,
                    "heartbeat.interval.ms": 300,
                    "topic.metadata.refresh.interval.ms": 2000,
                },
            },
            "redis": {
                "url": self.redis.url,
                "key_prefix": self.prefix,
                "socket_timeout_seconds": 1.0,
            },
            "http": {"host": "127.0.0.1", "port": 0},
            "windows": {
                "bucket_seconds": 1,
                "sizes": ["5m"],
                "grace_seconds": 1200,
                "flush_interval_ms": 200,
            },
            "evaluation": {"interval_seconds": 1, "lease_seconds": 5},
            "rules": _rules(2.0),
            "models": {
                "fraud": {"baseline": str(baselines["fraud"])},
                "churn": {"baseline": str(baselines["churn"])},
                "canary": {"baseline": str(baselines["canary"]), "windows": ["10s"]},
            },
            "alerting": {
                "alertmanager_urls": [self.alertmanager.url],
                "webhooks": [{"url": f"{self.receiver.url}/hook", "min_severity": "info"}],
                "resend_seconds": 5,
            },
            "log": {"level": "info", "format": "json"},
        }
        path = self.tmp / "driftmon-chaos.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    # -- actors ----------------------------------------------------------------------
    def start_daemon(self, name: str = "daemon") -> Daemon:
        daemon = Daemon(self.config, self.tmp, name).start()
        self.daemons.append(daemon)
        return daemon

    def start_traffic(self, rate: float, canary_rate: float = 150, seed: int = 1) -> Traffic:
        self.traffic = Traffic(self.broker.bootstrap, self.topic, rate, canary_rate, seed)
        self.traffic.start()
        return self.traffic

    # -- observations ----------------------------------------------------------------
    def counted(self) -> int:
        """Events of the exact-count models in Redis now (0 while Redis does not answer)."""
        try:
            return sum(t["n"] for t in redis_totals(self.client, self.prefix).values())
        except redis.RedisError:
            return 0

    def ready(self, daemon: Daemon) -> bool:
        try:
            return daemon.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def wait_recovered(self, daemon: Daemon, produced_before: int, timeout: float) -> float:
        """Seconds until /readyz is 200 and every event acked before the fault is counted."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.ready(daemon) and self.counted() >= produced_before:
                return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(
            f"not recovered within {timeout}s: ready={self.ready(daemon)}, "
            f"counted={self.counted()} < {produced_before}\n{daemon.log_text()[-3000:]}"
        )

    def wait_canary_firing(self, timeout: float) -> None:
        _wait(
            lambda: any(
                i.startswith("DataQualityUnseenCategory/canary/") and k == "firing"
                for i, k, _ in self.watcher.snapshot()
            ),
            timeout,
            "the canary alert to fire",
        )

    def wait_canary_resolved(self, timeout: float) -> None:
        _wait(
            lambda: any(
                i.startswith("DataQualityUnseenCategory/canary/") and k == "resolved"
                for i, k, _ in self.watcher.snapshot()
            ),
            timeout,
            "the canary alert to resolve",
        )

    def wait_notifications(self, timeout: float) -> tuple[int, int]:
        """Until every transition in the alert log reached the webhook; (expected, delivered)."""
        _wait(
            lambda: self.watcher.snapshot() <= set(delivered(self.receiver)),
            timeout,
            "every notification delivered",
        )
        expected = self.watcher.snapshot()
        got = set(delivered(self.receiver))
        assert got <= expected, f"delivered but never logged: {sorted(got - expected)[:5]}"
        return len(expected), len(expected & got)

    def wait_alertmanager_converged(self, daemon: Daemon, timeout: float) -> None:
        """Alertmanager holds exactly the alerts the daemon's state documents call firing."""

        def firing_in_state() -> set[tuple[str, str, str]]:
            state = daemon.get("/state").json()
            return {
                (model, a["alertname"], a.get("feature") or "")
                for model, doc in state.items()
                for a in doc.get("alerts", [])
            }

        def active_in_am() -> set[tuple[str, str, str]]:
            return {
                (str(lab["model"]), str(lab["alertname"]), str(lab.get("feature", "")))
                for a in self.alertmanager.alerts()
                if (lab := a["labels"]) and a["status"]["state"] == "active"  # type: ignore[index]
            }

        _wait(
            lambda: firing_in_state() == active_in_am(),
            timeout,
            "Alertmanager to hold exactly the firing alerts",
        )

    def check_counts(self, acked: int, since: dict[int, int] | None = None) -> tuple[int, int, int]:
        """Read the topic back and compare with Redis; returns (acked, in topic, counted).

        `since`: partition -> first offset whose counts Redis should hold (after a Redis
        data loss, what the daemon said it re-read from); default: everything.
        """
        topic = read_topic(self.broker.bootstrap, self.topic, acked)
        assert len(topic.events) == acked, (
            f"the broker holds {len(topic.events)} of {acked} acknowledged events"
        )
        start = since or {}
        kept = [e for p, o, e in topic.events if o >= start.get(p, 0)]
        expected = expected_counts(kept, self.baselines)
        want = sum(expected[m]["n"] for m in EXACT_MODELS)
        _wait(lambda: self.counted() == want, 120, f"{want} events counted")
        time.sleep(1.5)  # anything counted twice would show up now
        actual = redis_totals(self.client, self.prefix)
        diff = count_differences(actual, expected)
        assert not diff, f"counts differ (actual, expected): {diff}"
        return acked, len(kept), sum(actual[m]["n"] for m in EXACT_MODELS)


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (httpx.HTTPError, redis.RedisError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def gaps(rng: random.Random, scale: Scale, n: int) -> Iterator[float]:
    for _ in range(n):
        yield rng.uniform(*scale.kill_gap)
