"""Latency histogram against numpy.quantile(method="lower") and tests/naive.py (SPEC §3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.kernels import N_BUCKETS, insert_latencies, latency_quantiles, new_histogram
from monitor.kernels.latency import MAX_MS, MIN_MS, RELATIVE_ACCURACY, bucket_value
from tests import naive

KERNEL_SETTINGS = settings(max_examples=150, deadline=None)  # deadline off: first call JITs
QS = (0.5, 0.95, 0.99)
# The bucket bound is exactly `RELATIVE_ACCURACY` at a bucket's open lower edge; allow rounding.
REL = RELATIVE_ACCURACY * (1 + 1e-9)

latency = st.floats(min_value=MIN_MS, max_value=MAX_MS)
quantile = st.floats(min_value=0.0, max_value=1.0)


def histogram_of(values: np.ndarray) -> np.ndarray:
    counts = new_histogram()
    insert_latencies(counts, values)
    return counts


def assert_within_accuracy(got: np.ndarray, values: np.ndarray, qs: tuple[float, ...]) -> None:
    for estimate, q in zip(got, qs, strict=True):
        exact = float(np.quantile(values, q, method="lower"))
        assert exact == naive.quantile_lower(values.tolist(), q)
        assert abs(estimate - exact) <= REL * exact, (q, estimate, exact)


def test_empty_histogram_reads_nan() -> None:
    assert np.isnan(latency_quantiles(new_histogram(), QS)).all()


def test_insert_skips_nan_and_negative_and_reports_how_many_were_added() -> None:
    counts = new_histogram()
    assert insert_latencies(counts, np.array([1.0, np.nan, -3.0, 0.0, 5.0])) == 3
    assert int(counts.sum()) == 3


def test_values_below_min_read_as_zero_and_above_max_are_clamped() -> None:
    counts = histogram_of(np.array([0.0, MIN_MS / 2, 1e9]))
    assert counts[0] == 2
    assert counts[N_BUCKETS - 1] == 1
    got = latency_quantiles(counts, (0.0, 1.0))
    assert got[0] == 0.0
    assert got[1] == pytest.approx(MAX_MS, rel=REL)


@KERNEL_SETTINGS
@given(st.lists(latency, min_size=1, max_size=300), st.lists(quantile, min_size=1, max_size=5))
def test_quantiles_within_one_percent_of_numpy_lower(values: list[float], qs: list[float]) -> None:
    array = np.array(values)
    got = latency_quantiles(histogram_of(array), qs)
    assert_within_accuracy(got, array, tuple(qs))


@KERNEL_SETTINGS
@given(latency)
def test_each_value_reads_back_as_its_bucket_representative(x: float) -> None:
    got = latency_quantiles(histogram_of(np.array([x])), (0.5,))[0]
    assert got == pytest.approx(naive.latency_bucket_value(x), rel=1e-9)
    assert abs(got - x) <= REL * x


def heavy_tailed(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    if kind == "lognormal-2":
        return rng.lognormal(mean=math.log(20.0), sigma=2.0, size=n)
    if kind == "lognormal-3":
        return rng.lognormal(mean=math.log(20.0), sigma=3.0, size=n)
    # 95% fast lognormal requests, 5% Pareto(alpha=1.2) stragglers from 200 ms up.
    body = rng.lognormal(mean=math.log(8.0), sigma=0.5, size=n)
    tail = 200.0 * (1.0 + rng.pareto(1.2, size=n))
    return np.where(rng.random(n) < 0.05, tail, body)


@pytest.mark.parametrize("kind", ["lognormal-2", "lognormal-3", "pareto-mix"])
def test_heavy_tailed_p50_p95_p99_within_one_percent(kind: str) -> None:
    values = heavy_tailed(np.random.default_rng(11), 200_000, kind)
    values = np.clip(values, MIN_MS, MAX_MS)  # the histogram's documented range
    assert_within_accuracy(latency_quantiles(histogram_of(values), QS), values, QS)


@pytest.mark.parametrize("kind", ["lognormal-3", "pareto-mix"])
def test_merge_by_addition_equals_histogram_of_concatenation(kind: str) -> None:
    rng = np.random.default_rng(5)
    first = np.clip(heavy_tailed(rng, 50_000, kind), MIN_MS, MAX_MS)
    second = np.clip(heavy_tailed(rng, 70_000, "lognormal-2"), MIN_MS, MAX_MS)
    merged = histogram_of(first) + histogram_of(second)
    both = np.concatenate([first, second])
    np.testing.assert_array_equal(merged, histogram_of(both))
    assert_within_accuracy(latency_quantiles(merged, QS), both, QS)


@KERNEL_SETTINGS
@given(st.lists(latency, max_size=100), st.lists(latency, max_size=100))
def test_merge_property(first: list[float], second: list[float]) -> None:
    merged = histogram_of(np.array(first)) + histogram_of(np.array(second))
    np.testing.assert_array_equal(merged, histogram_of(np.array(first + second)))


def test_bucket_value_matches_readout() -> None:
    counts = histogram_of(np.array([42.0]))
    (index,) = np.flatnonzero(counts)
    assert latency_quantiles(counts, (0.5,))[0] == pytest.approx(
        bucket_value(int(index)), rel=1e-12
    )
    with pytest.raises(ValueError):
        bucket_value(N_BUCKETS)


def test_insert_rejects_bad_histograms_and_values() -> None:
    with pytest.raises(ValueError):
        insert_latencies(np.zeros(N_BUCKETS - 1, dtype=np.int64), np.ones(3))
    with pytest.raises(ValueError):
        insert_latencies(np.zeros(N_BUCKETS, dtype=np.float64), np.ones(3))
    with pytest.raises(ValueError):
        insert_latencies(new_histogram(), np.ones((3, 2)))


@pytest.mark.parametrize("qs", [(-0.1,), (1.1,), (math.nan,), ((0.5, 0.9),)])
def test_quantiles_reject_out_of_range_q(qs: tuple[float, ...]) -> None:
    counts = histogram_of(np.ones(3))
    with pytest.raises(ValueError):
        latency_quantiles(counts, np.array(qs))


def test_quantiles_reject_bad_histograms() -> None:
    with pytest.raises(ValueError):
        latency_quantiles(np.zeros(N_BUCKETS + 1, dtype=np.int64), QS)
    negative = new_histogram()
    negative[3] = -1
    with pytest.raises(ValueError):
        latency_quantiles(negative, QS)
