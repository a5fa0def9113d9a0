"""Fit a baseline document from reference columns (`driftmon baseline build`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from monitor.baseline.profiles import (
    DEFAULT_BINS,
    DEFAULT_TOP_K,
    MODEL_CHARS,
    OTHER_SEEN_CAP,
    SCHEMA_VERSION,
    FloatArray,
    to_categories,
    to_numeric,
)
from monitor.errors import InputError
from monitor.kernels import bin_numeric
from monitor.tables import LATENCY, Column, Table, column_from_values

# --- build ---------------------------------------------------------------------------------


def build_baseline(
    model: str,
    columns: Table | Mapping[str, Column | Sequence[Any]],
    *,
    bins: int = DEFAULT_BINS,
    top_k: int = DEFAULT_TOP_K,
    source: str | None = None,
    created_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Fit a baseline document from reference columns (a `Table` or name -> values).

    A column is numeric when every present value is a finite number (not a boolean),
    else categorical. A ``latency_ms`` column gives the latency quantiles instead of a
    feature. Lists or objects as values raise InputError (a reference must be clean).
    """
    _check_model(model)
    if bins < 1:
        raise InputError(f"--bins must be at least 1, got {bins}")
    if top_k < 1:
        raise InputError(f"--top-k must be at least 1, got {top_k}")
    if isinstance(columns, Table):
        source = source if source is not None else columns.source
        columns = columns.columns
    cols = {
        name: col if isinstance(col, Column) else column_from_values(col)
        for name, col in columns.items()
    }
    latency_col = cols.pop(LATENCY, None)
    if not cols:
        raise InputError("the reference has no feature columns")
    lengths = {len(col) for col in cols.values()}
    if len(lengths) != 1:
        raise InputError("reference columns have different lengths")
    rows = lengths.pop()
    if rows == 0:
        raise InputError("the reference has no rows")
    features: dict[str, Any] = {}
    for name in sorted(cols):
        col = cols[name]
        if col.numbers is not None:
            features[name] = _numeric_document(col.numbers, bins)
        else:
            features[name] = _categorical_document(name, col, top_k)
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "created_at": _timestamp(created_at or dt.datetime.now(dt.UTC)),
        "source": source,
        "rows": rows,
        "params": {"bins": bins, "top_k": top_k},
        "features": features,
        "latency_ms": _latency_document(latency_col),
    }
    doc["id"] = baseline_id(doc)
    return doc


def _numeric_document(values: FloatArray, bins: int) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    if present.size:
        edges = np.unique(np.quantile(present, np.arange(1, bins) / bins))
        lo, hi = float(present.min()), float(present.max())
    else:
        edges, lo, hi = np.empty(0), math.nan, math.nan
    counts = bin_numeric(present, edges).counts[0]
    return {
        "type": "numeric",
        "edges": edges.tolist(),
        "counts": counts.tolist(),
        "min": None if math.isnan(lo) else lo,
        "max": None if math.isnan(hi) else hi,
        "missing": int(values.size - present.size),
        "rows": int(values.size),
    }


def _categorical_document(name: str, column: Column, top_k: int) -> dict[str, Any]:
    keys, invalid = to_categories(column)
    if invalid.any():
        row = int(np.argmax(invalid)) + 1
        raise InputError(f"feature {name!r} row {row}: lists and objects are not feature values")
    tally = Counter(key for key in keys if key is not None)
    ranked = sorted(tally.items(), key=lambda item: (-item[1], item[0]))
    top, rest = ranked[:top_k], ranked[top_k:]
    others = sorted(key for key, _ in rest[:OTHER_SEEN_CAP])
    missing = len(keys) - sum(tally.values())
    return {
        "type": "categorical",
        "categories": [key for key, _ in top],
        "counts": [count for _, count in top] + [sum(count for _, count in rest)],
        "other_seen": others,
        "other_truncated": len(rest) > OTHER_SEEN_CAP,
        "missing": missing,
        "rows": len(keys),
    }


def _latency_document(column: Column | None) -> dict[str, float] | None:
    if column is None:
        return None
    values, invalid = to_numeric(column)
    values = values[~np.isnan(values)]
    if invalid.any() or (values < 0).any():
        raise InputError("latency_ms must hold non-negative numbers")
    if values.size == 0:
        return None
    p50, p95, p99 = np.quantile(values, [0.5, 0.95, 0.99]).tolist()
    return {"p50": p50, "p95": p95, "p99": p99}


def _timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_model(model: str) -> None:
    if not 1 <= len(model) <= 64 or not set(model) <= MODEL_CHARS:
        raise InputError(f"model name {model!r} must be 1-64 chars of [A-Za-z0-9_.-]")


def baseline_id(doc: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical JSON of `doc` without ``id`` and ``created_at``."""
    content = {key: value for key, value in doc.items() if key not in ("id", "created_at")}
    canonical = json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
