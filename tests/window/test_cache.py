"""WindowCache against a simulated Redis: after every round whose reads no write raced,
the window sums equal sums computed from scratch over what Redis holds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from monitor.window.buckets import window_buckets
from monitor.window.cache import WindowCache
from monitor.window.counts import EVENTS, Layout

LAYOUT = Layout(("a", "b"), 3, ("c",), (4,))
BUCKET = 60
WINDOWS = {"2m": 2, "5m": 5, "10m": 10}  # buckets per window
LONGEST = 10 * BUCKET
T0 = 1_795_310_000.0


class FakeRedis:
    """Bucket hashes with TTLs and a versions hash, as the apply script keeps them."""

    def __init__(self) -> None:
        self.buckets: dict[int, np.ndarray] = {}
        self.versions: dict[int, bytes] = {}
        self.ids = itertools.count()

    def write(self, start: int, delta: np.ndarray) -> None:
        self.buckets[start] = self.buckets.get(start, np.zeros(LAYOUT.size, np.int64)) + delta
        self.versions[start] = b"w:%d" % next(self.ids)

    def expire(self, now: float) -> None:
        for start in [s for s in self.buckets if s + BUCKET + LONGEST < now]:
            del self.buckets[start]
            self.versions.pop(start, None)

    def read(self, start: int) -> np.ndarray:
        return self.buckets.get(start, np.zeros(LAYOUT.size, np.int64)).copy()


def _read(redis: FakeRedis, start: int, seed: int) -> np.ndarray | None:
    """A bucket as read: a missing one is None or zeros, as the reader likes."""
    return None if seed % 2 and start not in redis.buckets else redis.read(start)


def _delta(rng: np.random.Generator) -> np.ndarray:
    delta = np.zeros(LAYOUT.size, np.int64)
    hit = rng.choice(LAYOUT.size, size=int(rng.integers(1, 8)), replace=False)
    delta[hit] = rng.integers(1, 100, hit.size)
    if rng.random() < 0.7:
        delta[EVENTS] += int(rng.integers(1, 50))
    return delta


def _expected(redis: FakeRedis, starts: list[int], versioned: bool) -> dict[str, list[int]]:
    visible = {s: f for s, f in redis.buckets.items() if not versioned or s in redis.versions}
    zero = np.zeros(LAYOUT.size, np.int64)
    return {
        name: sum((visible.get(s, zero) for s in starts[len(starts) - n :]), zero).tolist()
        for name, n in WINDOWS.items()
    }


@pytest.mark.parametrize("seed", range(25))
def test_window_sums_equal_sums_from_scratch(seed: int) -> None:
    rng = np.random.default_rng(seed)
    redis = FakeRedis()
    cache = WindowCache(LAYOUT, WINDOWS)
    now = T0
    reads = 0
    for _ in range(120):
        now += float(rng.choice([0, 10, 10, 10, 45, 130, 900]))
        redis.expire(now)
        current = int(now // BUCKET) * BUCKET
        for _ in range(int(rng.integers(0, 4))):  # mostly the current bucket, some late
            late = int(rng.choice([0, 0, 0, 1, 3, 9]))
            redis.write(current - late * BUCKET, _delta(rng))
        if rng.random() < 0.03:  # Redis lost everything
            redis.buckets.clear()
            redis.versions.clear()
        legacy = rng.random() < 0.05  # no versions hash: every bucket is read
        if legacy:
            redis.buckets[current - BUCKET] = redis.read(current - BUCKET) + _delta(rng)
        starts = window_buckets(now, LONGEST, BUCKET)
        versions = None if legacy or not redis.versions else dict(redis.versions)
        stale = cache.stale(starts, versions)
        raced = rng.random() < 0.1 and stale
        if raced:  # a flush lands between reading the versions and the buckets
            redis.write(stale[-1], _delta(rng))
        cache.update(starts, versions, {s: _read(redis, s, seed) for s in stale})
        reads += len(stale)
        if raced:
            continue
        totals = {name: c.flat.tolist() for name, c in cache.totals().items()}
        assert totals == _expected(redis, starts, versions is not None)
        with_events = [s for s in starts if redis.read(s)[EVENTS] > 0]
        if versions is not None:
            with_events = [s for s in with_events if s in redis.versions]
        assert cache.last_traffic() == max(with_events, default=None)
    assert reads < 120 * len(WINDOWS) * 10 / 2  # far fewer reads than re-reading everything


def test_only_changed_buckets_are_read() -> None:
    redis = FakeRedis()
    cache = WindowCache(LAYOUT, WINDOWS)
    rng = np.random.default_rng(1)
    start = int(T0 // BUCKET) * BUCKET
    for i in range(10):
        redis.write(start - i * BUCKET, _delta(rng))
    starts = window_buckets(T0, LONGEST, BUCKET)
    first = cache.stale(starts, redis.versions)
    cache.update(starts, redis.versions, {s: redis.read(s) for s in first})
    assert first == starts
    assert cache.stale(starts, redis.versions) == []
    redis.write(start, _delta(rng))
    assert cache.stale(starts, redis.versions) == [start]
    assert cache.stale(starts, None) == starts  # no versions: nothing can be trusted


def test_windows_of_zero_buckets_stay_empty() -> None:
    cache = WindowCache(LAYOUT, {"30s": 0, "2m": 2})
    redis = FakeRedis()
    redis.write(int(T0 // BUCKET) * BUCKET, _delta(np.random.default_rng(2)))
    starts = window_buckets(T0, 2 * BUCKET, BUCKET)
    cache.update(starts, redis.versions, {s: redis.read(s) for s in starts})
    totals = cache.totals()
    assert not totals["30s"].flat.any() and totals["2m"].flat.any()


def test_counts_past_int32_stay_exact() -> None:
    cache = WindowCache(LAYOUT, {"2m": 2})
    starts = window_buckets(T0, 2 * BUCKET, BUCKET)
    big = np.zeros(LAYOUT.size, np.int64)
    big[EVENTS], big[5] = 3 * 2**40, -(2**35)
    small = np.zeros(LAYOUT.size, np.int64)
    small[EVENTS] = 7
    cache.update(starts, dict.fromkeys(starts, b"1"), {starts[0]: big, starts[1]: small})
    assert cache.totals()["2m"].flat.tolist() == (big + small).tolist()
    cache.update(starts, {starts[1]: b"1"}, {})  # the big one lost its version: gone
    assert cache.totals()["2m"].flat.tolist() == small.tolist()
