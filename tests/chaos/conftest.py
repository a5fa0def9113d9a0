"""Fixtures of the chaos suite, and the table printed at the end of the run.

`CHAOS_SCALE=full` (what `make chaos` sets) runs every fault for its full duration
(Redis paused 30 s, broker down 30 s, sinks down 5 min) plus the 10-minute soak; the
default `ci` scale runs the same scenarios with short durations inside `make test`.
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.chaos.report import ROWS, table
from tests.chaos.rig import Scale


@pytest.fixture(scope="session")
def scale() -> Scale:
    return Scale.named(os.environ.get("CHAOS_SCALE", "ci"))


@pytest.fixture
def prefix() -> str:
    return f"chaos{uuid.uuid4().hex[:8]}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    scale = os.environ.get("CHAOS_SCALE", "ci")
    terminalreporter.section(f"chaos results (scale {scale})")
    terminalreporter.write_line(table(ROWS))
