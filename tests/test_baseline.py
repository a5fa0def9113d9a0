"""Baseline: bins and categories fitted as SPEC §2 says, stable ids, validated documents."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

import monitor.baseline.build as baseline_build
from monitor.baseline import (
    OTHER,
    SCHEMA_PATH,
    CategoricalProfile,
    NumericProfile,
    baseline_from_document,
    baseline_id,
    build_baseline,
    category_key,
    load_baseline,
    write_baseline,
)
from monitor.errors import BaselineError, InputError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _reference(n: int = 5000, seed: int = 3) -> dict[str, list[Any]]:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1, n).tolist()
    amount[::50] = [None] * len(amount[::50])
    return {
        "amount": amount,
        "zeros": np.where(rng.random(n) < 0.7, 0.0, rng.normal(5, 1, n)).tolist(),
        "country": rng.choice(["DE", "FR", "US", "GB"], n, p=[0.4, 0.3, 0.2, 0.1]).tolist(),
        "latency_ms": rng.gamma(2, 5, n).tolist(),
    }


def _doc(**kwargs: Any) -> dict[str, Any]:
    return build_baseline("fraud", _reference(), **kwargs)


def test_numeric_bins_follow_reference_quantiles() -> None:
    data = _reference()
    baseline = baseline_from_document(_doc(bins=10))
    amount = baseline.features["amount"]
    assert isinstance(amount, NumericProfile)
    present = np.array([x for x in data["amount"] if x is not None])
    expected_edges = np.unique(np.quantile(present, np.arange(1, 10) / 10))
    np.testing.assert_array_equal(amount.edges, expected_edges)
    expected_counts = np.bincount(
        np.searchsorted(expected_edges, present, side="left"), minlength=10
    )
    np.testing.assert_array_equal(amount.counts, expected_counts)
    assert amount.nbins == 10
    assert amount.min == present.min()
    assert amount.max == present.max()
    assert amount.missing == len(data["amount"]) - present.size
    assert amount.rows == len(data["amount"])


def test_duplicate_edges_collapse() -> None:
    zeros = baseline_from_document(_doc()).features["zeros"]
    assert isinstance(zeros, NumericProfile)
    assert zeros.nbins < 10
    assert np.all(np.diff(zeros.edges) > 0)
    assert zeros.edges[0] == 0.0
    assert zeros.counts[0] == sum(1 for x in _reference()["zeros"] if x <= 0.0)


def test_categorical_top_k_ties_and_other() -> None:
    values = ["b"] * 5 + ["a"] * 5 + ["c"] * 3 + ["d"] * 2 + ["e"] + [None, None]
    doc = build_baseline("m", {"cat": values}, top_k=3)
    profile = baseline_from_document(doc).features["cat"]
    assert isinstance(profile, CategoricalProfile)
    assert profile.categories == ("a", "b", "c")  # ties broken by name
    assert profile.counts.tolist() == [5, 5, 3, 3]
    assert profile.nbins == 4
    assert profile.other_seen == frozenset({"d", "e"})
    assert not profile.other_truncated
    assert profile.missing == 2
    codes, unseen = profile.codes(["a", "c", "d", "zzz", None, "b"])
    assert codes.tolist() == [0, 2, 3, 3, -1, 1]
    assert unseen == 1


def test_other_seen_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(baseline_build, "OTHER_SEEN_CAP", 2)
    values = ["top"] * 10 + ["r1"] * 3 + ["r2"] * 2 + ["r3"]
    profile = baseline_from_document(build_baseline("m", {"c": values}, top_k=1)).features["c"]
    assert isinstance(profile, CategoricalProfile)
    assert profile.other_seen == frozenset({"r1", "r2"})  # the most frequent of the rest
    assert profile.other_truncated
    assert profile.counts.tolist() == [10, 6]


def test_categorical_string_forms() -> None:
    assert category_key(True) == "true"
    assert category_key(False) == "false"
    assert category_key(7) == "7"
    assert category_key(2.5) == "2.5"
    assert category_key("x") == "x"
    assert category_key(None) is None
    with pytest.raises(ValueError, match="not a category"):
        category_key([1])
    doc = build_baseline("m", {"mixed": [True, "DE", 3, False, "DE"]})
    assert doc["features"]["mixed"]["type"] == "categorical"
    assert doc["features"]["mixed"]["categories"] == ["DE", "3", "false", "true"]


def test_lists_in_reference_are_rejected() -> None:
    with pytest.raises(InputError, match=r"feature 'x' row 2"):
        build_baseline("m", {"x": ["a", [1], "b"]})


def test_latency_quantiles() -> None:
    data = _reference()
    doc = _doc()
    assert "latency_ms" not in doc["features"]
    expected = np.quantile(data["latency_ms"], [0.5, 0.95, 0.99])
    assert [doc["latency_ms"][q] for q in ("p50", "p95", "p99")] == pytest.approx(expected)
    assert baseline_from_document(doc).latency == doc["latency_ms"]
    assert build_baseline("m", {"a": [1.0, 2.0]})["latency_ms"] is None


def test_id_is_stable_and_content_addressed() -> None:
    first = _doc(created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    second = _doc(created_at=dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    assert first["created_at"] != second["created_at"]
    assert first["id"] == second["id"]
    assert first["id"].startswith("sha256:")
    assert first["id"] == baseline_id(first)
    assert _doc(bins=5)["id"] != first["id"]
    assert build_baseline("fraud", _reference(seed=4))["id"] != first["id"]


def test_write_and_load_round_trip(tmp_path: Path) -> None:
    doc = _doc()
    path = tmp_path / "b.json"
    write_baseline(doc, path)
    loaded = load_baseline(path)
    assert loaded.id == doc["id"]
    assert loaded.model == "fraud"
    assert loaded.document == doc
    assert set(loaded.features) == {"amount", "zeros", "country"}


def test_shipped_example_baseline_loads_and_fits_schema() -> None:
    path = ROOT / "config" / "baselines" / "fraud.json"
    baseline = load_baseline(path)
    assert baseline.model == "fraud"
    assert "__prediction__" in baseline.features
    jsonschema.validate(json.loads(path.read_text(encoding="utf-8")), SCHEMA)


def test_schema_accepts_built_documents() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(_doc(), SCHEMA)
    jsonschema.validate(build_baseline("m", {"only_missing": [None, None]}), SCHEMA)


def _set(path: str, value: Any) -> Any:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return mutate


_DELETE = object()

# Broken documents that both the JSON Schema and the loader reject (the id is recomputed
# after the change, so each case fails for its own reason, not the hash).
SCHEMA_AND_LOADER = [
    ("schema_version", _set("schema_version", 2)),
    ("model", _set("model", "bad model!")),
    ("features", _set("features", {})),
    ("features.amount.type", _set("features.amount.type", "text")),
    ("features.amount.counts", _set("features.amount.counts", [1, -1])),
    ("features.amount.edges", _set("features.amount.edges", ["x"])),
    ("features.country.categories", _set("features.country.categories", ["DE", OTHER, "US"])),
    ("features.country.other_truncated", _set("features.country.other_truncated", "no")),
    ("features.amount.missing", _set("features.amount.missing", _DELETE)),
    ("latency_ms.p99", _set("latency_ms.p99", -1.0)),
    ("rows", _set("rows", 1.5)),
]

# Cross-field rules only the loader can check.
LOADER_ONLY = [
    ("features.amount.edges", _set("features.amount.edges", [3.0, 2.0, *range(7)])),
    ("features.amount.counts", _set("features.amount.counts", [1, 2, 3])),
    ("features.country.counts", _set("features.country.counts", [1, 2])),
    ("features.amount.rows", _set("features.amount.rows", 3)),
]


@pytest.mark.parametrize(("field", "mutate"), SCHEMA_AND_LOADER)
def test_schema_and_loader_reject(field: str, mutate: Any) -> None:
    doc = copy.deepcopy(_doc())
    mutate(doc)
    doc["id"] = baseline_id(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA)
    with pytest.raises(BaselineError, match=field.replace(".", r"\.")):
        baseline_from_document(doc)


@pytest.mark.parametrize(("field", "mutate"), LOADER_ONLY)
def test_loader_checks_cross_field_rules(field: str, mutate: Any) -> None:
    doc = copy.deepcopy(_doc())
    mutate(doc)
    doc["id"] = baseline_id(doc)
    with pytest.raises(BaselineError, match=field.replace(".", r"\.")):
        baseline_from_document(doc)


def test_tampered_document_fails_id_check() -> None:
    doc = _doc()
    doc["features"]["amount"]["counts"][0] += 1
    doc["features"]["amount"]["missing"] -= 1
    with pytest.raises(BaselineError, match="does not match the content"):
        baseline_from_document(doc)


def test_load_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="cannot read baseline"):
        load_baseline(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1,\n', encoding="utf-8")
    with pytest.raises(BaselineError, match=r"line \d+: not valid JSON"):
        load_baseline(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text("[]", encoding="utf-8")
    with pytest.raises(BaselineError, match="must be a JSON object"):
        load_baseline(wrong)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"bins": 0}, "--bins"), ({"top_k": 0}, "--top-k")],
)
def test_build_rejects_bad_parameters(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_baseline("m", {"a": [1.0]}, **kwargs)


def test_build_rejects_bad_model_and_empty_input() -> None:
    with pytest.raises(InputError, match="model name"):
        build_baseline("no spaces", {"a": [1.0]})
    with pytest.raises(InputError, match="no feature columns"):
        build_baseline("m", {"latency_ms": [1.0]})
