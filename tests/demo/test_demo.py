"""`driftmon demo` end to end (embedded Kafka and Redis), `driftmon drill` against it, and
the live view in a real terminal (tmux).

The demo is run as users run it: a subprocess of the console command. One `--no-live` run
serves two checks: the drill is pointed at it (through the configuration file the demo
prints) while it runs, and its summary must show every incident detected and alerted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
DRIFTMON = [sys.executable, "-m", "monitor"]
DRILL_ARGS = ("--feature", "age", "--budget", "40", "--json")
INCIDENTS = (
    "latency churn",
    "shift fraud.amount",
    "new_categories fraud.country",
    "nulls churn.tenure",
    "silence reco",
)


class Output(threading.Thread):
    """Collects a subprocess's stdout lines as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.lines: list[str] = []

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None and not self.is_alive():
                break
            time.sleep(0.2)
        raise AssertionError(f"no line starting with {prefix!r}:\n" + "\n".join(self.lines))


def test_demo_detects_and_alerts_every_incident_and_the_drill_measures_both_times() -> None:
    started = time.monotonic()
    proc = subprocess.Popen(
        [*DRIFTMON, "demo", "--duration", "70", "--no-live"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    out = Output(proc)
    out.start()
    try:
        config = out.wait_for("drill:", 60).split("--config ", 1)[1].split()[0]
        assert out.wait_for("metrics:", 1).endswith("/metrics")
        assert "GET 'driftmon:{fraud}:state'" in out.wait_for("state:", 1)
        drill = subprocess.run(
            [*DRIFTMON, "drill", "--config", config, "--model", "fraud", *DRILL_ARGS],
            check=False,
            capture_output=True,
            text=True,
            timeout=90,
            cwd=REPO,
        )
        assert drill.returncode == 0, drill.stdout + drill.stderr
        report = json.loads(drill.stdout)
        assert report["passed"] is True
        assert report["model"] == "fraud" and report["feature"] == "age"
        assert 0 <= report["time_to_detect_seconds"] <= report["time_to_alert_seconds"] <= 40
        assert report["alert"].split()[0] in {"DataQualityOutOfRange", "FeatureDrift"}
        code = proc.wait(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    out.join(5)
    if proc.stdout is not None:
        proc.stdout.close()
    text = "\n".join(out.lines)
    took = time.monotonic() - started
    assert code == 0, text
    assert "5/5 incidents detected and alerted" in text
    for label in INCIDENTS:
        row = next(line for line in out.lines if line.startswith(f"│ {label} "))
        assert row.count("(+") == 2, row  # detected and alerted, each with its delay
    assert "Traceback" not in text
    assert took < 100, f"the demo took {took:.0f}s"
    print(text)


def _drill(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DRIFTMON, "drill", "--config", str(config), "--model", "fraud", "--budget", "5"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_drill_fails_when_the_daemon_is_not_running(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    prefix = key_prefix.rstrip(":")
    config = tmp_path / "driftmon.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["t"]},
                "redis": {"url": redis_url, "key_prefix": prefix},
            }
        )
    )
    never = _drill(config)
    assert never.returncode == 1, never.stderr
    assert "the daemon is not running" in never.stderr
    assert "last evaluated never" in never.stderr

    stale = {"model": "fraud", "evaluated_at": "2020-01-01T00:00:00Z", "windows": {}}
    redis_client.set(f"{prefix}:{{fraud}}:state", json.dumps(stale))
    old = _drill(config)
    assert old.returncode == 1, old.stderr
    assert "last evaluated 2020-01-01T00:00:00Z" in old.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed (.ci/run installs it)")
def test_live_view_renders_in_a_real_terminal(tmp_path: Path) -> None:
    socket = f"driftmon-test-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-L", socket]
    done = tmp_path / "exit-code"
    command = f"{' '.join(DRIFTMON)} demo --duration 60; echo $? > {done}; sleep 60"
    env = {**os.environ, "TERM": "xterm-256color"}
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "200", "-y", "50", "-c", str(REPO), command],
        check=True,
        env=env,
    )

    def screen() -> str:
        result = subprocess.run(
            [*tmux, "capture-pane", "-p"], check=False, capture_output=True, text=True
        )
        return result.stdout

    try:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            text = screen()
            if "drift state" in text and "│ fraud" in text and "incidents" in text:
                break
            time.sleep(0.5)
        assert "drift state" in text, text
        for heading in ("psi", "js_distance", "severity", "events/s", "p95 ms", "p99 ms"):
            assert heading in text, text
        assert "alerts firing" in text and "runbook" in text
        for model in ("fraud", "churn", "reco"):
            assert f"│ {model}" in text, text
        assert "metrics http://127.0.0.1:" in text
        assert "redis-cli -p" in text
        subprocess.run([*tmux, "send-keys", "C-c"], check=True)  # ends early with a summary
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not done.exists():
            time.sleep(0.5)
        assert done.read_text().strip() == "130"
        assert "summary" in screen()
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, capture_output=True)
