"""Test harness for the stream: synthetic events, independent expected counts, a daemon.

Expected counts are computed here from the produced events with numpy.searchsorted and
plain dict lookups on the baseline *document*, independently of the decoder, the
accumulator and the kernels under test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis
import yaml
from confluent_kafka import Producer

from monitor.baseline import build_baseline, write_baseline
from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]
COUNTRIES = ["DE", "FR", "US", "GB", "ES", "IT"]
PLANS = ["free", "pro", "team"]


def write_baselines(directory: Path, seed: int = 7) -> dict[str, Path]:
    """Two models' baselines fitted on synthetic reference data."""
    rng = np.random.default_rng(seed)
    n = 4000
    amount = rng.lognormal(3, 1, n).tolist()
    age: list[float | None] = [float(a) for a in rng.integers(18, 90, n)]
    for i in range(0, n, 20):
        age[i] = None
    fraud = {
        "amount": amount,
        "age": age,
        "country": rng.choice(COUNTRIES[:4], n, p=[0.4, 0.3, 0.2, 0.1]).tolist(),
        "__prediction__": rng.uniform(0, 1, n).tolist(),
        "latency_ms": rng.lognormal(2, 0.5, n).tolist(),
    }
    churn = {
        "tenure": rng.exponential(12, n).tolist(),
        "plan": rng.choice(PLANS, n).tolist(),
    }
    paths = {}
    for model, columns in (("fraud", fraud), ("churn", churn)):
        path = directory / f"{model}.json"
        write_baseline(build_baseline(model, columns, bins=10, top_k=3), path)
        paths[model] = path
    return paths


def make_events(n: int, seed: int, now: float, shift: float = 0.0) -> list[dict[str, Any]]:
    """`n` valid events for the models 'fraud' and 'churn' (about 2:1)."""
    rng = np.random.default_rng(seed)
    events: list[dict[str, Any]] = []
    for i in range(n):
        if rng.random() < 0.67:
            age = None if rng.random() < 0.1 else int(rng.integers(10, 100))
            features: dict[str, Any] = {
                "amount": float(rng.lognormal(3 + shift, 1)),
                "age": age,
                "country": str(rng.choice(COUNTRIES)),
                "extra": "ignored",
            }
            if rng.random() < 0.05:
                del features["amount"]
            events.append(
                {
                    "model": "fraud",
                    "ts": now + float(rng.uniform(-5, 0)),
                    "request_id": f"r-{i}",
                    "features": features,
                    "prediction": float(rng.uniform(0, 1)),
                    "latency_ms": float(rng.lognormal(2, 0.5)),
                }
            )
        else:
            events.append(
                {
                    "model": "churn",
                    "features": {
                        "tenure": float(rng.exponential(12)),
                        "plan": str(rng.choice([*PLANS, "enterprise"])),
                    },
                }
            )
    return events


def expected_counts(
    events: list[dict[str, Any]], baselines: dict[str, Path]
) -> dict[str, Counter[str]]:
    """Hash fields every bucket of each model should add up to (latency buckets excluded)."""
    docs = {m: json.loads(p.read_text()) for m, p in baselines.items()}
    out: dict[str, Counter[str]] = {m: Counter() for m in docs}
    for event in events:
        model = event["model"]
        doc = docs[model]
        counts = out[model]
        counts["n"] += 1
        if event.get("latency_ms") is not None:
            counts["latency"] += 1
        values = dict(event.get("features", {}))
        values["__prediction__"] = event.get("prediction")
        for name, spec in doc["features"].items():
            value = values.get(name)
            if value is None:
                counts[f"f:{name}:m"] += 1
            elif spec["type"] == "numeric":
                x = float(value)
                counts[f"f:{name}:{int(np.searchsorted(spec['edges'], x, side='left'))}"] += 1
                if x < spec["min"] or x > spec["max"]:
                    counts[f"f:{name}:o"] += 1
            else:
                cats = spec["categories"]  # the top-k; bin len(cats) is "__other__"
                if value in cats:
                    counts[f"f:{name}:{cats.index(value)}"] += 1
                else:
                    counts[f"f:{name}:{len(cats)}"] += 1
                    if value not in spec.get("other_seen", []):
                        counts[f"f:{name}:u"] += 1
    return out


def redis_counts(client: redis.Redis, prefix: str, model: str) -> Counter[str]:
    """Sum of every bucket hash of `model` (latency buckets summed into 'latency')."""
    total: Counter[str] = Counter()
    for key in client.scan_iter(match=f"{prefix}:{{{model}}}:b:*", count=1000):
        for field, value in client.hgetall(key).items():
            name = field.decode()
            if name.startswith("l:"):
                total["latency"] += int(value)
            elif name.startswith(("x:", "ign")):
                continue
            else:
                total[name] += int(value)
    return total


def write_config(
    directory: Path,
    *,
    bootstrap: str,
    topic: str,
    redis_url: str,
    prefix: str,
    baselines: dict[str, Path],
    **overrides: Any,
) -> Path:
    """A daemon config for tests: fast group joins, frequent flushes."""
    config: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [topic],
            "group_id": f"{prefix}-group",
            "options": {
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
            },
        },
        "redis": {"url": redis_url, "key_prefix": prefix, "socket_timeout_seconds": 1.0},
        "http": {"host": "127.0.0.1", "port": 0},
        "windows": {"bucket_seconds": 60, "sizes": ["15m", "1h"], "flush_interval_ms": 200},
        "models": {m: {"baseline": str(p)} for m, p in baselines.items()},
        "log": {"level": "info", "format": "json"},
    }
    for section, values in overrides.items():
        config.setdefault(section, {}).update(values)
    path = directory / f"driftmon-{prefix}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Daemon:
    """`driftmon run` in a subprocess, on its own HTTP port."""

    def __init__(self, config: Path, log_dir: Path, name: str = "daemon") -> None:
        self.config = config
        self.log_dir = log_dir
        self.name = name
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Daemon:
        self.port = free_port()
        self.starts += 1
        env = {**os.environ, "DRIFTMON_HTTP__PORT": str(self.port)}
        with (self.log_dir / f"{self.name}-{self.starts}.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=2)

    def metric(self, name: str, **labels: str) -> float:
        """A sample's value from /metrics (0 when absent)."""
        text = self.get("/metrics").text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            metric, _, rest = key.partition("{")
            got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
            if metric == name and got == want:
                return float(value)
        return 0.0

    def log_text(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.log_dir.glob(f"{self.name}-*.log"))
        )

    def stop(self) -> None:
        if self.alive():
            try:
                self.terminate(15)
            except subprocess.TimeoutExpired:
                self.kill()


class PacedProducer(threading.Thread):
    """Produces messages at about `rate` per second on a background thread."""

    def __init__(self, bootstrap: str, topic: str, values: list[Any], rate: float) -> None:
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.values = values
        self.rate = rate
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
            start = time.monotonic()
            for i, value in enumerate(self.values):
                payload = value if isinstance(value, bytes) else json.dumps(value).encode()
                while True:
                    try:
                        producer.produce(self.topic, payload)
                        break
                    except BufferError:
                        producer.poll(0.05)
                self.sent = i + 1
                ahead = start + self.sent / self.rate - time.monotonic()
                if ahead > 0.01:
                    producer.poll(0)
                    time.sleep(ahead)
            left = producer.flush(60)
        except BaseException as exc:
            self.error = exc
            return
        if left:
            self.error = RuntimeError(f"{left} messages left undelivered")


def wait_for(
    predicate: Any, timeout: float, interval: float = 0.25, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def assert_exact(actual: Counter[str], expected: Counter[str]) -> None:
    diff = {
        k: (actual.get(k, 0), v)
        for k, v in (expected | actual).items()
        if actual.get(k, 0) != expected.get(k, 0)
    }
    assert not diff, f"counts differ (actual, expected): {dict(sorted(diff.items())[:20])}"
