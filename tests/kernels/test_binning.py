"""Binning kernels against tests/naive.py and numpy.searchsorted (SPEC §2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.kernels import bin_matrix, bin_numeric, count_codes, pad_edges
from tests import naive

KERNEL_SETTINGS = settings(max_examples=150, deadline=None)  # deadline off: first call JITs

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=64)
inner_edges = st.lists(finite, max_size=25, unique=True).map(sorted)


@st.composite
def column(draw: st.DrawFn, edges: list[float]) -> list[float]:
    """Values that often sit exactly on an edge (the right-closed boundary) or are NaN."""
    value = st.one_of(finite, st.just(math.nan), *([st.sampled_from(edges)] if edges else []))
    return draw(st.lists(value, max_size=200))


@st.composite
def feature(draw: st.DrawFn) -> tuple[list[float], list[float], float, float]:
    edges = draw(inner_edges)
    values = draw(column(edges))
    lo, hi = sorted((draw(finite), draw(finite)))
    return edges, values, lo, hi


def test_right_closed_bins_match_searchsorted_left() -> None:
    edges = np.array([1.0, 2.0, 3.0])
    values = np.array([0.5, 1.0, 1.5, 2.0, 3.0, 3.5, -np.inf, np.inf])
    result = bin_numeric(values, edges)
    expected = np.bincount(np.searchsorted(edges, values, side="left"), minlength=4)
    np.testing.assert_array_equal(result.counts[0], expected)
    np.testing.assert_array_equal(result.counts[0], [3, 2, 1, 2])


def test_nan_is_missing_and_not_binned() -> None:
    result = bin_numeric(np.array([np.nan, 1.0, np.nan]), np.array([0.0]), lo=0.0, hi=2.0)
    np.testing.assert_array_equal(result.counts, [[0, 1]])
    np.testing.assert_array_equal(result.missing, [2])
    np.testing.assert_array_equal(result.out_of_range, [0])


def test_out_of_range_uses_reference_min_max_inclusively() -> None:
    values = np.array([-1.0, 0.0, 5.0, 10.0, 10.5])
    result = bin_numeric(values, np.array([5.0]), lo=0.0, hi=10.0)
    np.testing.assert_array_equal(result.out_of_range, [2])


def test_no_inner_edges_is_one_bin() -> None:
    result = bin_numeric(np.array([1.0, -3.0, np.nan]), np.array([]))
    np.testing.assert_array_equal(result.counts, [[2]])
    np.testing.assert_array_equal(result.missing, [1])


@KERNEL_SETTINGS
@given(feature())
def test_bin_numeric_matches_naive(case: tuple[list[float], list[float], float, float]) -> None:
    edges, values, lo, hi = case
    result = bin_numeric(np.array(values, dtype=np.float64), np.array(edges), lo=lo, hi=hi)
    counts, missing, out_of_range = naive.bin_column(values, edges, lo, hi)
    assert result.counts.shape == (1, len(edges) + 1)
    assert result.counts[0].tolist() == counts
    assert int(result.missing[0]) == missing
    assert int(result.out_of_range[0]) == out_of_range
    present = np.array([v for v in values if not math.isnan(v)])
    expected = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    assert result.counts[0].tolist() == expected.tolist()


@KERNEL_SETTINGS
@given(st.lists(feature(), min_size=1, max_size=6), st.integers(0, 150), st.data())
def test_bin_matrix_equals_per_column_bin_numeric_and_naive(
    features: list[tuple[list[float], list[float], float, float]], n: int, data: st.DataObject
) -> None:
    # One row count for all features: draw each column afresh with its own edges.
    columns = [
        data.draw(
            st.lists(st.one_of(finite, st.just(math.nan), *_on_edges(e)), min_size=n, max_size=n)
        )
        for e, _, _, _ in features
    ]
    matrix = np.array(columns, dtype=np.float64).T.reshape(n, len(features))
    edges = pad_edges([np.array(e) for e, _, _, _ in features])
    lo = np.array([f[2] for f in features])
    hi = np.array([f[3] for f in features])
    result = bin_matrix(matrix, edges, lo, hi)
    assert result.counts.shape == (len(features), edges.shape[1] + 1)
    for j, (e, _, lo_j, hi_j) in enumerate(features):
        k = len(e) + 1
        single = bin_numeric(matrix[:, j], np.array(e), lo=lo_j, hi=hi_j)
        counts, missing, out_of_range = naive.bin_column(columns[j], e, lo_j, hi_j)
        assert result.counts[j, :k].tolist() == single.counts[0].tolist() == counts
        assert not result.counts[j, k:].any(), "padding bins must stay empty"
        assert int(result.missing[j]) == int(single.missing[0]) == missing
        assert int(result.out_of_range[j]) == int(single.out_of_range[0]) == out_of_range


def _on_edges(edges: list[float]) -> list[st.SearchStrategy[float]]:
    return [st.sampled_from(edges)] if edges else []


def test_bin_matrix_accepts_non_contiguous_and_float32_input() -> None:
    rng = np.random.default_rng(7)
    wide = rng.normal(size=(100, 6)).astype(np.float32)
    view = wide[:, ::2]
    edges = pad_edges([np.array([-1.0, 0.0, 1.0])] * 3)
    result = bin_matrix(view, edges, np.full(3, -2.0), np.full(3, 2.0))
    for j in range(3):
        expected, missing, oor = naive.bin_column(
            view[:, j].astype(np.float64).tolist(), [-1.0, 0.0, 1.0], -2.0, 2.0
        )
        assert result.counts[j].tolist() == expected
        assert (int(result.missing[j]), int(result.out_of_range[j])) == (missing, oor)


@KERNEL_SETTINGS
@given(
    st.integers(1, 40).flatmap(lambda k: st.tuples(st.just(k), st.lists(st.integers(-3, k - 1))))
)
def test_count_codes_matches_naive(case: tuple[int, list[int]]) -> None:
    n_codes, codes = case
    counts, missing = count_codes(np.array(codes, dtype=np.int64), n_codes)
    expected_counts, expected_missing = naive.count_codes(codes, n_codes)
    assert counts.tolist() == expected_counts
    assert missing == expected_missing


def test_pad_edges_pads_with_inf() -> None:
    edges = pad_edges([np.array([1.0, 2.0]), np.array([5.0]), np.array([])])
    np.testing.assert_array_equal(edges, [[1.0, 2.0], [5.0, np.inf], [np.inf, np.inf]])


@pytest.mark.parametrize(
    "bad", [np.array([2.0, 1.0]), np.array([1.0, 1.0]), np.array([[1.0, 2.0]]), np.array([np.nan])]
)
def test_pad_edges_rejects_bad_edges(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="edges"):
        pad_edges([bad])


def test_bin_matrix_rejects_bad_shapes() -> None:
    edges = pad_edges([np.array([0.0]), np.array([1.0])])
    with pytest.raises(ValueError):
        bin_matrix(np.zeros((4, 3)), edges, np.zeros(2), np.ones(2))
    with pytest.raises(ValueError):
        bin_matrix(np.zeros(4), edges, np.zeros(2), np.ones(2))
    with pytest.raises(ValueError):
        bin_matrix(np.zeros((4, 2)), edges, np.zeros(3), np.ones(2))
    with pytest.raises(ValueError):
        bin_numeric(np.zeros((4, 2)), np.array([0.0]))


def test_count_codes_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        count_codes(np.array([0, 3]), 3)
    with pytest.raises(ValueError):
        count_codes(np.zeros((2, 2), dtype=np.int64), 3)
