"""A mergeable log-bucketed latency histogram (DDSketch-style, SPEC §3).

Relative accuracy a = 1%: gamma = (1 + a) / (1 - a). A value x (ms) falls in key
k = ceil(log_gamma(x)), the bucket (gamma^(k-1), gamma^k], whose representative value
2·gamma^k / (gamma + 1) is within a of every x in it. Keys are laid out densely from
MIN_MS to MAX_MS, so a histogram is a fixed-length count vector: histograms from any
replica and any time bucket merge by addition. Index 0 holds values below MIN_MS
(reported as 0); values above MAX_MS land in the last bucket (clamped).
Reference: Masson, Rim, Lee, "DDSketch" (VLDB 2019).

Quantiles use the "lower" rank definition: the value at sorted position
floor(q·(n-1)), as ``numpy.quantile(x, q, method="lower")``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from monitor.kernels._jit import kernel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

RELATIVE_ACCURACY = 0.01
GAMMA = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
LOG_GAMMA = math.log(GAMMA)
MIN_MS = 1e-3  # 1 µs
MAX_MS = 1e7  # ~2.8 hours
_KEY_MIN = math.ceil(math.log(MIN_MS) / LOG_GAMMA)
_KEY_MAX = math.ceil(math.log(MAX_MS) / LOG_GAMMA)
N_BUCKETS = _KEY_MAX - _KEY_MIN + 2  # + the below-MIN_MS bucket at index 0


@kernel
def _insert(
    values: FloatArray,
    counts: IntArray,
    log_gamma: float,
    key_min: int,
    n_buckets: int,
    min_ms: float,
) -> int:
    added = 0
    for i in range(values.shape[0]):
        x = values[i]
        if not x >= 0.0:  # NaN (missing) or negative: not a latency
            continue
        if x < min_ms:
            idx = 0
        else:
            idx = 1 + math.ceil(math.log(x) / log_gamma) - key_min
            idx = min(max(idx, 1), n_buckets - 1)
        counts[idx] += 1
        added += 1
    return added


@kernel
def _summaries(
    counts: IntArray,
    qs: FloatArray,
    out: FloatArray,
    gamma: float,
    key_min: int,
    values: FloatArray,
) -> int:
    """Per row of `counts`: the quantiles `qs`, the count and the sum, into that row of
    `out`. Returns -1, or the first row holding a negative count (`out` then unfinished)."""
    nq = qs.shape[0]
    for r in range(counts.shape[0]):
        total = 0
        weighted = 0.0
        for i in range(counts.shape[1]):
            c = counts[r, i]
            if c < 0:
                return r
            total += c
            weighted += c * values[i]
        out[r, nq] = total
        out[r, nq + 1] = weighted
        for j in range(nq):
            if total == 0:
                out[r, j] = math.nan
                continue
            rank = math.floor(qs[j] * (total - 1))
            cum = 0
            for i in range(counts.shape[1]):
                cum += counts[r, i]
                if cum > rank:
                    if i == 0:
                        out[r, j] = 0.0
                    else:
                        out[r, j] = 2.0 * gamma ** (i - 1 + key_min) / (gamma + 1.0)
                    break
    return -1


def new_histogram() -> IntArray:
    """An empty latency histogram."""
    return np.zeros(N_BUCKETS, dtype=np.int64)


def insert_latencies(counts: IntArray, values_ms: FloatArray) -> int:
    """Add latencies (ms) to `counts` in place; NaN and negative values are skipped.

    Returns how many values were added.
    """
    if counts.shape != (N_BUCKETS,) or counts.dtype != np.int64:
        raise ValueError(f"counts must be an int64 array of length {N_BUCKETS}")
    values = np.ascontiguousarray(values_ms, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError("latencies must be 1-D")
    return int(_insert(values, counts, LOG_GAMMA, _KEY_MIN, N_BUCKETS, MIN_MS))


def latency_quantiles(counts: IntArray, qs: FloatArray | tuple[float, ...]) -> FloatArray:
    """Quantiles (ms) read from a histogram; NaN for an empty one."""
    c = np.ascontiguousarray(counts, dtype=np.int64)
    if c.shape != (N_BUCKETS,):
        raise ValueError(f"counts must be {N_BUCKETS} non-negative integers")
    return latency_summaries(c[np.newaxis], qs)[0, :-2]


def latency_summaries(counts: IntArray, qs: FloatArray | tuple[float, ...]) -> FloatArray:
    """For each row of an (n x N_BUCKETS) stack of histograms, in one pass: the quantiles
    `qs` (ms; NaN for an empty histogram), the number of latencies, and their sum (ms,
    as `latency_sum`). An (n x (len(qs) + 2)) array.

    The evaluator reads every window of every model at once: one kernel call instead of
    two per window.
    """
    c = np.ascontiguousarray(counts, dtype=np.int64)
    q = np.ascontiguousarray(qs, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != N_BUCKETS:
        raise ValueError(f"counts must be rows of {N_BUCKETS} non-negative integers")
    # Written so NaN fails too: a NaN rank would silently read bucket 0.
    if q.ndim != 1 or not np.all((q >= 0) & (q <= 1)):
        raise ValueError("quantiles must be in [0, 1]")
    out = np.empty((c.shape[0], q.size + 2))
    if _summaries(c, q, out, GAMMA, _KEY_MIN, _BUCKET_VALUES) >= 0:
        raise ValueError(f"counts must be {N_BUCKETS} non-negative integers")
    return out


def bucket_value(index: int) -> float:
    """The representative latency (ms) of bucket `index`."""
    if not 0 <= index < N_BUCKETS:
        raise ValueError(f"bucket index out of range: {index}")
    return 0.0 if index == 0 else 2.0 * GAMMA ** (index - 1 + _KEY_MIN) / (GAMMA + 1.0)


def latency_sum(counts: IntArray) -> float:
    """Approximate sum (ms) of the latencies in a histogram: counts · representative values.

    Within the sketch's relative accuracy, like every value read from it.
    """
    c = np.ascontiguousarray(counts, dtype=np.int64)
    if c.shape != (N_BUCKETS,):
        raise ValueError(f"counts must have length {N_BUCKETS}")
    return float(latency_summaries(c[np.newaxis], ())[0, 1])


_BUCKET_VALUES = np.array([bucket_value(i) for i in range(N_BUCKETS)])
