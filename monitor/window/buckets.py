"""Bucket and window arithmetic (pure). SPEC §1, §4.

Time is cut into buckets of `bucket_seconds`, aligned to the epoch; a window of length W
is the W / bucket_seconds most recent buckets, the current (partial) one included.
An event is *late* when its time is before the start of the oldest bucket of the longest
window, minus a grace period: it could never be read again, so it is counted and dropped.
Events from the future (producer clock ahead by more than the grace) are counted in the
current bucket rather than in a bucket no window reads yet.
A bucket's key expires once no window can read it any more: end of bucket + longest
window + grace.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def bucket_start(t: float, bucket_seconds: int) -> int:
    """Start (epoch s) of the bucket holding time `t`."""
    return int(t // bucket_seconds) * bucket_seconds


def bucket_starts(times: npt.NDArray[np.float64], bucket_seconds: int) -> npt.NDArray[np.int64]:
    """Vectorised `bucket_start`."""
    return (np.floor(times / bucket_seconds) * bucket_seconds).astype(np.int64)


def late_cutoff(now: float, longest_window: int, bucket_seconds: int, grace: int) -> float:
    """Events strictly before this time are late."""
    oldest_bucket = bucket_start(now, bucket_seconds) - longest_window + bucket_seconds
    return float(oldest_bucket - grace)


def window_buckets(now: float, window_seconds: int, bucket_seconds: int) -> list[int]:
    """Bucket starts making up the window that ends now (oldest first)."""
    current = bucket_start(now, bucket_seconds)
    n = max(1, -(-window_seconds // bucket_seconds))
    return [current - (n - 1 - i) * bucket_seconds for i in range(n)]


def expire_at(start: int, bucket_seconds: int, longest_window: int, grace: int) -> int:
    """Epoch second at which the bucket starting at `start` can be deleted."""
    return start + bucket_seconds + longest_window + grace
