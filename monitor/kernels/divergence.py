"""Divergence kernels over count arrays: PSI and Jensen-Shannon (SPEC §3).

r_i reference counts (total R), c_i window counts (total C), K bins.

PSI (natural log), smoothed with a pseudocount alpha:
    p_i = (r_i + alpha) / (R + K·alpha),  q_i = (c_i + alpha) / (C + K·alpha)
    PSI = Σ (q_i - p_i) · ln(q_i / p_i)
With alpha = 0 the proportions are unsmoothed and an empty bin's proportion is replaced
by epsilon = 1e-4, as Evidently does. PSI is NaN when R or C is 0. A pseudocount so
small that a proportion underflows to 0 (or q/p overflows) takes ln q - ln p from the
logs of the counts instead, so any alpha > 0 gives a finite PSI.
Reference: Yurdakul, "Statistical properties of population stability index" (2018).

Jensen-Shannon (base 2, unsmoothed, 0·log 0 = 0):
    p̂ = r/R, q̂ = c/C, m = (p̂ + q̂)/2, JSD = ½ KL(p̂‖m) + ½ KL(q̂‖m) ∈ [0, 1]
    js_distance = sqrt(JSD) = scipy.spatial.distance.jensenshannon(p, q, base=2)
Reference: Lin, "Divergence measures based on the Shannon entropy" (1991).

Both are invariant to scaling either count vector by a positive factor (for PSI only
when alpha = 0; with alpha > 0 the pseudocount is in count units by design).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from monitor.kernels._jit import kernel

FloatArray = npt.NDArray[np.float64]

EPSILON = 1e-4  # unsmoothed PSI: empty-bin proportion, as in Evidently
_TINY = 1e-300  # smoothed proportions at least this large neither underflow nor overflow q/p


@kernel
def _psi(ref: FloatArray, cur: FloatArray, k: int, alpha: float) -> float:
    R = 0.0
    C = 0.0
    for i in range(k):
        R += ref[i]
        C += cur[i]
    if R <= 0.0 or C <= 0.0:
        return math.nan
    # A pseudocount so small that a proportion may underflow (or q/p overflow): ln q - ln p
    # from the logs of the counts. Checked once, so the common loop stays as it was.
    tiny = alpha > 0.0 and min(alpha / (R + k * alpha), alpha / (C + k * alpha)) < _TINY
    total = 0.0
    for i in range(k):
        if alpha > 0.0:
            p = (ref[i] + alpha) / (R + k * alpha)
            q = (cur[i] + alpha) / (C + k * alpha)
        else:
            p = ref[i] / R
            q = cur[i] / C
            if p == 0.0:
                p = EPSILON
            if q == 0.0:
                q = EPSILON
        if tiny:
            log_q = math.log(cur[i] + alpha) - math.log(C + k * alpha)
            log_p = math.log(ref[i] + alpha) - math.log(R + k * alpha)
            total += (q - p) * (log_q - log_p)
        else:
            total += (q - p) * math.log(q / p)
    return total


@kernel
def _js_divergence(ref: FloatArray, cur: FloatArray, k: int) -> float:
    R = 0.0
    C = 0.0
    for i in range(k):
        R += ref[i]
        C += cur[i]
    if R <= 0.0 or C <= 0.0:
        return math.nan
    total = 0.0
    for i in range(k):
        p = ref[i] / R
        q = cur[i] / C
        m = 0.5 * (p + q)
        if p > 0.0:
            total += 0.5 * p * math.log2(p / m)
        if q > 0.0:
            total += 0.5 * q * math.log2(q / m)
    return min(max(total, 0.0), 1.0)


@kernel
def _rows(
    ref: FloatArray,
    cur: FloatArray,
    nbins: npt.NDArray[np.int64],
    alpha: float,
    psi_out: FloatArray,
    jsd_out: FloatArray,
) -> None:
    for j in range(ref.shape[0]):
        psi_out[j] = _psi(ref[j], cur[j], nbins[j], alpha)
        jsd_out[j] = _js_divergence(ref[j], cur[j], nbins[j])


def _check_pair(ref: FloatArray, cur: FloatArray) -> tuple[FloatArray, FloatArray]:
    r = np.ascontiguousarray(ref, dtype=np.float64)
    c = np.ascontiguousarray(cur, dtype=np.float64)
    if r.shape != c.shape or r.ndim != 1 or r.size == 0:
        raise ValueError(
            f"reference and current counts must be equal-length 1-D: {r.shape}, {c.shape}"
        )
    if np.any(r < 0) or np.any(c < 0) or not (np.all(np.isfinite(r)) and np.all(np.isfinite(c))):
        raise ValueError("counts must be finite and non-negative")
    return r, c


def psi(ref: FloatArray, cur: FloatArray, alpha: float = 0.5) -> float:
    """Population stability index of `cur` against `ref` (see module docstring)."""
    if not alpha >= 0:
        raise ValueError("pseudocount alpha must be >= 0")
    r, c = _check_pair(ref, cur)
    return float(_psi(r, c, r.size, float(alpha)))


def js_divergence(ref: FloatArray, cur: FloatArray) -> float:
    """Jensen-Shannon divergence, base 2, in [0, 1]."""
    r, c = _check_pair(ref, cur)
    return float(_js_divergence(r, c, r.size))


def js_distance(ref: FloatArray, cur: FloatArray) -> float:
    """sqrt of the Jensen-Shannon divergence (scipy's `jensenshannon(p, q, base=2)`)."""
    return math.sqrt(js_divergence(ref, cur))


def divergence_rows(
    ref: FloatArray, cur: FloatArray, nbins: npt.NDArray[np.int64], alpha: float = 0.5
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """PSI, JS divergence and JS distance for F features at once.

    `ref` and `cur` are (F, K_max) count matrices; row j uses its first nbins[j] bins.
    Returns three (F,) arrays; NaN where a row has no reference or no window counts.
    """
    r = np.ascontiguousarray(ref, dtype=np.float64)
    c = np.ascontiguousarray(cur, dtype=np.float64)
    k = np.ascontiguousarray(nbins, dtype=np.int64)
    if r.ndim != 2 or r.shape != c.shape or k.shape != (r.shape[0],):
        raise ValueError(f"shapes do not fit: ref {r.shape}, cur {c.shape}, nbins {k.shape}")
    if k.size and (k.min() < 1 or k.max() > r.shape[1]):
        raise ValueError("nbins must be within 1..K_max")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(c))) or np.any(r < 0) or np.any(c < 0):
        raise ValueError("counts must be finite and non-negative")
    if not alpha >= 0:
        raise ValueError("pseudocount alpha must be >= 0")
    psi_out = np.empty(r.shape[0])
    jsd_out = np.empty(r.shape[0])
    _rows(r, c, k, float(alpha), psi_out, jsd_out)
    return psi_out, jsd_out, np.sqrt(jsd_out)
