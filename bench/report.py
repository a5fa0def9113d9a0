"""The machine a run happened on, and the Markdown report written to BENCHMARKS.md."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench.core import Config, Row, fmt

PACKAGES = ("numpy", "numba", "scipy", "confluent-kafka", "redis")


@dataclass(frozen=True, slots=True)
class Section:
    """One benchmark module's results."""

    module: str
    title: str
    notes: str
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None  # the module raised: no rows, and this says why


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def speed_probe() -> str:
    """How fast one core runs plain Python right now: a fixed loop, best of 3 (seconds).

    The hosts of this machine kind differ ~2.5x in speed, and one host's speed moves
    with its neighbours' load: a slower evaluation round on a slower probe is the host,
    not the code. Taken at the start and at the end of a run."""
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return f"{best:.2f} s for 10 M additions in a Python loop (best of 3; lower is faster)"


def machine() -> dict[str, str]:
    """What the numbers depend on, in the order the report lists them."""
    info = {
        "date (UTC)": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "CPU": cpu_model(),
        "nproc": str(os.cpu_count()),
        "usable CPUs": str(len(os.sched_getaffinity(0))),
        "load average (1/5/15 min) at start": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "OS": platform.platform(),
        "python": sys.version.split()[0],
        "single-core speed at start": speed_probe(),
    }
    for name in PACKAGES:
        try:
            info[name] = version(name)
        except PackageNotFoundError:
            info[name] = "not installed"
    return info


def render(sections: Sequence[Section], info: dict[str, str], command: str, config: Config) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` (`make bench`); rerun it rather than editing this file.",
        f"Each value is the median of {config.repeat} runs, each run at least "
        f"{config.min_run_s:g} s long after a warm-up (JIT compile included in the warm-up); "
        "the range column shows the slowest and fastest run. The machine is shared and "
        "noisy: compare numbers measured in the same run, not across runs.",
        "",
        "## Machine",
        "",
        *(f"- {key}: {value}" for key, value in info.items()),
        f"- command: `{command}`",
        "",
    ]
    for section in sections:
        lines += render_section(section)
    return "\n".join(lines).rstrip() + "\n"


def render_section(section: Section, remeasured: str | None = None) -> list[str]:
    """One section's lines; `remeasured` says when and how, if not with the rest."""
    lines = [f"## {section.title}", ""]
    if remeasured:
        lines += [f"_{remeasured}_", ""]
    if section.notes:
        lines += [section.notes, ""]
    lines += [
        "| benchmark | median | unit | range (min-max) | target | met |",
        "|---|---:|---|---|---|---|",
    ]
    lines += [_row(row) for row in section.rows]
    missed = [row.name for row in section.rows if row.met is False]
    if section.error:
        verdict = f"**FAILED**: {section.error}"
    else:
        verdict = f"Targets missed: {', '.join(missed)}." if missed else "All targets met."
    lines += [
        "",
        verdict,
        f"(section took {section.seconds:.0f} s)",
        "",
    ]
    return lines


def replace_sections(report: str, sections: Sequence[Section], remeasured: str) -> str:
    """`report` with each of `sections` put in place of the section of the same title."""
    for section in sections:
        head = f"## {section.title}\n"
        start = report.find(head)
        if start < 0:
            raise ValueError(f"no section {section.title!r} in the report to update")
        end = report.find("\n## ", start + len(head))
        end = len(report) if end < 0 else end + 1
        body = "\n".join(render_section(section, remeasured)) + "\n"
        report = report[:start] + body + report[end:]
    return report.rstrip() + "\n"


def _row(row: Row) -> str:
    spread = "" if row.low is None or row.high is None else f"{fmt(row.low)} - {fmt(row.high)}"
    target = "" if row.target is None else str(row.target)
    met = {None: "", True: "yes", False: "**NO**"}[row.met]
    return f"| {row.name} | {fmt(row.value)} | {row.unit} | {spread} | {target} | {met} |"
