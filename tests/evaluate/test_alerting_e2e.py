"""Drift to alert to resolve, end to end: tansu -> daemon -> Redis -> Alertmanager -> webhook.

Short windows (1 s buckets, a 10 s window, `for` 3 s) make a whole incident fit in a test.
Live events are stamped with the time they are sent and drawn from the distributions the
baselines were fitted on (tests/stream/harness.py: write_baselines), except during drift.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import redis
from confluent_kafka import Producer

from tests.alerts.alertmanager import AlertmanagerServer
from tests.alerts.receiver import Receiver
from tests.stream.harness import COUNTRIES, PLANS, Daemon, wait_for

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
FOR = 3.0
STATE_SCHEMA = REPO / "monitor" / "schemas" / "state.schema.json"


class LiveTraffic(threading.Thread):
    """Baseline-distributed events at `rate`/s, stamped now; `shift` moves log(amount)."""

    def __init__(self, bootstrap: str, topic: str, rate: float = 1500) -> None:
        super().__init__(daemon=True)
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
        self.topic = topic
        self.rate = rate
        self.shift = 0.0
        self.stop = threading.Event()
        self.rng = np.random.default_rng(42)

    def _fraud(self) -> dict[str, Any]:
        rng = self.rng
        age = None if rng.random() < 0.05 else int(rng.integers(18, 90))
        country = str(rng.choice(COUNTRIES[:4], p=[0.4, 0.3, 0.2, 0.1]))
        return {
            "model": "fraud",
            "ts": time.time(),
            "features": {
                "amount": float(rng.lognormal(3 + self.shift, 1)),
                "age": age,
                "country": country,
            },
            "prediction": float(rng.uniform(0, 1)),
            "latency_ms": float(rng.lognormal(2, 0.5)),
        }

    def _churn(self) -> dict[str, Any]:
        rng = self.rng
        return {
            "model": "churn",
            "ts": time.time(),
            "features": {"tenure": float(rng.exponential(12)), "plan": str(rng.choice(PLANS))},
        }

    def run(self) -> None:
        tick = 0.05
        while not self.stop.is_set():
            started = time.monotonic()
            for i in range(int(self.rate * tick)):
                event = self._fraud() if i % 3 else self._churn()
                self.producer.produce(self.topic, json.dumps(event).encode())
            self.producer.poll(0)
            time.sleep(max(0.0, tick - (time.monotonic() - started)))
        self.producer.flush(10)


def _rules() -> dict[str, Any]:
    def t(info: float, warning: float, critical: float) -> dict[str, float]:
        return {"info": info, "warning": warning, "critical": critical, "for_seconds": FOR}

    return {
        "psi": t(0.1, 0.2, 0.3),
        "js_distance": t(0.1, 0.2, 0.3),
        "missing": t(0.05, 0.2, 0.5),
        "out_of_range": t(0.01, 0.05, 0.2),
        "unseen": t(0.01, 0.05, 0.2),
        "invalid": t(0.01, 0.05, 0.2),
        "latency_for_seconds": FOR,
        "no_traffic_seconds": 60,
    }


LEASE = 5.0


@pytest.fixture
def alerting_env(make_config: Callable[..., Path]) -> Any:
    """A webhook receiver behind a real Alertmanager, and a daemon config pointing at it."""
    receiver = Receiver().start()
    am = AlertmanagerServer(receiver.url).start()
    config = make_config(
        windows={"bucket_seconds": 1, "sizes": ["10s"], "grace_seconds": 5},
        evaluation={"interval_seconds": 1, "lease_seconds": LEASE},
        alerting={
            "alertmanager_urls": [am.url],
            "resend_seconds": 5,
            "runbook_base_url": "https://example.org/driftmon/docs/runbooks/",
        },
        rules=_rules(),
    )
    yield config, receiver
    am.stop()
    receiver.stop()


@pytest.fixture
def setup(
    tmp_path: Path,
    broker: str,
    topic: str,
    shared_redis: redis.Redis,
    prefix: str,
    alerting_env: Any,
) -> Any:
    config, receiver = alerting_env
    daemon = Daemon(config, tmp_path).start()
    traffic = LiveTraffic(broker, topic)
    traffic.start()
    yield daemon, traffic, receiver, shared_redis, prefix
    traffic.stop.set()
    traffic.join(15)
    daemon.stop()


def _state(client: redis.Redis, prefix: str, model: str) -> dict[str, Any]:
    raw = client.get(f"{prefix}:{{{model}}}:state")
    return json.loads(raw) if raw else {}


def _webhook_alerts(receiver: Receiver) -> list[dict[str, Any]]:
    return [a for body in receiver.accepted() for a in body.get("alerts", [])]


def _alerts_in(received: list[Any]) -> list[dict[str, Any]]:
    """Alerts of the webhook calls received so far (inside `Receiver.wait_for`)."""
    return [a for r in received if 200 <= r.status < 300 for a in r.body.get("alerts", [])]


def _log(client: redis.Redis, prefix: str) -> list[dict[str, str]]:
    entries = client.xrange(f"{prefix}:alerts:log")
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def _wait_full_window(client: redis.Redis, prefix: str, timeout: float) -> None:
    """Until the 10 s window of `fraud` holds more than 5000 baseline events."""
    wait_for(
        lambda: (
            _state(client, prefix, "fraud").get("windows", {}).get("10s", {}).get("events", 0)
            > 5000
        ),
        timeout,
        what="a full window of baseline traffic",
    )


def _events(client: redis.Redis, prefix: str) -> list[tuple[str, str, str]]:
    return [(e["event"], e["alertname"], e.get("feature", "")) for e in _log(client, prefix)]


def _all_resolved(alerts: list[dict[str, Any]]) -> bool:
    last: dict[str, str] = {}
    for a in alerts:
        if a["labels"].get("alertname") == "FeatureDrift":
            last[a["labels"]["severity"]] = a["status"]
    return bool(last) and all(status == "resolved" for status in last.values())


def test_drifted_feature_fires_reaches_webhook_and_resolves(setup: Any) -> None:
    daemon, traffic, receiver, client, prefix = setup
    _wait_full_window(client, prefix, 60)
    traffic.shift = 1.0  # log(amount) moves by one standard deviation
    drifted_at = time.monotonic()

    def amount_firing(alerts: list[dict[str, Any]]) -> bool:
        return any(
            a["labels"].get("alertname") == "FeatureDrift" and a["status"] == "firing"
            for a in alerts
        )

    assert receiver.wait_for(lambda r: amount_firing(_alerts_in(r)), 40)
    detected = time.monotonic() - drifted_at
    firing = [
        a
        for a in _webhook_alerts(receiver)
        if a["labels"]["alertname"] == "FeatureDrift" and a["status"] == "firing"
    ]
    labels = firing[0]["labels"]
    assert {a["labels"]["feature"] for a in firing} == {"amount"}
    assert labels["severity"] in {"warning", "critical"}
    assert labels["model"] == "fraud" and labels["window"] == "10s"
    assert labels["service"] == "driftmon"
    runbook = firing[0]["annotations"]["runbook_url"]
    assert runbook.endswith("/FeatureDrift.md")
    assert (REPO / "docs" / "runbooks" / runbook.rsplit("/", 1)[1]).is_file()
    state = _state(client, prefix, "fraud")
    drifted = {a["feature"] for a in state["alerts"] if a["alertname"] == "FeatureDrift"}
    assert drifted == {"amount"}
    assert state["windows"]["10s"]["features"]["amount"]["severity"] in {"warning", "critical"}
    jsonschema.validate(state, json.loads(STATE_SCHEMA.read_text()))
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "status",
            "--config",
            str(daemon.config),
            "--model",
            "fraud",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COLUMNS": "160"},
    )
    row = next(line for line in status.stdout.splitlines() if "amount" in line)
    assert "warning" in row or "critical" in row
    assert "FeatureDrift" in status.stdout
    promtool = subprocess.run(
        ["promtool", "check", "metrics"],
        input=daemon.get("/metrics").text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert promtool.returncode == 0, promtool.stdout + promtool.stderr

    traffic.shift = 0.0
    wait_for(
        lambda: ("resolved", "FeatureDrift", "amount") in _events(client, prefix),
        60,
        what="the resolve transition",
    )
    # A severity change also resolves the old-severity alert at Alertmanager; the incident is
    # over when every severity the alert fired with has been resolved.
    assert receiver.wait_for(lambda r: _all_resolved(_alerts_in(r)), 30)
    events = _events(client, prefix)
    assert ("firing", "FeatureDrift", "amount") in events
    assert ("resolved", "FeatureDrift", "amount") in events
    assert not [e for e in events if e[1] == "FeatureDrift" and e[2] != "amount"]
    print(f"detected and delivered {detected:.1f}s after the drift started")


def test_stationary_stream_raises_nothing(setup: Any) -> None:
    daemon, _traffic, receiver, client, prefix = setup
    _wait_full_window(client, prefix, 60)
    time.sleep(25)  # ~25 evaluations of each model
    assert _state(client, prefix, "fraud")["alerts"] == []
    assert _state(client, prefix, "churn")["alerts"] == []
    assert _log(client, prefix) == []
    assert _webhook_alerts(receiver) == []
    assert daemon.alive()


def test_killing_the_lease_holder_hands_over_without_losing_or_repeating_alerts(
    tmp_path: Path,
    broker: str,
    topic: str,
    shared_redis: redis.Redis,
    prefix: str,
    alerting_env: Any,
) -> None:
    config, receiver = alerting_env
    lease = LEASE
    daemons = [Daemon(config, tmp_path, "a").start(), Daemon(config, tmp_path, "b").start()]
    traffic = LiveTraffic(broker, topic)
    traffic.start()
    client, lease_key = shared_redis, f"{prefix}:{{fraud}}:lease"
    try:
        _wait_full_window(client, prefix, 90)
        traffic.shift = 1.0
        wait_for(
            lambda: ("firing", "FeatureDrift", "amount") in _events(client, prefix),
            40,
            what="the alert firing",
        )
        holder_pid = int(client.get(lease_key).decode().split(":")[1])
        holder = next(d for d in daemons if d.proc is not None and d.proc.pid == holder_pid)
        other = next(d for d in daemons if d is not holder)
        holder.kill()
        killed_at = time.monotonic()
        wait_for(
            lambda: (
                (v := client.get(lease_key)) is not None
                and int(v.decode().split(":")[1]) == other.proc.pid
            ),
            30,
            interval=0.1,
            what="the other replica taking the lease",
        )
        handover = time.monotonic() - killed_at
        assert handover <= lease + 1.5, f"handover took {handover:.1f}s (lease {lease}s)"
        traffic.shift = 0.0
        wait_for(
            lambda: ("resolved", "FeatureDrift", "amount") in _events(client, prefix),
            90,
            what="the resolve after the handover",
        )
        assert receiver.wait_for(lambda r: _all_resolved(_alerts_in(r)), 60)
        kinds = [
            k
            for k, name, feature in _events(client, prefix)
            if name == "FeatureDrift" and feature == "amount" and k in {"firing", "resolved"}
        ]
        assert kinds == ["firing", "resolved"], kinds  # none lost, none repeated
        print(f"lease handed over {handover:.1f}s after SIGKILL")
    finally:
        traffic.stop.set()
        traffic.join(15)
        for d in daemons:
            d.stop()
