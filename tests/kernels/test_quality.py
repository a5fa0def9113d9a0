"""Quality ratios and sample-size guards against tests/naive.py and scipy (SPEC §3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2

from monitor.kernels import divergence_rows, enough_samples, psi_chi2_threshold, quality_ratios
from tests import naive

KERNEL_SETTINGS = settings(max_examples=150, deadline=None)  # deadline off: first call JITs


@st.composite
def feature_counts(draw: st.DrawFn) -> tuple[int, int, int]:
    """(events, missing, flagged) with 0 <= missing <= events, 0 <= flagged <= present."""
    events = draw(st.integers(0, 10_000))
    missing = draw(st.integers(0, events))
    flagged = draw(st.integers(0, events - missing))
    return events, missing, flagged


@KERNEL_SETTINGS
@given(st.lists(feature_counts(), max_size=20))
def test_quality_ratios_match_naive(rows: list[tuple[int, int, int]]) -> None:
    table = np.array(rows, dtype=np.float64).reshape(-1, 3)
    events, missing, flagged = table[:, 0], table[:, 1], table[:, 2]
    missing_out, flagged_out = quality_ratios(events, missing, flagged)
    for j, row in enumerate(rows):
        expected_missing, expected_flagged = naive.quality_ratios(*row)
        for got, want in ((missing_out[j], expected_missing), (flagged_out[j], expected_flagged)):
            if math.isnan(want):
                assert math.isnan(got)
            else:
                assert got == pytest.approx(want, rel=1e-12)
                assert 0.0 <= got <= 1.0


def test_zero_denominators_are_nan_not_zero() -> None:
    missing_out, flagged_out = quality_ratios(
        np.array([0.0, 5.0, 5.0]), np.array([0.0, 5.0, 0.0]), np.array([0.0, 0.0, 1.0])
    )
    assert math.isnan(missing_out[0]) and math.isnan(flagged_out[0])  # no events
    assert missing_out[1] == 1.0 and math.isnan(flagged_out[1])  # all missing: none present
    assert missing_out[2] == 0.0 and flagged_out[2] == 0.2


@pytest.mark.parametrize(
    ("events", "missing", "flagged"),
    [
        ([5.0], [6.0], [0.0]),  # more missing than events
        ([5.0], [2.0], [4.0]),  # more flagged than present
        ([5.0], [-1.0], [0.0]),  # negative
        ([5.0], [0.0], [-1.0]),  # negative
        ([5.0, 5.0], [0.0], [0.0]),  # lengths differ
        ([[5.0]], [[0.0]], [[0.0]]),  # not 1-D
    ],
)
def test_quality_ratios_reject_bad_counts(
    events: list[float], missing: list[float], flagged: list[float]
) -> None:
    with pytest.raises(ValueError):
        quality_ratios(np.array(events), np.array(missing), np.array(flagged))


def test_enough_samples_needs_per_bin_times_k() -> None:
    assert not enough_samples(99, 10)
    assert enough_samples(100, 10)
    assert enough_samples(50, 10, per_bin=5)


@KERNEL_SETTINGS
@given(
    st.floats(min_value=1, max_value=1e9),
    st.integers(2, 200),
    st.floats(min_value=1e-6, max_value=0.5),
    st.floats(min_value=0, max_value=1),
)
def test_psi_chi2_threshold_matches_scipy(
    window: float, k: int, significance: float, floor: float
) -> None:
    bar = chi2.ppf(1 - significance, k - 1)
    # SPEC §3: chi2_{1-a, K-1} / C + floor, the limit of an infinite reference.
    assert psi_chi2_threshold(window, k, significance, floor) == pytest.approx(
        bar / window + floor, rel=1e-12
    )
    # A finite reference adds its own sampling noise: (1/C + 1/R).
    assert psi_chi2_threshold(
        window, k, significance, floor, reference_count=2 * window
    ) == pytest.approx(bar * 1.5 / window + floor, rel=1e-12)


@pytest.mark.parametrize(("window", "k"), [(0, 10), (-1, 10), (100, 1), (100, 0)])
def test_psi_chi2_threshold_is_infinite_without_data_or_bins(window: float, k: int) -> None:
    assert psi_chi2_threshold(window, k) == math.inf


def test_psi_chi2_threshold_false_alarm_rate_under_no_drift() -> None:
    # Windows drawn from the reference distribution itself exceed the bar about
    # `significance` of the time (PSI·C is asymptotically chi2(K-1)).
    rng = np.random.default_rng(20240611)
    k, window, trials, significance = 10, 5_000, 4_000, 0.05
    p = rng.dirichlet(np.full(k, 5.0))
    ref = np.tile(p * 1e12, (trials, 1))  # a reference so large it is the true p
    cur = rng.multinomial(window, p, size=trials).astype(np.float64)
    psi_out, _, _ = divergence_rows(ref, cur, np.full(trials, k), alpha=0.5)
    rate = float(np.mean(psi_out > psi_chi2_threshold(window, k, significance)))
    assert 0.035 <= rate <= 0.065
