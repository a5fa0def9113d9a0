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
stored sparse (non-zero slots only, int32 where they fit: a latency histogram is mostly
zeros), ~5 kB per bucket of 50 features: ~30 MB for 100 models' hour of minute buckets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.kernels._jit import kernel
from monitor.window.counts import EVENTS, Counts, IntArray, Layout


@dataclass(frozen=True, slots=True)
class _Bucket:
    """A bucket's non-zero counts, small: int32 wherever they fit (they nearly always do)."""

    slots: npt.NDArray[np.int32]
    values: npt.NDArray[np.int32] | IntArray
    events: int

    @classmethod
    def of(cls, flat: IntArray, slots: npt.NDArray[np.intp]) -> _Bucket:
        values = flat[slots]
        if _INT32.min <= values.min() and values.max() <= _INT32.max:
            return cls(slots.astype(np.int32), values.astype(np.int32), int(flat[EVENTS]))
        return cls(slots.astype(np.int32), values, int(flat[EVENTS]))


_INT32 = np.iinfo(np.int32)


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
        self._versions: dict[int, bytes | None] = {}  # of every bucket read, empty or not
        self._starts: list[int] = []
        self._sums = {name: np.zeros(layout.size, dtype=np.int64) for name in windows}
        self._totals = {
            name: Counts(layout, _read_only(total)) for name, total in self._sums.items()
        }
        self._last_traffic: int | None = None  # of `_buckets`, kept by `update`
        self._generation = 0

    @property
    def generation(self) -> int:
        """Changes whenever `totals` or `last_traffic` may have: an evaluation of the same
        generation is still the evaluation of these counts."""
        return self._generation

    def stale(self, starts: Sequence[int], versions: Mapping[int, bytes] | None) -> list[int]:
        """The buckets of `starts` (the longest window, oldest first) that must be read."""
        if versions is None:
            return list(starts)
        window = set(starts)
        changed = versions.items() - self._versions.items()
        return sorted(start for start, _ in changed if start in window)

    def update(
        self,
        starts: Sequence[int],
        versions: Mapping[int, bytes] | None,
        fetched: Mapping[int, IntArray | None],
    ) -> None:
        """Move to the window `starts`, with the flat counts `fetched` of the `stale` ones
        (None: the bucket turned out to be empty or missing)."""
        buckets, known = self._buckets, self._versions
        window = set(starts)
        gone = [s for s in known if s not in window or (versions is not None and s not in versions)]
        changed: dict[int, _Bucket | None] = {}  # start -> its bucket before
        for start in gone:
            del known[start]
            changed[start] = buckets.pop(start, None)
        for start, flat in fetched.items():
            before = buckets.get(start)
            if start not in changed:
                changed[start] = before
            known[start] = None if versions is None else versions.get(start)
            slots = np.flatnonzero(flat) if flat is not None else None
            if slots is None or not slots.size or flat is None:
                if before is not None:
                    del buckets[start]  # empty: nothing to add up
                continue
            buckets[start] = _Bucket.of(flat, slots)
        # Empty before and after (an idle model's buckets, read every round): no change.
        changed = {s: b for s, b in changed.items() if b is not None or s in buckets}
        self._add_changes(starts, changed)
        if changed or list(starts) != self._starts:
            self._generation += 1
        self._starts = list(starts)
        if changed:
            with_events = [start for start, b in buckets.items() if b.events > 0]
            self._last_traffic = max(with_events, default=None)

    def _add_changes(self, starts: Sequence[int], changed: Mapping[int, _Bucket | None]) -> None:
        """Bring each window's sum from the old `_starts` to `starts`: `changed` holds the
        buckets before of those that changed, `_buckets` every bucket now."""
        buckets = self._buckets
        for name, length in self._windows.items():
            old_lo, new_lo = _oldest(self._starts, length), _oldest(starts, length)
            lo, hi = sorted((old_lo, new_lo))
            moved = {s for s in buckets.keys() | changed.keys() if lo <= s < hi} if lo != hi else ()
            total = self._sums[name]
            for start in changed.keys() | moved:
                before = changed[start] if start in changed else buckets.get(start)
                after = buckets.get(start)
                before = before if start >= old_lo else None
                after = after if start >= new_lo else None
                if before is after:
                    continue
                if before is not None:
                    _add_sparse(total, before.slots, before.values, -1)
                if after is not None:
                    _add_sparse(total, after.slots, after.values, 1)

    def totals(self) -> dict[str, Counts]:
        """Each window's summed counts: read-only views, which the next `update` changes
        (copy `flat` to keep them). Views, because evaluating 100 models reads 200 sums
        of ~2,000 slots every round, and builds nothing else from them."""
        return dict(self._totals)

    def last_traffic(self) -> int | None:
        """Start of the newest bucket holding events, None if none does."""
        return self._last_traffic


@kernel
def _add_sparse(
    total: IntArray,
    slots: npt.NDArray[np.int32],
    values: npt.NDArray[np.int32] | IntArray,
    sign: int,
) -> None:
    """total[slots] += sign * values. One call, not numpy fancy indexing (which converts
    the int32 slots to intp first): 4 of these per model per round."""
    for i in range(slots.shape[0]):
        total[slots[i]] += sign * np.int64(values[i])


def _read_only(array: IntArray) -> IntArray:
    view = array.view()
    view.flags.writeable = False
    return view


def _oldest(starts: Sequence[int], length: int) -> float:
    """The oldest start a window of `length` newest buckets holds (inf: holds none)."""
    if length <= 0 or not starts:
        return math.inf
    return starts[max(0, len(starts) - length)]
