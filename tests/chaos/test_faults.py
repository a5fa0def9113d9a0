"""Faults while events flow: after each, exact counts, every notification, ready again.

Each test runs one fault against its own rig (tests/chaos/rig.py) and records a row of
the chaos table. The `ci` scale (default, part of `make test`) shortens the durations;
`make chaos` runs the full ones.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def _finish(
    rig: Rig,
    daemon: Daemon,
    fault: str,
    recovery: float,
    notes: str = "",
    since: dict[int, int] | None = None,
) -> Row:
    """Stop traffic and check counts, notifications, Alertmanager and readiness."""
    rig.wait_canary_resolved(90)
    assert rig.traffic is not None
    acked = rig.traffic.finish()
    produced, in_topic, counted = rig.check_counts(acked, since)
    expected, got = rig.wait_notifications(180)
    rig.wait_alertmanager_converged(daemon, 60)
    assert rig.ready(daemon), daemon.log_text()[-3000:]
    assert daemon.alive()
    if since is not None:
        notes = f"{notes}; {in_topic} at or after those offsets".lstrip("; ")
    row = Row(fault, produced, counted, expected, got, recovery, notes)
    record(row)
    assert in_topic == counted
    assert since is not None or produced == in_topic
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


def test_redis_paused_mid_stream(tmp_path: Path, prefix: str, scale: Scale) -> None:
    with Rig(tmp_path, prefix) as rig:
        daemon = rig.start_daemon()
        _running(rig, daemon, scale.rate)
        assert rig.traffic is not None
        with _incident(rig):
            rig.redis.pause()
            paused_at = time.monotonic()
            try:
                _wait(lambda: not rig.ready(daemon), 10, "readiness false while Redis hangs")
                time.sleep(max(0.0, scale.redis_pause - (time.monotonic() - paused_at)))
                assert daemon.alive()
                acked = rig.traffic.acked
            finally:
                rig.redis.resume()
        recovery = rig.wait_recovered(daemon, acked, 120)
        _finish(rig, daemon, f"Redis paused (SIGSTOP) {scale.redis_pause:.0f} s", recovery)


def test_broker_stopped_and_restarted(tmp_path: Path, prefix: str, scale: Scale) -> None:
    with Rig(tmp_path, prefix, durable_broker=True) as rig:
        daemon = rig.start_daemon()
        _running(rig, daemon, scale.rate)
        assert rig.traffic is not None
        with _incident(rig):
            acked = rig.traffic.acked
            rig.broker.stop()  # SIGTERM; tansu keeps its log in S3
            stopped_at = time.monotonic()
            _wait(lambda: not rig.ready(daemon), scale.broker_down + 30, "not ready")
            time.sleep(max(0.0, scale.broker_down - (time.monotonic() - stopped_at)))
            assert daemon.alive()
            rig.broker.restart()
        recovery = rig.wait_recovered(daemon, acked, 120)
        _finish(
            rig,
            daemon,
            f"broker stopped {scale.broker_down:.0f} s, restarted",
            recovery,
            "tansu, S3 storage (moto)",
        )


def test_alert_sinks_down(tmp_path: Path, prefix: str, scale: Scale) -> None:
    with Rig(tmp_path, prefix) as rig:
        daemon = rig.start_daemon()
        _running(rig, daemon, scale.rate)
        # alerts of the steady traffic reach both sinks first
        _wait(lambda: len(rig.watcher.snapshot()) > 0, 60, "first alerts")
        rig.wait_notifications(60)
        before = len(rig.receiver.accepted())
        rig.receiver.stop()
        rig.alertmanager.kill()
        down_at = time.monotonic()
        with _incident(rig, tail=3.0):
            pass
        # the canary fires and resolves while nothing can be delivered
        rig.wait_canary_resolved(90)
        time.sleep(max(0.0, scale.sinks_down - (time.monotonic() - down_at)))
        assert len(rig.receiver.accepted()) == before
        rig.alertmanager.restart()
        rig.receiver.start()
        back_at = time.monotonic()
        rig.wait_notifications(180)
        recovery = time.monotonic() - back_at
        down = back_at - down_at
        _finish(rig, daemon, f"webhook + Alertmanager down {down:.0f} s", recovery)


def _log_event(daemon: Daemon, event: str) -> dict[str, Any] | None:
    for line in daemon.log_text().splitlines():
        if line.startswith("{") and f'"{event}"' in line:
            entry: dict[str, Any] = json.loads(line)
            if entry.get("event") == event:
                return entry
    return None


def test_redis_restarted_without_its_data(tmp_path: Path, prefix: str, scale: Scale) -> None:
    """Redis comes back empty: the daemon says so in one warning naming the offsets it
    re-reads from, re-publishes the baselines, and from those offsets on counts exactly."""
    with Rig(tmp_path, prefix) as rig:
        daemon = rig.start_daemon()
        _running(rig, daemon, scale.rate)
        assert rig.traffic is not None
        time.sleep(3)
        rig.wait_notifications(60)  # nothing in flight in the outbox when its data goes
        with _incident(rig):
            rig.redis.restart()  # same port, no RDB/AOF: every key is gone
            wiped_at = time.monotonic()
        _wait(lambda: _log_event(daemon, "redis_state_lost"), 60, "the state-lost warning")
        models = f"{prefix}:models".encode()
        _wait(
            lambda: rig.ready(daemon) and len(rig.client.smembers(models)) == 3,
            60,
            "ready, baselines re-published",
        )
        recovery = time.monotonic() - wiped_at
        warning = _log_event(daemon, "redis_state_lost")
        assert warning is not None and warning["level"] == "warning"
        since = {int(k.rpartition(":")[2]): int(v) for k, v in warning["resumed_from"].items()}
        assert since, warning
        row = _finish(
            rig,
            daemon,
            "Redis restarted, all data lost",
            recovery,
            "Redis lost all: counted from the offsets the warning names",
            since=since,
        )
        assert row.counted < rig.traffic.acked  # events before those offsets are gone
