"""A model's parsed buckets and window sums, kept between evaluation rounds (pure).

Each round the evaluator reads the model's bucket versions (`monitor.window.store`:
start -> id of the last flush that changed the bucket), asks `stale` which buckets of
the longest window must be read, reads and parses only those, and hands them to
`update`. Closed buckets are read once; in steady state only the current bucket is.

- A bucket whose version matches the cached one is not read again.
- A bucket without a version holds nothing (never written, or expired).
- No versions hash at all (a model without traffic, data written before versions
  existed, or Redis lost everything): every bucket is read, every round.
- A version read before the bucket's counts may be older than the counts: the cache
  then holds newer counts under the older id, and re-reads them next round. Never
  older counts under a newer id, since versions are read first.

Window sums are kept up to date by adding the counts of buckets that changed or entered
a window and subtracting those that changed or left it (exact: integers). Buckets are
stored sparse (non-zero slots only): a latency histogram is mostly zeros.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.window.counts import EVENTS, Counts, IntArray, Layout


@dataclass(frozen=True, slots=True)
class _Bucket:
    version: bytes | None
    slots: npt.NDArray[np.intp]
    values: IntArray

    @property
    def events(self) -> int:
        hit = np.flatnonzero(self.slots == EVENTS)
        return int(self.values[hit[0]]) if hit.size else 0


class WindowCache:
    """Buckets of one model's longest window and the sum of each window.

    `windows` maps a window name to how many of the newest buckets it sums (a window of
    W seconds: W // bucket_seconds, as `monitor.evaluate.evaluate_model` counts them).
    """

    def __init__(self, layout: Layout, windows: Mapping[str, int]) -> None:
        if min(windows.values(), default=0) < 0:
            raise ValueError("a window cannot hold a negative number of buckets")
        self._layout = layout
        self._windows = dict(windows)
        self._buckets: dict[int, _Bucket] = {}
        self._starts: list[int] = []
        self._sums = {name: np.zeros(layout.size, dtype=np.int64) for name in windows}

    def stale(self, starts: Sequence[int], versions: Mapping[int, bytes] | None) -> list[int]:
        """The buckets of `starts` (the longest window, oldest first) that must be read."""
        if versions is None:
            return list(starts)
        out = []
        for start in starts:
            version = versions.get(start)
            cached = self._buckets.get(start)
            if version is not None and (cached is None or cached.version != version):
                out.append(start)
        return out

    def update(
        self,
        starts: Sequence[int],
        versions: Mapping[int, bytes] | None,
        fetched: Mapping[int, IntArray],
    ) -> None:
        """Move to the window `starts`, with the flat counts `fetched` of the `stale` ones."""
        buckets: dict[int, _Bucket] = {}
        for start in starts:
            if start in fetched:
                flat = fetched[start]
                slots = np.flatnonzero(flat)
                version = None if versions is None else versions.get(start)
                buckets[start] = _Bucket(version, slots, flat[slots])
            elif versions is not None and start in versions and start in self._buckets:
                buckets[start] = self._buckets[start]
        changed = set(fetched) | (self._buckets.keys() - buckets.keys())
        for name, length in self._windows.items():
            before = set(self._starts[max(0, len(self._starts) - length) :])
            after = set(starts[max(0, len(starts) - length) :])
            total = self._sums[name]
            for start in (before ^ after) | (changed & (before | after)):
                old = self._buckets.get(start) if start in before else None
                new = buckets.get(start) if start in after else None
                if old is new:
                    continue
                if old is not None:
                    np.subtract.at(total, old.slots, old.values)
                if new is not None:
                    np.add.at(total, new.slots, new.values)
        self._buckets = buckets
        self._starts = list(starts)

    def totals(self) -> dict[str, Counts]:
        """Each window's summed counts (copies)."""
        return {name: Counts(self._layout, total.copy()) for name, total in self._sums.items()}

    def last_traffic(self) -> int | None:
        """Start of the newest bucket holding events, None if none does."""
        with_events = [start for start, b in self._buckets.items() if b.events > 0]
        return max(with_events, default=None)
