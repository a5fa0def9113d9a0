"""monitor.simulate (pure generator and schedule) and `driftmon simulate` on the mock broker."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Consumer

from monitor.baseline import load_baseline
from monitor.errors import InputError
from monitor.simulate import (
    MODELS,
    Incident,
    Simulator,
    builtin_schedule,
    load_schedule,
    pick_models,
)
from tests.services import MockCluster

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("duration", [45.0, 60.0, 120.0, 150.0, 600.0])
def test_builtin_schedule_leaves_time_to_alert(duration: float) -> None:
    incidents = builtin_schedule(duration)
    assert {i.kind for i in incidents} == {"shift", "new_categories", "nulls", "latency", "silence"}
    assert all(i.start >= 8 for i in incidents)
    assert max(i.start for i in incidents) <= max(duration - 20, 40)
    assert len({i.expected_alert for i in incidents}) == 5


def test_events_follow_the_schedule() -> None:
    schedule = [
        Incident("shift", "fraud", 10, 20, "amount", magnitude=2.0),
        Incident("nulls", "churn", 10, None, "tenure", magnitude=0.5, ramp=10),
        Incident("new_categories", "fraud", 10, None, "country", magnitude=0.5),
        Incident("latency", "churn", 10, None, magnitude=10),
        Incident("silence", "reco", 10, None),
    ]
    sim = Simulator(pick_models(["fraud", "churn", "reco"]), schedule, seed=1)
    before = sim.batch(5, 4000, now=1000.0)
    after = sim.batch(25, 4000, now=1000.0)  # shift over, nulls fully ramped
    during = sim.batch(15, 4000, now=1000.0)

    def feature(events: list, model: str, name: str) -> list:
        return [e["features"][name] for e in events if e["model"] == model]

    amount = {
        k: np.median(feature(v, "fraud", "amount"))
        for k, v in {"before": before, "during": during, "after": after}.items()
    }
    assert amount["during"] > 3 * amount["before"]
    assert amount["after"] < 1.5 * amount["before"]
    tenure = feature(after, "churn", "tenure")
    assert 0.4 < sum(v is None for v in tenure) / len(tenure) < 0.6
    assert not any(v is None for v in feature(before, "churn", "tenure"))
    countries = feature(after, "fraud", "country")
    assert 0.4 < sum(str(c).startswith("NEW-") for c in countries) / len(countries) < 0.6
    lat_before = np.median([e["latency_ms"] for e in before if e["model"] == "churn"])
    lat_after = np.median([e["latency_ms"] for e in after if e["model"] == "churn"])
    assert lat_after > 5 * lat_before
    assert any(e["model"] == "reco" for e in before)
    assert not any(e["model"] == "reco" for e in after)
    assert sim.silenced > 0
    assert {
        "model",
        "model_version",
        "ts",
        "request_id",
        "features",
        "prediction",
        "latency_ms",
    } <= set(before[0])


def test_schedule_file_errors_name_the_incident(tmp_path: Path) -> None:
    path = tmp_path / "schedule.yaml"
    path.write_text("- {kind: shift, model: fraud, feature: country, start: 5}\n")
    with pytest.raises(InputError, match=r"incident 0.*NumericFeature"):
        load_schedule(path, MODELS)
    path.write_text("incidents:\n  - {kind: silence, model: churn, start: 5, end: 9}\n")
    assert load_schedule(path, MODELS) == [Incident("silence", "churn", 5, 9)]
    with pytest.raises(InputError, match="unknown model 'nope'"):
        pick_models(["fraud", "nope"])


def _count(bootstrap: str, topic: str, expected: int, timeout: float = 20) -> int:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"count-{topic}",
            "auto.offset.reset": "earliest",
            "log_level": 0,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and seen < expected:
            seen += sum(1 for m in consumer.consume(1000, 0.5) if not m.error())
        for m in consumer.consume(1000, 1.0):  # nothing more arrives
            seen += 0 if m.error() else 1
    finally:
        consumer.close()
    return seen


def test_simulate_produces_the_requested_number_of_events(tmp_path: Path) -> None:
    with MockCluster() as cluster:
        topic = f"sim-{time.time_ns()}"
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "monitor",
                "simulate",
                "--bootstrap-servers",
                cluster.bootstrap,
                "--topic",
                topic,
                "--rate",
                "250",
                "--duration",
                "2",
                "--models",
                "fraud,churn",
                "--baselines-dir",
                str(tmp_path),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "produced 500 events" in out.stdout
        assert _count(cluster.bootstrap, topic, 500) == 500
    assert load_baseline(tmp_path / "fraud.json").model == "fraud"
    assert set(load_baseline(tmp_path / "churn.json").features) == {
        "tenure",
        "plan",
        "monthly_spend",
        "__prediction__",
    }


def test_simulate_rejects_a_bad_schedule(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("- {kind: melt, model: fraud, start: 1}\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "simulate",
            "--bootstrap-servers",
            "127.0.0.1:1",
            "--schedule",
            str(path),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "incident 0: kind must be one of" in out.stderr
