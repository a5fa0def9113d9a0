"""The README's commands work as written.

Every line of the README's ```console blocks is either run here, in a scratch copy of
the repo's config/, against a real Kafka-protocol broker and a private Redis (reached
through DRIFTMON_* overrides and `redis-cli -p`), or named in COVERED_ELSEWHERE with the
test that runs it. A new README command that is neither fails this test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.services import RedisServer, create_topic, free_port, kafka_bootstrap_for_tests

REPO = Path(__file__).resolve().parents[1]
COVERED_ELSEWHERE = {
    "make demo": "tests/demo (driftmon demo end to end)",
    "make test": "CI itself (.ci/run)",
    "python -m venv .venv && .venv/bin/pip install -e .": "make test's install step",
}

pytestmark = pytest.mark.timeout(180)


def console_lines() -> list[str]:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```console\n(.*?)```", text, flags=re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line]


def _write_inputs(directory: Path) -> None:
    rng = np.random.default_rng(5)
    n = 5000
    columns = {
        "amount": rng.lognormal(2.2, 0.5, n).round(2),
        "age": rng.integers(18, 87, n).astype(float),
        "country": rng.choice(["DE", "US", "FR", "GB"], n),
        "device": rng.choice(["ios", "android", "web"], n),
    }
    with (directory / "training.csv").open("w") as f:
        f.write(",".join(columns) + "\n")
        for i in range(n):
            f.write(",".join(str(columns[c][i]) for c in columns) + "\n")
    today = dict(columns)
    today["amount"] = (today["amount"] * 3).round(2)  # a shifted feature: the gate must fail
    pq.write_table(pa.table({k: list(v) for k, v in today.items()}), directory / "today.parquet")


def test_readme_commands_work_as_written(tmp_path: Path) -> None:
    lines = console_lines()
    assert lines, "no console blocks found"
    shutil.copytree(REPO / "config", tmp_path / "config")
    _write_inputs(tmp_path)
    bootstrap = kafka_bootstrap_for_tests()
    create_topic(bootstrap, "inference-events", partitions=1)
    with RedisServer() as redis_server:
        env = {
            **os.environ,
            "DRIFTMON_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "DRIFTMON_KAFKA__GROUP_ID": f"readme-{time.time_ns()}",
            "DRIFTMON_REDIS__URL": redis_server.url,
            "DRIFTMON_HTTP__PORT": str(free_port()),
            "DRIFTMON_EVALUATION__INTERVAL_SECONDS": "1",
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        daemon: subprocess.Popen[bytes] | None = None
        try:
            for line in lines:
                if line in COVERED_ELSEWHERE:
                    continue
                command = line.replace(".venv/bin/driftmon", "driftmon")
                command = command.replace("redis-cli ", f"redis-cli -p {redis_server.port} ")
                if command.startswith("driftmon run"):
                    with (tmp_path / "run.log").open("wb") as log:
                        daemon = subprocess.Popen(
                            f"exec {command}",  # the shell becomes the daemon: terminate reaches it
                            shell=True,
                            cwd=tmp_path,
                            env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=log,
                        )
                    _wait_for_state(redis_server, daemon, tmp_path)
                    continue
                result = subprocess.run(
                    command,
                    shell=True,
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                _check(line, result)
        finally:
            if daemon is not None:
                daemon.terminate()
                try:
                    assert daemon.wait(30) == 0, "driftmon run did not stop cleanly on SIGTERM"
                finally:
                    if daemon.poll() is None:
                        daemon.kill()
                        daemon.wait(10)


def _wait_for_state(server: RedisServer, daemon: subprocess.Popen[bytes], tmp: Path) -> None:
    client = server.client()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert daemon.poll() is None, (tmp / "run.log").read_text()[-2000:]
            if client.exists("driftmon:{fraud}:state"):
                return
            time.sleep(0.5)
        raise AssertionError("driftmon run wrote no state within 60 s")
    finally:
        client.close()


def _check(line: str, result: subprocess.CompletedProcess[str]) -> None:
    out = result.stdout + result.stderr
    if "compare" in line and "--fail-on" in line:
        assert result.returncode == 1, f"{line}: the shifted file must fail the gate\n{out}"
        assert "amount" in result.stdout
        return
    assert result.returncode == 0, f"{line}\n{out}"
    if "SMEMBERS" in line:
        assert "fraud" in result.stdout
    if "features.amount" in line:
        assert '"psi"' in result.stdout
    if "status" in line:
        assert "fraud" in result.stdout
