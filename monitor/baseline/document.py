"""Baseline documents: write, load and validate (`driftmon baseline show`, the daemon)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from monitor.baseline.build import baseline_id
from monitor.baseline.profiles import (
    MODEL_CHARS,
    OTHER,
    SCHEMA_VERSION,
    Baseline,
    CategoricalProfile,
    NumericProfile,
    Profile,
)
from monitor.errors import BaselineError

SCHEMA_PATH = Path(__file__).parent.parent / "schemas" / "baseline.schema.json"

# --- load / write --------------------------------------------------------------------------


def write_baseline(doc: Mapping[str, Any], path: Path | str) -> None:
    """Write the document as indented JSON (OSError is the caller's to report)."""
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


def load_baseline(path: Path | str) -> Baseline:
    """Read and validate a baseline file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BaselineError(f"baseline {path} is not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline {path} line {exc.lineno}: not valid JSON") from None
    try:
        return baseline_from_document(doc)
    except BaselineError as exc:
        raise BaselineError(f"baseline {path}: {exc}") from None


def baseline_from_document(doc: Any) -> Baseline:
    """Validate a document (the rules of baseline.schema.json) and build the profiles."""
    _check(isinstance(doc, dict), "", "must be a JSON object")
    version = doc.get("schema_version")
    _check(
        version == SCHEMA_VERSION, "schema_version", f"must be {SCHEMA_VERSION}, got {version!r}"
    )
    model = doc.get("model")
    _check(
        isinstance(model, str) and 1 <= len(model) <= 64 and set(model) <= MODEL_CHARS,
        "model",
        "must be 1-64 chars of [A-Za-z0-9_.-]",
    )
    rows = doc.get("rows")
    _check(_is_count(rows), "rows", "must be a non-negative integer")
    features = doc.get("features")
    _check(isinstance(features, dict) and features, "features", "must be a non-empty object")
    profiles: dict[str, Profile] = {}
    for name, spec in features.items():
        profiles[name] = _profile(name, spec, rows)
    latency = _latency(doc.get("latency_ms"))
    expected = baseline_id(doc)
    given = doc.get("id")
    _check(isinstance(given, str), "id", "is missing (expected 'sha256:<hex>')")
    _check(
        given == expected,
        "id",
        f"{given!r} does not match the content ({expected}); was the file edited by hand?",
    )
    return Baseline(expected, model, profiles, latency, doc)


def _check(ok: Any, where: str, message: str) -> None:
    if not ok:
        raise BaselineError(f"{where} {message}" if where else message)


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _profile(name: str, spec: Any, rows: int) -> Profile:
    where = f"features.{name}"
    _check(isinstance(spec, dict), where, "must be an object")
    kind = spec.get("type")
    counts = spec.get("counts")
    missing = spec.get("missing")
    _check(
        isinstance(counts, list) and all(map(_is_count, counts)),
        f"{where}.counts",
        "must be a list of non-negative integers",
    )
    _check(_is_count(missing), f"{where}.missing", "must be a non-negative integer")
    _check(spec.get("rows") == rows, f"{where}.rows", f"must equal the document's rows ({rows})")
    _check(sum(counts) + missing == rows, f"{where}.counts", "plus missing must add up to rows")
    if kind == "numeric":
        edges = spec.get("edges")
        _check(
            isinstance(edges, list) and all(map(_is_number, edges)),
            f"{where}.edges",
            "must be a list of finite numbers",
        )
        _check(
            all(a < b for a, b in pairwise(edges)),
            f"{where}.edges",
            "must be strictly increasing",
        )
        _check(len(counts) == len(edges) + 1, f"{where}.counts", "must have len(edges) + 1 bins")
        lo, hi = spec.get("min"), spec.get("max")
        empty = lo is None and hi is None
        _check(
            empty or (_is_number(lo) and _is_number(hi) and lo <= hi),
            f"{where}.min",
            "and max must be finite numbers with min <= max (or both null)",
        )
        return NumericProfile(
            name=name,
            edges=np.asarray(edges, dtype=np.float64),
            counts=np.asarray(counts, dtype=np.int64),
            min=math.nan if lo is None else float(lo),
            max=math.nan if hi is None else float(hi),
            missing=missing,
            rows=rows,
        )
    if kind == "categorical":
        categories = spec.get("categories")
        other_seen = spec.get("other_seen", [])
        _check(
            isinstance(categories, list) and all(type(c) is str for c in categories),
            f"{where}.categories",
            "must be a list of strings",
        )
        _check(
            len(set(categories)) == len(categories) and OTHER not in categories,
            f"{where}.categories",
            f"must be unique and must not include {OTHER}",
        )
        _check(
            len(counts) == len(categories) + 1,
            f"{where}.counts",
            f"must have len(categories) + 1 bins (the last is {OTHER})",
        )
        _check(
            isinstance(other_seen, list) and all(type(c) is str for c in other_seen),
            f"{where}.other_seen",
            "must be a list of strings",
        )
        truncated = spec.get("other_truncated", False)
        _check(type(truncated) is bool, f"{where}.other_truncated", "must be true or false")
        return CategoricalProfile(
            name=name,
            categories=tuple(categories),
            counts=np.asarray(counts, dtype=np.int64),
            other_seen=frozenset(other_seen),
            other_truncated=truncated,
            missing=missing,
            rows=rows,
        )
    raise BaselineError(f"{where}.type must be 'numeric' or 'categorical', got {kind!r}")


def _latency(spec: Any) -> dict[str, float] | None:
    if spec is None:
        return None
    _check(isinstance(spec, dict), "latency_ms", "must be an object or null")
    out: dict[str, float] = {}
    for key in ("p50", "p95", "p99"):
        value = spec.get(key)
        _check(_is_number(value) and value >= 0, f"latency_ms.{key}", "must be a number >= 0")
        out[key] = float(value)
    return out
