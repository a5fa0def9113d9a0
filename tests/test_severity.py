"""classify_feature: thresholds, the sample-size guard, the chi² PSI bar, missing excess."""

from __future__ import annotations

import math

import pytest
from scipy.stats import chi2

from monitor.settings import Chi2Threshold, Rules, Thresholds
from monitor.severity import at_least, classify_feature, max_severity, severity_rank

RULES = Rules()
QUIET = {"psi": 0.0, "js_distance": 0.0, "missing_ratio": 0.0, "out_of_range_ratio": 0.0}


@pytest.mark.parametrize(
    ("psi", "expected"),
    [
        (0.0, "ok"),
        (0.099, "ok"),
        (0.1, "info"),
        (0.2, "warning"),
        (0.29, "warning"),
        (0.3, "critical"),
    ],
)
def test_psi_thresholds(psi: float, expected: str) -> None:
    verdict = classify_feature({**QUIET, "psi": psi}, RULES, 10, 0.0, 1000)
    assert verdict.metrics["psi"] == expected
    assert verdict.severity == expected
    assert verdict.enough_samples


def test_feature_severity_is_the_highest_metric() -> None:
    metrics = {**QUIET, "psi": 0.15, "js_distance": 0.25, "out_of_range_ratio": 0.5}
    verdict = classify_feature(metrics, RULES, 10, 0.0, 1000)
    assert verdict.metrics == {
        "psi": "info",
        "js_distance": "warning",
        "missing_ratio": "ok",
        "out_of_range_ratio": "critical",
    }
    assert verdict.severity == "critical"


def test_sample_size_guard_silences_drift_only() -> None:
    metrics = {**QUIET, "psi": 5.0, "js_distance": 0.9, "missing_ratio": 0.6}
    verdict = classify_feature(metrics, RULES, 10, 0.0, 99)  # < 10 per bin x 10 bins
    assert not verdict.enough_samples
    assert verdict.metrics["psi"] == "ok"
    assert verdict.metrics["js_distance"] == "ok"
    assert verdict.metrics["missing_ratio"] == "critical"
    assert classify_feature(metrics, RULES, 10, 0.0, 100).metrics["psi"] == "critical"
    loose = Rules(min_samples_per_bin=1)
    assert classify_feature(metrics, loose, 10, 0.0, 10).enough_samples


def test_missing_rule_uses_excess_over_reference() -> None:
    metrics = {**QUIET, "missing_ratio": 0.30}
    assert classify_feature(metrics, RULES, 10, 0.0, 1000).metrics["missing_ratio"] == "warning"
    assert classify_feature(metrics, RULES, 10, 0.28, 1000).metrics["missing_ratio"] == "ok"
    verdict = classify_feature(metrics, RULES, 10, 0.2, 1000)
    assert verdict.values["missing_ratio"] == pytest.approx(0.1)
    assert verdict.metrics["missing_ratio"] == "info"


def test_no_data_is_ok() -> None:
    metrics = {"psi": math.nan, "js_distance": None, "missing_ratio": math.nan}
    verdict = classify_feature(metrics, RULES, 10, math.nan, 0)
    assert verdict.severity == "ok"
    assert "out_of_range_ratio" not in verdict.metrics
    assert "unseen_ratio" not in verdict.metrics


def test_unseen_rule() -> None:
    metrics = {"psi": 0.0, "js_distance": 0.0, "missing_ratio": 0.0, "unseen_ratio": 0.06}
    assert classify_feature(metrics, RULES, 5, 0.0, 1000).metrics["unseen_ratio"] == "warning"


def test_js_metric_can_be_divergence() -> None:
    rules = Rules(js_metric="js_divergence")
    metrics = {**QUIET, "js_distance": 0.5, "js_divergence": 0.15}
    verdict = classify_feature(metrics, rules, 10, 0.0, 1000)
    assert verdict.metrics["js_divergence"] == "info"
    assert "js_distance" not in verdict.metrics


def test_chi2_bar_raises_psi_thresholds_for_small_windows() -> None:
    rules = Rules(psi_chi2=Chi2Threshold(significance=0.01, floor=0.0))
    count, nbins = 200, 10
    bar = chi2.ppf(0.99, nbins - 1) / count  # infinite reference: SPEC §3's chi2/C
    assert bar > 0.1
    verdict = classify_feature({**QUIET, "psi": 0.105}, rules, nbins, 0.0, count)
    assert verdict.thresholds["psi"].info == pytest.approx(bar)
    assert verdict.thresholds["psi"].critical == max(0.3, bar)
    assert verdict.metrics["psi"] == "ok"
    big = classify_feature({**QUIET, "psi": 0.105}, rules, nbins, 0.0, 1_000_000)
    assert big.thresholds["psi"] == RULES.psi
    assert big.metrics["psi"] == "info"
    with_ref = classify_feature(
        {**QUIET, "psi": 0.105}, rules, nbins, 0.0, count, reference_count=count
    )
    assert with_ref.thresholds["psi"].info == pytest.approx(2 * bar)


def test_custom_thresholds() -> None:
    rules = Rules(psi=Thresholds(info=0.01, warning=0.02, critical=0.5))
    assert classify_feature({**QUIET, "psi": 0.03}, rules, 10, 0.0, 1000).severity == "warning"


def test_rank_helpers() -> None:
    assert [severity_rank(s) for s in ("ok", "info", "warning", "critical")] == [0, 1, 2, 3]
    assert max_severity(["info", "critical", "ok"]) == "critical"
    assert max_severity([]) == "ok"
    assert at_least("critical", "warning")
    assert at_least("warning", "warning")
    assert not at_least("info", "warning")
