"""Slow, obviously correct reference implementations of the kernels (as stumpy does).

Plain Python loops over plain numbers, written straight from SPEC §2-3, so that a
reader can check them against the formulas line by line. The numba kernels in
`monitor.kernels` are tested against these and against scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

EPSILON = 1e-4  # unsmoothed PSI: an empty bin's proportion, as Evidently does


def bin_index(x: float, inner_edges: Sequence[float]) -> int:
    """Right-closed bin of `x`: bin i holds e_{i-1} < x <= e_i (the number of edges below x)."""
    index = 0
    for edge in inner_edges:
        if x > edge:
            index += 1
    return index


def bin_column(
    values: Sequence[float],
    inner_edges: Sequence[float],
    lo: float = -math.inf,
    hi: float = math.inf,
) -> tuple[list[int], int, int]:
    """(counts per bin, missing, out of range) for one feature; NaN is missing."""
    counts = [0] * (len(inner_edges) + 1)
    missing = 0
    out_of_range = 0
    for x in values:
        if math.isnan(x):
            missing += 1
            continue
        counts[bin_index(x, inner_edges)] += 1
        if x < lo or x > hi:
            out_of_range += 1
    return counts, missing, out_of_range


def count_codes(codes: Sequence[int], n_codes: int) -> tuple[list[int], int]:
    """Histogram of category codes; a negative code is a missing value."""
    counts = [0] * n_codes
    missing = 0
    for code in codes:
        if code < 0:
            missing += 1
        else:
            counts[code] += 1
    return counts, missing


def proportions(counts: Sequence[float], alpha: float) -> list[float]:
    """PSI proportions: (c_i + alpha) / (C + K·alpha), or c_i / C with empty bins -> EPSILON."""
    total = sum(counts)
    k = len(counts)
    if alpha > 0:
        return [(c + alpha) / (total + k * alpha) for c in counts]
    return [c / total if c > 0 else EPSILON for c in counts]


def psi(ref: Sequence[float], cur: Sequence[float], alpha: float = 0.5) -> float:
    """PSI = Σ (q_i - p_i)·ln(q_i / p_i); NaN when either side has no counts."""
    if sum(ref) <= 0 or sum(cur) <= 0:
        return math.nan
    if alpha > 0:  # exact fractions: with a denormal alpha, float proportions underflow
        pf, qf = _exact_proportions(ref, alpha), _exact_proportions(cur, alpha)
        return sum(float(qi - pi) * _ln_ratio(qi, pi) for pi, qi in zip(pf, qf, strict=True))
    p = proportions(ref, alpha)
    q = proportions(cur, alpha)
    return sum((qi - pi) * math.log(qi / pi) for pi, qi in zip(p, q, strict=True))


def _exact_proportions(counts: Sequence[float], alpha: float) -> list[Fraction]:
    a = Fraction(alpha)
    total = sum(map(Fraction, counts)) + len(counts) * a
    return [(Fraction(c) + a) / total for c in counts]


def _ln_ratio(q: Fraction, p: Fraction) -> float:
    """ln(q / p) from the integers (math.log takes ints of any size)."""
    return (
        math.log(q.numerator)
        - math.log(q.denominator)
        - math.log(p.numerator)
        + math.log(p.denominator)
    )


def kl2(p: Sequence[float], m: Sequence[float]) -> float:
    """KL(p‖m) in bits with 0·log 0 = 0."""
    return sum(pi * math.log2(pi / mi) for pi, mi in zip(p, m, strict=True) if pi > 0)


def js_divergence(ref: Sequence[float], cur: Sequence[float]) -> float:
    """Jensen-Shannon divergence, base 2, unsmoothed; NaN when either side has no counts."""
    total_r = sum(ref)
    total_c = sum(cur)
    if total_r <= 0 or total_c <= 0:
        return math.nan
    p = [r / total_r for r in ref]
    q = [c / total_c for c in cur]
    m = [(pi + qi) / 2 for pi, qi in zip(p, q, strict=True)]
    return 0.5 * kl2(p, m) + 0.5 * kl2(q, m)


def quality_ratios(events: float, missing: float, flagged: float) -> tuple[float, float]:
    """(missing / events, flagged / present); NaN for a zero denominator."""
    present = events - missing
    missing_ratio = missing / events if events > 0 else math.nan
    flagged_ratio = flagged / present if present > 0 else math.nan
    return missing_ratio, flagged_ratio


def quantile_lower(values: Sequence[float], q: float) -> float:
    """The value at sorted position floor(q·(n-1)) (numpy's method="lower")."""
    ordered = sorted(values)
    return float(ordered[math.floor(q * (len(ordered) - 1))])


def latency_bucket_value(x: float, relative_accuracy: float = 0.01) -> float:
    """DDSketch representative of x's bucket: 2·gamma^k / (gamma + 1), k = ceil(log_gamma x)."""
    gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
    key = math.ceil(math.log(x) / math.log(gamma))
    return 2 * gamma**key / (gamma + 1)
