"""What every benchmark module builds on: result rows, targets, run settings, timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Config:
    """How hard to measure. ``repeat`` runs per benchmark, each at least ``min_run_s`` long."""

    repeat: int = 7
    min_run_s: float = 0.2
    quick: bool = False  # smaller inputs, for smoke-testing the suite itself


@dataclass(frozen=True, slots=True)
class Target:
    """A bound a measured value should meet, in the row's unit (e.g. ``Target(">=", 100)``)."""

    op: Literal[">=", "<=", ">", "<"]
    bound: float

    def met_by(self, value: float) -> bool:
        if self.op == ">=":
            return value >= self.bound
        if self.op == "<=":
            return value <= self.bound
        if self.op == ">":
            return value > self.bound
        return value < self.bound

    def __str__(self) -> str:
        return f"{self.op} {fmt(self.bound)}"


@dataclass(frozen=True, slots=True)
class Row:
    """One reported number: the median of ``samples`` (one per run)."""

    name: str
    value: float
    unit: str
    target: Target | None = None
    low: float | None = None  # smallest and largest run, to show the noise
    high: float | None = None

    @classmethod
    def from_samples(
        cls, name: str, samples: Sequence[float], unit: str, target: Target | None = None
    ) -> Row:
        return cls(name, statistics.median(samples), unit, target, min(samples), max(samples))

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met_by(self.value)


def measure(fn: Callable[[], object], config: Config, *, warmup: int = 3) -> list[float]:
    """Seconds per call of ``fn``, one value per run.

    ``fn`` is called ``warmup`` times first (JIT compile, caches). Each run loops ``fn``
    enough times to last ``config.min_run_s``, so timer resolution does not matter.
    """
    for _ in range(warmup):
        fn()
    number = 1
    while True:  # calibrate the loop count, like timeit.autorange
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= config.min_run_s:
            break
        number = max(number * 2, int(number * config.min_run_s / max(elapsed, 1e-9) * 1.2))
    runs = [elapsed / number]
    for _ in range(config.repeat - 1):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number)
    return runs


def fmt(value: float) -> str:
    """A number with 3-4 significant digits, no exponent for everyday magnitudes."""
    if value != value:  # NaN
        return "n/a"
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:.3g}"
