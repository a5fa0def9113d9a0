"""compare(): numbers checked against numpy/scipy computed here, row rules, report shape."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scipy.spatial.distance import jensenshannon

from monitor.baseline import Baseline, baseline_from_document, build_baseline
from monitor.compare import compare
from monitor.errors import InputError
from monitor.settings import Rules
from monitor.tables import Table, column_from_values, read_table

SPEC_KEYS = {
    "type",
    "reference_counts",
    "current_counts",
    "missing",
    "psi",
    "js_distance",
    "js_divergence",
    "missing_ratio",
    "out_of_range_ratio",
    "unseen_ratio",
    "severity",
}


def _table(columns: dict[str, list[Any]], models: list[Any] | None = None) -> Table:
    rows = len(next(iter(columns.values())))
    cols = {name: column_from_values(values) for name, values in columns.items()}
    return Table("test", rows, cols, models)


LEVELS = ["ok", "info", "warning", "critical"]


def _level(value: float, thresholds: tuple[float, float, float]) -> str:
    return LEVELS[sum(value >= t for t in thresholds)]


def _psi(ref: npt.ArrayLike, cur: npt.ArrayLike, alpha: float) -> float:
    r, c = np.asarray(ref, dtype=float), np.asarray(cur, dtype=float)
    p = (r + alpha) / (r.sum() + r.size * alpha)
    q = (c + alpha) / (c.sum() + c.size * alpha)
    return float(np.sum((q - p) * np.log(q / p)))


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    rng = np.random.default_rng(11)
    n_ref, n_cur = 20_000, 30_000
    ref_x = rng.normal(0, 1, n_ref)
    cur_x = rng.normal(0.5, 1.2, n_cur)
    cur_x_list: list[Any] = cur_x.tolist()
    for i in range(0, n_cur, 100):
        cur_x_list[i] = None  # 1% missing
    ref_c = rng.choice(["a", "b", "c", "d", "e"], n_ref, p=[0.4, 0.3, 0.15, 0.1, 0.05]).tolist()
    cur_c = rng.choice(["a", "b", "c", "d", "z"], n_cur, p=[0.3, 0.3, 0.2, 0.1, 0.1]).tolist()
    doc = build_baseline("m", {"x": ref_x.tolist(), "cat": ref_c}, bins=8, top_k=3)
    return {
        "ref_x": ref_x,
        "cur_x": cur_x_list,
        "ref_c": ref_c,
        "cur_c": cur_c,
        "baseline": baseline_from_document(doc),
    }


def test_numeric_feature_matches_numpy_and_scipy(data: dict[str, Any]) -> None:
    baseline: Baseline = data["baseline"]
    report = compare(baseline, _table({"x": data["cur_x"], "cat": data["cur_c"]}))
    feat = report["features"]["x"]
    assert set(feat) >= SPEC_KEYS
    edges = np.unique(np.quantile(data["ref_x"], np.arange(1, 8) / 8))
    assert feat["edges"] == edges.tolist()
    ref_counts = np.bincount(np.searchsorted(edges, data["ref_x"], side="left"), minlength=8)
    cur = np.array([np.nan if v is None else v for v in data["cur_x"]])
    present = cur[~np.isnan(cur)]
    cur_counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=8)
    assert feat["reference_counts"] == ref_counts.tolist()
    assert feat["current_counts"] == cur_counts.tolist()
    assert feat["missing"] == 300
    assert feat["psi"] == pytest.approx(_psi(ref_counts, cur_counts, 0.5), rel=1e-9)
    js = jensenshannon(ref_counts, cur_counts, base=2)
    assert feat["js_distance"] == pytest.approx(js, rel=1e-9)
    assert feat["js_divergence"] == pytest.approx(js**2, rel=1e-9)
    assert feat["missing_ratio"] == pytest.approx(300 / 30_000)
    outside = np.sum((present < data["ref_x"].min()) | (present > data["ref_x"].max()))
    assert feat["out_of_range_ratio"] == pytest.approx(outside / present.size)
    assert feat["unseen_ratio"] is None
    assert feat["type"] == "numeric"
    psi_level = _level(_psi(ref_counts, cur_counts, 0.5), (0.1, 0.2, 0.3))
    js_level = _level(js, (0.1, 0.2, 0.3))
    oor_level = _level(outside / present.size, (0.01, 0.05, 0.2))
    expected = max(psi_level, js_level, oor_level, key=LEVELS.index)
    assert expected != "ok"
    assert feat["severity"] == expected


def test_categorical_feature_matches_numpy_and_scipy(data: dict[str, Any]) -> None:
    report = compare(data["baseline"], _table({"x": data["cur_x"], "cat": data["cur_c"]}))
    feat = report["features"]["cat"]
    assert feat["type"] == "categorical"
    assert feat["categories"] == ["a", "b", "c", "__other__"]
    top = ["a", "b", "c"]

    def counts(values: list[str]) -> list[int]:
        return [values.count(c) for c in top] + [sum(v not in top for v in values)]

    ref_counts, cur_counts = counts(data["ref_c"]), counts(data["cur_c"])
    assert feat["reference_counts"] == ref_counts
    assert feat["current_counts"] == cur_counts
    assert feat["psi"] == pytest.approx(_psi(ref_counts, cur_counts, 0.5), rel=1e-9)
    js = jensenshannon(ref_counts, cur_counts, base=2)
    assert feat["js_distance"] == pytest.approx(js, rel=1e-9)
    unseen = data["cur_c"].count("z")  # "d" and "e" were seen in the reference
    assert feat["unseen_ratio"] == pytest.approx(unseen / len(data["cur_c"]))
    assert feat["out_of_range_ratio"] is None
    assert feat["metric_severities"]["unseen_ratio"] == "warning"  # ~10% unseen


def test_report_shape_and_overall_severity(data: dict[str, Any]) -> None:
    report = compare(data["baseline"], _table({"x": data["cur_x"], "cat": data["cur_c"]}))
    assert {"baseline_id", "rows", "severity", "features"} <= set(report)
    assert report["baseline_id"] == data["baseline"].id
    assert report["rows"] == 30_000
    worst = max((f["severity"] for f in report["features"].values()), key=LEVELS.index)
    assert report["severity"] == worst != "ok"
    assert report["alpha"] == 0.5
    json.dumps(report, allow_nan=False)  # NaN never leaks into the JSON


def test_identical_data_is_ok(data: dict[str, Any]) -> None:
    report = compare(data["baseline"], _table({"x": data["ref_x"].tolist(), "cat": data["ref_c"]}))
    assert report["severity"] == "ok"
    for feat in report["features"].values():
        assert feat["psi"] == pytest.approx(0.0, abs=1e-12)
        assert feat["js_distance"] == pytest.approx(0.0, abs=1e-7)


def test_invalid_absent_and_ignored(data: dict[str, Any]) -> None:
    table = _table(
        {
            "x": [0.1, "text", 0.3, math.inf, True, None],
            "extra": [1, 2, 3, 4, 5, 6],
        }
    )
    report = compare(data["baseline"], table)
    assert report["rows"] == 6
    assert report["invalid_rows"] == 2  # text, inf; a boolean counts as 1.0 (SPEC §1)
    assert report["ignored_features"] == ["extra"]
    x = report["features"]["x"]
    assert sum(x["current_counts"]) == 3
    assert x["missing"] == 1
    assert x["missing_ratio"] == pytest.approx(1 / 4)
    cat = report["features"]["cat"]  # absent from the file: missing in every valid row
    assert cat["missing"] == 4
    assert cat["missing_ratio"] == 1.0
    assert cat["psi"] is None
    assert cat["js_distance"] is None
    assert cat["unseen_ratio"] is None
    assert cat["severity"] == "critical"  # 100% missing vs 0% in the reference
    assert not x["enough_samples"]
    assert x["metric_severities"]["psi"] == "ok"  # guard: 2 values < 10 x 8 bins


def test_categorical_accepts_numbers_and_rejects_lists() -> None:
    baseline = baseline_from_document(build_baseline("m", {"c": ["1", "true", "x"] * 10}))
    report = compare(baseline, _table({"c": [1, True, "x", [1], {"a": 1}, None]}))
    assert report["invalid_rows"] == 2
    feat = report["features"]["c"]
    assert feat["categories"] == ["1", "true", "x", "__other__"]
    assert feat["current_counts"] == [1, 1, 1, 0]
    assert feat["missing"] == 1


def test_csv_text_in_numeric_feature_is_invalid(tmp_path: Path, data: dict[str, Any]) -> None:
    path = tmp_path / "in.csv"
    path.write_text("x,cat\n0.5,a\noops,b\n,c\n", encoding="utf-8")
    report = compare(data["baseline"], read_table(path))
    assert report["invalid_rows"] == 1
    assert report["features"]["x"]["missing"] == 1
    assert sum(report["features"]["x"]["current_counts"]) == 1


def test_events_of_other_models_are_skipped(data: dict[str, Any]) -> None:
    table = _table({"x": [0.1, 0.2, 0.3], "cat": ["a", "b", "c"]}, models=["m", "other", "m"])
    report = compare(data["baseline"], table)
    assert report["rows"] == 2
    assert report["other_model_rows"] == 1
    with pytest.raises(InputError, match="no events for model 'm'"):
        compare(data["baseline"], _table({"x": [0.1]}, models=["other"]))


def test_rules_change_verdicts(data: dict[str, Any]) -> None:
    table = _table({"x": data["cur_x"], "cat": data["cur_c"]})
    lenient = Rules.model_validate(
        {
            "psi": {"info": 5, "warning": 6, "critical": 7},
            "js_distance": {"info": 0.9, "warning": 0.95, "critical": 0.99},
            "unseen": {"info": 0.5, "warning": 0.6, "critical": 0.7},
            "out_of_range": {"info": 0.5, "warning": 0.6, "critical": 0.7},
        }
    )
    report = compare(data["baseline"], table, lenient)
    assert report["severity"] == "ok"
    smoothed = compare(data["baseline"], table, Rules(pseudocount=0.0))
    feat = smoothed["features"]["x"]
    p = np.array(feat["reference_counts"]) / sum(feat["reference_counts"])
    q = np.array(feat["current_counts"]) / sum(feat["current_counts"])
    assert feat["psi"] == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-9)
