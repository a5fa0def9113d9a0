"""numba kernels, one thread (PERF.md targets)

Synthetic inputs, seeded: standard-normal features binned against 19 inner edges
(20 bins) from reference quantiles; multinomial count vectors for the divergences;
lognormal latencies (median 20 ms, sigma 2) for the histogram. Every kernel runs on one
thread (no numba `parallel`), so these are per-core rates. The public, validating
wrappers are timed, as the pipeline calls them. The numpy `searchsorted` row is the
obvious alternative, measured in the same process right after the numba runs.
"""

from __future__ import annotations

import numpy as np

from bench.core import Config, Row, Target, measure
from monitor.kernels import (
    bin_matrix,
    divergence_rows,
    insert_latencies,
    latency_quantiles,
    new_histogram,
    pad_edges,
)
from monitor.kernels.latency import MAX_MS, MIN_MS

N_FEATURES = 20
N_BINS = 20
N_DIVERGENCE_FEATURES = 1000
QS = np.array([0.5, 0.95, 0.99])


def run(config: Config) -> list[Row]:
    rng = np.random.default_rng(20240611)
    return [
        *binning(config, rng),
        *divergence(config, rng),
        *latency(config, rng),
    ]


def binning(config: Config, rng: np.random.Generator) -> list[Row]:
    n_rows = 20_000 if config.quick else 250_000
    reference = rng.standard_normal((100_000, N_FEATURES))
    inner = [
        np.quantile(reference[:, j], np.linspace(0, 1, N_BINS + 1)[1:-1]) for j in range(N_FEATURES)
    ]
    edges = pad_edges(inner)
    lo, hi = reference.min(axis=0), reference.max(axis=0)
    values = rng.standard_normal((n_rows, N_FEATURES)) * 1.1 + 0.05  # a little drift
    n_values = values.size

    def numpy_baseline() -> None:
        for j in range(N_FEATURES):
            column = values[:, j]
            np.bincount(np.searchsorted(inner[j], column, side="left"), minlength=N_BINS)
            np.count_nonzero((column < lo[j]) | (column > hi[j]))

    numba_runs = measure(lambda: bin_matrix(values, edges, lo, hi), config)
    numpy_runs = measure(numpy_baseline, config, warmup=1)
    label = f"{N_FEATURES} features x {N_BINS} bins"
    return [
        Row.from_samples(
            f"bin_matrix, {label}",
            [n_values / t / 1e6 for t in numba_runs],
            "M values/s",
            Target(">=", 100),
        ),
        Row.from_samples(
            f"numpy searchsorted + bincount, {label} (baseline)",
            [n_values / t / 1e6 for t in numpy_runs],
            "M values/s",
        ),
        Row.from_samples(
            "bin_matrix speed-up over numpy",
            [b / a for a, b in zip(numba_runs, numpy_runs, strict=True)],
            "x",
        ),
    ]


def divergence(config: Config, rng: np.random.Generator) -> list[Row]:
    p = rng.dirichlet(np.ones(N_BINS), size=N_DIVERGENCE_FEATURES)
    ref = np.array([rng.multinomial(100_000, row) for row in p], dtype=np.float64)
    cur = np.array([rng.multinomial(5_000, row) for row in p], dtype=np.float64)
    nbins = np.full(N_DIVERGENCE_FEATURES, N_BINS, dtype=np.int64)
    wrapper = measure(lambda: divergence_rows(ref, cur, nbins, 0.5), config)
    label = f"{N_DIVERGENCE_FEATURES} features x {N_BINS} bins"
    return [
        Row.from_samples(
            f"divergence_rows (PSI + JSD), {label}",
            [t * 1e3 for t in wrapper],
            "ms",
            Target("<", 1),
        ),
    ]


def latency(config: Config, rng: np.random.Generator) -> list[Row]:
    n = 100_000 if config.quick else 1_000_000
    values = np.clip(rng.lognormal(np.log(20.0), 2.0, size=n), MIN_MS, MAX_MS)
    counts = new_histogram()

    def insert() -> None:
        counts[:] = 0
        insert_latencies(counts, values)

    insert_runs = measure(insert, config)
    readout_runs = measure(lambda: latency_quantiles(counts, QS), config)
    estimates = latency_quantiles(counts, QS)
    exact = np.quantile(values, QS, method="lower")
    error = float(np.max(np.abs(estimates - exact) / exact)) * 100
    return [
        Row.from_samples(
            "insert_latencies (lognormal, sigma 2)",
            [n / t / 1e6 for t in insert_runs],
            "M values/s",
        ),
        Row.from_samples(
            "latency_quantiles p50/p95/p99 readout", [t * 1e6 for t in readout_runs], "us"
        ),
        Row.from_samples(
            "worst relative error of p50/p95/p99 vs numpy 'lower'",
            [error],
            "%",
            Target("<=", 1),
        ),
    ]
