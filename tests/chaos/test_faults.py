"""Faults while events flow: after each, exact counts, every notification, ready again.

Each test runs one fault against its own rig (tests/chaos/rig.py) and records a row of
the chaos table. The `ci` scale (default, part of `make test`) shortens the durations;
`make chaos` runs the full ones.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.chaos.report import Row, record
from tests.chaos.rig import Rig, Scale, _wait
from tests.stream.harness import Daemon

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _running(rig: Rig, daemon: Daemon, rate: float) -> None:
    """Start traffic and wait until the daemon is ready and counting."""
    rig.start_traffic(rate)
    _wait(lambda: rig.ready(daemon) and rig.counted() > 0, 90, "the daemon counting")


@contextmanager
def _incident(rig: Rig, tail: float = 4.0) -> Iterator[None]:
    """Drift the canary during the block and `tail` seconds after it, so that an alert
    fires once the daemon evaluates again, then resolves: notifications cross the fault."""
    assert rig.traffic is not None
    traffic = rig.traffic
    traffic.drift = True
    try:
        yield
    finally:
        timer = threading.Timer(tail, lambda: setattr(traffic, "drift", False))
        timer.daemon = True
        timer.start()


def _finish(rig: Rig, daemon: Daemon, fault: str, recovery: float, notes: str = "") -> Row:
    """Stop traffic and check counts, notifications, Alertmanager and readiness."""
    rig.wait_canary_resolved(90)
    assert rig.traffic is not None
    acked = rig.traffic.finish()
    produced, in_topic, counted = rig.check_counts(acked)
    expected, got = rig.wait_notifications(180)
    rig.wait_alertmanager_converged(daemon, 60)
    assert rig.ready(daemon), daemon.log_text()[-3000:]
    assert daemon.alive()
    row = Row(fault, produced, counted, expected, got, recovery, notes)
    record(row)
    assert produced == in_topic == counted
    assert expected == got and expected >= 2  # the canary fired and resolved at least
    return row


def test_daemon_sigkilled_five_times_mid_stream(tmp_path: Path, prefix: str, scale: Scale) -> None:
    rng = random.Random(8)
    with Rig(tmp_path, prefix) as rig:
        daemon = rig.start_daemon()
        _running(rig, daemon, scale.rate)
        assert rig.traffic is not None
        with _incident(rig):
            for _ in range(scale.kills):
                # kill mid-stream: only once this incarnation has counted something
                before = rig.counted()
                _wait(lambda b=before: rig.counted() > b, 60, "progress before the kill")  # type: ignore[misc]
                time.sleep(rng.uniform(*scale.kill_gap))
                daemon.kill()
                daemon.start()
        acked_at_end = rig.traffic.acked
        recovery = rig.wait_recovered(daemon, acked_at_end, 120)
        _finish(rig, daemon, f"daemon SIGKILL x{scale.kills}", recovery)
