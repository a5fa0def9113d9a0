"""Data-quality ratios and the sample-size guards (SPEC §3).

Denominators (documented in the README):
- missing ratio      = missing / events          (null or absent, over all events of the window)
- out-of-range ratio = out_of_range / present    (numeric values outside the reference min/max)
- unseen ratio       = unseen / present          (categories never seen in the reference)
A ratio with a zero denominator is NaN ("no data"), never 0.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.stats import chi2

from monitor.kernels._jit import kernel

FloatArray = npt.NDArray[np.float64]


@kernel
def _ratios(
    events: FloatArray,
    missing: FloatArray,
    flagged: FloatArray,
    missing_out: FloatArray,
    flagged_out: FloatArray,
) -> None:
    for j in range(events.shape[0]):
        n = events[j]
        present = n - missing[j]
        missing_out[j] = missing[j] / n if n > 0 else math.nan
        flagged_out[j] = flagged[j] / present if present > 0 else math.nan


def quality_ratios(
    events: FloatArray, missing: FloatArray, flagged: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """(missing ratio, flagged ratio) per feature; `flagged` is out-of-range or unseen counts."""
    e = np.ascontiguousarray(events, dtype=np.float64)
    m = np.ascontiguousarray(missing, dtype=np.float64)
    f = np.ascontiguousarray(flagged, dtype=np.float64)
    if e.ndim != 1 or m.shape != e.shape or f.shape != e.shape:
        raise ValueError("events, missing and flagged must be 1-D arrays of one length")
    if np.any(m > e) or np.any(f > e - m) or np.any(m < 0) or np.any(f < 0):
        raise ValueError("need 0 <= missing <= events and 0 <= flagged <= events - missing")
    missing_out = np.empty_like(e)
    flagged_out = np.empty_like(e)
    _ratios(e, m, f, missing_out, flagged_out)
    return missing_out, flagged_out


def enough_samples(window_count: float, nbins: int, per_bin: float = 10.0) -> bool:
    """Sample-size guard: a drift verdict needs at least `per_bin`·K binned values."""
    return window_count >= per_bin * nbins


def psi_chi2_threshold(
    window_count: float,
    nbins: int,
    significance: float = 0.01,
    floor: float = 0.0,
    reference_count: float = math.inf,
) -> float:
    """PSI level that sampling noise alone exceeds with probability `significance`.

    For two samples of one distribution, PSI ≈ (1/C + 1/R)·chi2(K-1) (Yurdakul 2018), so the
    bar is chi2_{1-a, K-1}·(1/C + 1/R) + floor. SPEC §3 writes chi2/C, which is the limit
    for an infinite reference; the 1/R term matters when the reference is small.
    """
    if nbins < 2 or window_count <= 0:
        return math.inf
    scale = 1.0 / window_count + (1.0 / reference_count if reference_count > 0 else math.inf)
    return float(chi2.ppf(1.0 - significance, nbins - 1)) * scale + floor
