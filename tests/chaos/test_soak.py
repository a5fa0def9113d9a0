"""Soak: steady traffic for `Scale.soak` seconds (10 min in `make chaos`); the daemon's
memory (RSS) and flush latency must stay flat, and every event is counted exactly.
Only at the full scale: `make test` skips it."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from tests.chaos.report import Row, record
from tests.chaos.rig import Rig, Scale, _wait
from tests.stream.harness import Daemon

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SAMPLE_S = 10.0
WARMUP_S = 60.0


def _rss_mb(daemon: Daemon) -> float:
    assert daemon.proc is not None
    with open(f"/proc/{daemon.proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _flush(daemon: Daemon) -> tuple[float, float]:
    return (
        daemon.metric("driftmon_flush_duration_seconds_sum"),
        daemon.metric("driftmon_flush_duration_seconds_count"),
    )


def test_soak_memory_and_flush_latency_stay_flat(tmp_path: Path, prefix: str, scale: Scale) -> None:
    if not scale.soak:
        pytest.skip("the soak runs at the full scale only (make chaos)")
    with Rig(tmp_path, prefix) as rig:
        daemon = rig.start_daemon()
        rig.start_traffic(scale.rate)
        _wait(lambda: rig.ready(daemon) and rig.counted() > 0, 90, "the daemon counting")
        time.sleep(WARMUP_S)
        rss: list[float] = []
        flush_ms: list[float] = []
        last = _flush(daemon)
        started = time.monotonic()
        while time.monotonic() - started < scale.soak:
            time.sleep(SAMPLE_S)
            rss.append(_rss_mb(daemon))
            now = _flush(daemon)
            if now[1] > last[1]:
                flush_ms.append(1000 * (now[0] - last[0]) / (now[1] - last[1]))
            last = now
        assert rig.traffic is not None
        acked = rig.traffic.finish()
        produced, _, counted = rig.check_counts(acked)
        assert daemon.alive() and rig.ready(daemon)
        n = max(3, len(rss) // 5)  # first and last fifth of the samples
        rss_first, rss_last = statistics.median(rss[:n]), statistics.median(rss[-n:])
        flush_first = statistics.median(flush_ms[:n])
        flush_last = statistics.median(flush_ms[-n:])
        record(
            Row(
                f"soak {scale.soak / 60:.0f} min at {scale.rate:.0f} events/s",
                produced,
                counted,
                0,
                0,
                None,
                f"RSS MB {rss_first:.0f}->{rss_last:.0f} (max {max(rss):.0f}); "
                f"mean flush ms {flush_first:.1f}->{flush_last:.1f} "
                f"(max {max(flush_ms):.1f})",
            )
        )
        assert produced == counted
        assert rss_last <= rss_first * 1.15 + 10, rss
        assert flush_last <= flush_first * 2 + 5, flush_ms
