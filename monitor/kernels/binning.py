"""Binning kernels: numeric values to the reference's bins, category codes to counts.

SPEC §2: with inner edges e_1 < ... < e_{K-1}, bin i holds e_{i-1} < x <= e_i
(right-closed), i.e. ``numpy.searchsorted(inner_edges, x, side="left")``. The bin index
is the number of edges strictly below x, computed as a branchless linear scan (for
K <= ~64 this beats a binary search several times over; PERF.md). NaN marks a missing
value: it is counted apart and never lands in a bin.

Several features are binned in one pass over a row-major (n x F) matrix: edges are
padded to a common width with +inf, which never counts as "below" any x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.kernels._jit import kernel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@kernel
def _bin_matrix(
    values: FloatArray,
    edges: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    counts: IntArray,
    missing: IntArray,
    out_of_range: IntArray,
) -> None:
    n, f = values.shape
    m = edges.shape[1]
    for i in range(n):
        for j in range(f):
            x = values[i, j]
            if math.isnan(x):  # missing
                missing[j] += 1
                continue
            idx = 0
            for e in range(m):
                idx += x > edges[j, e]
            counts[j, idx] += 1
            out_of_range[j] += (x < lo[j]) | (x > hi[j])


@kernel
def _count_codes(codes: IntArray, counts: IntArray) -> int:
    missing = 0
    for i in range(codes.shape[0]):
        c = codes[i]
        if c < 0:
            missing += 1
        else:
            counts[c] += 1
    return missing


@dataclass(frozen=True, slots=True)
class BinCounts:
    """Counts of one binning pass. Row j belongs to feature j."""

    counts: IntArray  # (F, K_max): per-bin counts; bins past a feature's K stay 0
    missing: IntArray  # (F,): NaN values
    out_of_range: IntArray  # (F,): finite values outside the reference [min, max]


def pad_edges(inner_edges: list[FloatArray]) -> FloatArray:
    """Stack per-feature inner edges into an (F, K_max-1) matrix padded with +inf."""
    width = max((len(e) for e in inner_edges), default=0)
    out = np.full((len(inner_edges), max(width, 1)), np.inf)
    for j, given in enumerate(inner_edges):
        edges = np.asarray(given, dtype=np.float64)
        # NaN compares false both ways, so a NaN edge would silently shift every bin after it.
        if (
            edges.ndim != 1
            or np.any(np.isnan(edges))
            or (edges.size > 1 and not np.all(np.diff(edges) > 0))
        ):
            raise ValueError(f"inner edges of feature {j} must be 1-D, increasing, not NaN")
        out[j, : edges.size] = edges
    return out


def bin_matrix(values: FloatArray, edges: FloatArray, lo: FloatArray, hi: FloatArray) -> BinCounts:
    """Bin an (n x F) float64 matrix (NaN = missing) against padded (F x K_max-1) edges.

    `lo`/`hi` are the reference min/max per feature, for the out-of-range count.
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    edges = np.ascontiguousarray(edges, dtype=np.float64)
    if values.ndim != 2 or edges.ndim != 2 or values.shape[1] != edges.shape[0]:
        raise ValueError(
            f"values (n, F) and edges (F, K-1) do not fit: {values.shape}, {edges.shape}"
        )
    n_features = edges.shape[0]
    lo = np.ascontiguousarray(lo, dtype=np.float64)
    hi = np.ascontiguousarray(hi, dtype=np.float64)
    if lo.shape != (n_features,) or hi.shape != (n_features,):
        raise ValueError(f"lo and hi must have shape ({n_features},)")
    counts = np.zeros((n_features, edges.shape[1] + 1), dtype=np.int64)
    missing = np.zeros(n_features, dtype=np.int64)
    out_of_range = np.zeros(n_features, dtype=np.int64)
    _bin_matrix(values, edges, lo, hi, counts, missing, out_of_range)
    return BinCounts(counts, missing, out_of_range)


def bin_numeric(
    values: FloatArray, inner_edges: FloatArray, lo: float = -np.inf, hi: float = np.inf
) -> BinCounts:
    """Bin one column: counts has K = len(inner_edges) + 1 bins (row 0 of the result)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError("values must be 1-D")
    edges = pad_edges([np.asarray(inner_edges, dtype=np.float64)])
    k = len(inner_edges) + 1
    result = bin_matrix(values.reshape(-1, 1), edges, np.array([lo]), np.array([hi]))
    return BinCounts(result.counts[:, :k], result.missing, result.out_of_range)


def count_codes(codes: IntArray, n_codes: int) -> tuple[IntArray, int]:
    """Histogram of category codes 0..n_codes-1; negative codes are missing values."""
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    if codes.ndim != 1:
        raise ValueError("codes must be 1-D")
    if codes.size and int(codes.max()) >= n_codes:
        raise ValueError(f"code {int(codes.max())} out of range for {n_codes} categories")
    counts = np.zeros(n_codes, dtype=np.int64)
    missing = int(_count_codes(codes, counts))
    return counts, missing
