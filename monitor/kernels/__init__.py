"""Numeric kernels (numba): pure functions over arrays, each behind a validating wrapper.

- binning:    values -> reference bins (numeric) and category codes -> counts
- divergence: PSI and Jensen-Shannon over count vectors
- quality:    missing / out-of-range / unseen ratios, sample-size guard, chi² PSI bar
- latency:    mergeable log-bucketed latency histogram and quantile readout
"""

from monitor.kernels.binning import BinCounts, bin_matrix, bin_numeric, count_codes, pad_edges
from monitor.kernels.divergence import divergence_rows, js_distance, js_divergence, psi
from monitor.kernels.latency import (
    N_BUCKETS,
    insert_latencies,
    latency_quantiles,
    latency_sum,
    latency_summaries,
    new_histogram,
)
from monitor.kernels.quality import enough_samples, psi_chi2_threshold, quality_ratios

__all__ = [
    "N_BUCKETS",
    "BinCounts",
    "bin_matrix",
    "bin_numeric",
    "count_codes",
    "divergence_rows",
    "enough_samples",
    "insert_latencies",
    "js_distance",
    "js_divergence",
    "latency_quantiles",
    "latency_sum",
    "latency_summaries",
    "new_histogram",
    "pad_edges",
    "psi",
    "psi_chi2_threshold",
    "quality_ratios",
]
