"""PSI and Jensen-Shannon kernels against tests/naive.py and scipy (SPEC §3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from monitor.kernels import divergence_rows, js_distance, js_divergence, psi
from tests import naive

KERNEL_SETTINGS = settings(max_examples=200, deadline=None)  # deadline off: first call JITs
TOL = {"rel": 1e-9, "abs": 1e-9}

alphas = st.one_of(st.just(0.0), st.just(0.5), st.floats(min_value=0.0, max_value=5.0))


@st.composite
def count_pair(draw: st.DrawFn, min_k: int = 1, max_k: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Two count vectors over the same K bins, each with a positive total."""
    k = draw(st.integers(min_k, max_k))
    counts = st.lists(st.integers(0, 10_000), min_size=k, max_size=k).filter(lambda c: sum(c) > 0)
    return np.array(draw(counts), dtype=np.float64), np.array(draw(counts), dtype=np.float64)


def test_psi_known_value() -> None:
    # (0.25 - 0.5)·ln(0.5) + (0.75 - 0.5)·ln(1.5)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert psi(np.array([50.0, 50.0]), np.array([25.0, 75.0]), alpha=0) == pytest.approx(expected)


def test_psi_alpha_zero_replaces_empty_bins_with_epsilon() -> None:
    ref = np.array([100.0, 0.0])
    cur = np.array([50.0, 50.0])
    expected = (0.5 - 1.0) * math.log(0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert psi(ref, cur, alpha=0) == pytest.approx(expected, rel=1e-12)


def test_js_of_disjoint_supports_is_one() -> None:
    assert js_divergence(np.array([5.0, 0.0]), np.array([0.0, 7.0])) == 1.0
    assert js_distance(np.array([5.0, 0.0]), np.array([0.0, 7.0])) == 1.0


@pytest.mark.parametrize(("ref", "cur"), [([0.0, 0.0], [1.0, 2.0]), ([1.0, 2.0], [0.0, 0.0])])
def test_empty_side_is_nan(ref: list[float], cur: list[float]) -> None:
    assert math.isnan(psi(np.array(ref), np.array(cur)))
    assert math.isnan(js_divergence(np.array(ref), np.array(cur)))


@KERNEL_SETTINGS
@given(count_pair(), alphas)
def test_psi_matches_naive(pair: tuple[np.ndarray, np.ndarray], alpha: float) -> None:
    ref, cur = pair
    assert psi(ref, cur, alpha) == pytest.approx(
        naive.psi(ref.tolist(), cur.tolist(), alpha), **TOL
    )


@KERNEL_SETTINGS
@given(count_pair())
def test_js_matches_naive_and_scipy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    expected = naive.js_divergence(ref.tolist(), cur.tolist())
    assert js_divergence(ref, cur) == pytest.approx(expected, **TOL)
    assert js_distance(ref, cur) == pytest.approx(jensenshannon(ref, cur, base=2), **TOL)


@KERNEL_SETTINGS
@given(count_pair(), alphas)
def test_psi_is_non_negative_and_zero_on_identical_inputs(
    pair: tuple[np.ndarray, np.ndarray], alpha: float
) -> None:
    ref, cur = pair
    assert psi(ref, cur, alpha) >= 0.0
    assert psi(ref, ref, alpha) == 0.0
    assert js_divergence(ref, ref) == 0.0


@KERNEL_SETTINGS
@given(count_pair())
def test_js_is_symmetric_and_bounded(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    forward = js_divergence(ref, cur)
    assert 0.0 <= forward <= 1.0
    assert forward == pytest.approx(js_divergence(cur, ref), **TOL)
    assert js_distance(ref, cur) == pytest.approx(math.sqrt(forward), **TOL)


scales = st.floats(min_value=1e-3, max_value=1e3)


@KERNEL_SETTINGS
@given(count_pair(), scales, scales)
def test_invariant_to_scaling_counts(
    pair: tuple[np.ndarray, np.ndarray], scale_ref: float, scale_cur: float
) -> None:
    ref, cur = pair
    assert js_divergence(scale_ref * ref, scale_cur * cur) == pytest.approx(
        js_divergence(ref, cur), **TOL
    )
    assert psi(scale_ref * ref, scale_cur * cur, alpha=0) == pytest.approx(
        psi(ref, cur, alpha=0), **TOL
    )


@st.composite
def count_matrix(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F, K_max) reference and window counts, row j using its first nbins[j] bins.

    Bins past nbins[j] hold junk: the kernel must ignore them. Some rows are empty.
    """
    n_features = draw(st.integers(1, 12))
    k_max = draw(st.integers(1, 25))
    shape = (n_features, k_max)
    cells = st.lists(st.integers(0, 500), min_size=n_features * k_max, max_size=n_features * k_max)
    ref = np.array(draw(cells), dtype=np.float64).reshape(shape)
    cur = np.array(draw(cells), dtype=np.float64).reshape(shape)
    nbins = np.array(
        draw(st.lists(st.integers(1, k_max), min_size=n_features, max_size=n_features))
    )
    return ref, cur, nbins


@KERNEL_SETTINGS
@given(count_matrix(), alphas)
def test_divergence_rows_equals_per_row_psi_and_js(
    case: tuple[np.ndarray, np.ndarray, np.ndarray], alpha: float
) -> None:
    ref, cur, nbins = case
    psi_out, jsd_out, dist_out = divergence_rows(ref, cur, nbins, alpha)
    assert psi_out.shape == jsd_out.shape == dist_out.shape == (ref.shape[0],)
    for j, k in enumerate(nbins):
        r, c = ref[j, :k], cur[j, :k]
        if r.sum() == 0 or c.sum() == 0:
            assert math.isnan(psi_out[j]) and math.isnan(jsd_out[j]) and math.isnan(dist_out[j])
            continue
        assert psi_out[j] == pytest.approx(psi(r, c, alpha), **TOL)
        assert psi_out[j] == pytest.approx(naive.psi(r.tolist(), c.tolist(), alpha), **TOL)
        assert jsd_out[j] == pytest.approx(js_divergence(r, c), **TOL)
        assert dist_out[j] == pytest.approx(jensenshannon(r, c, base=2), **TOL)


@pytest.mark.parametrize("alpha", [5e-324, 1e-320, 1e-300])
def test_a_denormal_pseudocount_gives_a_finite_psi(alpha: float) -> None:
    """Found by hypothesis: with alpha = 5e-324 an empty bin's proportion underflows to 0
    and ln(q/p) divided by zero (the kernel raised ZeroDivisionError)."""
    ref, cur = np.array([0.0, 2.0, 0.0]), np.array([0.0, 1.0, 3.0])
    got = psi(ref, cur, alpha)
    assert math.isfinite(got) and got > 0
    assert got == pytest.approx(naive.psi(ref.tolist(), cur.tolist(), alpha), **TOL)
    rows, _, _ = divergence_rows(
        np.vstack([ref, cur]), np.vstack([cur, ref]), np.array([3, 3]), alpha
    )
    assert rows.tolist() == pytest.approx([got, psi(cur, ref, alpha)], **TOL)


def test_divergence_rows_of_no_features() -> None:
    empty = np.zeros((0, 5))
    psi_out, jsd_out, dist_out = divergence_rows(empty, empty, np.zeros(0, dtype=np.int64))
    assert psi_out.shape == jsd_out.shape == dist_out.shape == (0,)


@KERNEL_SETTINGS
@given(count_pair(min_k=2))
def test_psi_grows_when_mass_moves(pair: tuple[np.ndarray, np.ndarray]) -> None:
    # Moving all window mass into one bin cannot bring it closer to a spread-out reference.
    ref, _ = pair
    assume(np.count_nonzero(ref) == ref.size)
    spike = np.zeros_like(ref)
    spike[0] = ref.sum()
    assert psi(ref, spike, alpha=0.5) > psi(ref, ref, alpha=0.5)


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        (np.array([1.0, 2.0]), np.array([1.0, 2.0, 3.0])),  # lengths differ
        (np.array([[1.0, 2.0]]), np.array([[1.0, 2.0]])),  # not 1-D
        (np.array([]), np.array([])),  # no bins
        (np.array([1.0, -1.0]), np.array([1.0, 2.0])),  # negative count
        (np.array([1.0, 2.0]), np.array([np.inf, 2.0])),  # infinite count
        (np.array([1.0, np.nan]), np.array([1.0, 2.0])),  # NaN count
    ],
)
def test_pairwise_wrappers_reject_bad_counts(ref: np.ndarray, cur: np.ndarray) -> None:
    for fn in (psi, js_divergence, js_distance):
        with pytest.raises(ValueError):
            fn(ref, cur)


@pytest.mark.parametrize("alpha", [-0.1, math.nan])
def test_bad_alpha_is_rejected(alpha: float) -> None:
    with pytest.raises(ValueError):
        psi(np.ones(3), np.ones(3), alpha)
    with pytest.raises(ValueError):
        divergence_rows(np.ones((1, 3)), np.ones((1, 3)), np.array([3]), alpha)


@pytest.mark.parametrize(
    ("ref", "cur", "nbins"),
    [
        (np.ones((2, 3)), np.ones((2, 4)), np.array([3, 3])),  # shapes differ
        (np.ones((2, 3)), np.ones((2, 3)), np.array([3])),  # one nbins per row
        (np.ones((2, 3)), np.ones((2, 3)), np.array([0, 3])),  # a row without bins
        (np.ones((2, 3)), np.ones((2, 3)), np.array([3, 4])),  # more bins than columns
        (np.ones(3), np.ones(3), np.array([3])),  # not 2-D
        (-np.ones((2, 3)), np.ones((2, 3)), np.array([3, 3])),  # negative counts
        (np.full((2, 3), np.nan), np.ones((2, 3)), np.array([3, 3])),  # NaN counts
    ],
)
def test_divergence_rows_rejects_bad_input(
    ref: np.ndarray, cur: np.ndarray, nbins: np.ndarray
) -> None:
    with pytest.raises(ValueError):
        divergence_rows(ref, cur, nbins)
