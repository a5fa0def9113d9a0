"""Baseline profiles (the in-memory reference) and the value rules shared with the decoder."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from monitor.tables import Column

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

SCHEMA_VERSION = 1
OTHER = "__other__"
OTHER_SEEN_CAP = 10_000
DEFAULT_BINS = 10
DEFAULT_TOP_K = 50
_TEXT_TYPES = frozenset({str, type(None)})
MODEL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """A numeric feature's reference bins: K = len(edges) + 1 counts."""

    name: str
    edges: FloatArray  # inner edges, strictly increasing
    counts: IntArray  # (K,)
    min: float  # NaN when the reference has no value
    max: float
    missing: int
    rows: int
    kind: Literal["numeric"] = field(default="numeric", init=False)

    @property
    def nbins(self) -> int:
        return len(self.counts)

    @property
    def missing_ratio(self) -> float:
        return self.missing / self.rows if self.rows else math.nan


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """A categorical feature's top-k categories; counts has one more bin, ``__other__``."""

    name: str
    categories: tuple[str, ...]  # top-k, most frequent first, without __other__
    counts: IntArray  # (len(categories) + 1,), last = __other__
    other_seen: frozenset[str]  # reference categories outside the top-k (capped)
    other_truncated: bool  # other_seen hit OTHER_SEEN_CAP
    missing: int
    rows: int
    kind: Literal["categorical"] = field(default="categorical", init=False)
    _index: dict[str | None, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        index: dict[str | None, int] = {name: i for i, name in enumerate(self.categories)}
        index[None] = -1
        object.__setattr__(self, "_index", index)

    @property
    def nbins(self) -> int:
        return len(self.counts)

    @property
    def missing_ratio(self) -> float:
        return self.missing / self.rows if self.rows else math.nan

    def codes(self, values: Sequence[str | None]) -> tuple[IntArray, int]:
        """Bin codes (top-k index, K-1 for __other__, -1 for missing) and the unseen count.

        Unseen = neither a top-k category nor another reference category. When the
        reference had more than OTHER_SEEN_CAP other categories, rare reference
        categories beyond the cap also count as unseen.
        """
        other = len(self.categories)
        codes = np.fromiter(
            map(self._index.get, values, repeat(other)), dtype=np.int64, count=len(values)
        )
        is_other = codes == other
        unseen = 0
        if is_other.any():
            seen = self.other_seen
            unseen = sum(1 for value in compress(values, is_other) if value not in seen)
        return codes, unseen


Profile = NumericProfile | CategoricalProfile


@dataclass(frozen=True, eq=False)
class Baseline:
    """A loaded, validated baseline document."""

    id: str
    model: str
    features: dict[str, Profile]
    latency: dict[str, float] | None  # {"p50", "p95", "p99"} in ms
    document: dict[str, Any]


# --- value rules (SPEC §1) -------------------------------------------------------------


def category_key(value: object) -> str | None:
    """A value's category string; None for missing. ValueError for lists and objects."""
    if value is None or type(value) is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite number")
        return repr(value)
    if isinstance(value, str):
        return str(value)
    raise ValueError(f"{type(value).__name__} is not a category")


def to_numeric(column: Column) -> tuple[FloatArray, BoolArray]:
    """(values with NaN = missing, invalid mask) of a column read for a numeric feature.

    Invalid: strings that are not numbers (CSV text is parsed), lists, objects
    and non-finite numbers. An invalid value is also NaN in the values.
    """
    if column.numbers is not None:
        return column.numbers, np.zeros(len(column), dtype=bool)
    values = np.full(len(column), np.nan)
    invalid = np.zeros(len(column), dtype=bool)
    for i, value in enumerate(column.raw):
        if value is None:
            continue
        number = _number(value)
        if number is None:
            invalid[i] = True
        else:
            values[i] = number
    return values, invalid


def _number(value: object) -> float | None:
    # SPEC §1 lists strings, lists and objects as wrong types for a numeric feature;
    # booleans are not among them and count as 1/0, as the stream decoder does.
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):  # CSV text (a JSON string never reaches here as numeric)
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def to_categories(column: Column) -> tuple[list[str | None], BoolArray]:
    """(category strings with None = missing, invalid mask) for a categorical feature."""
    keys: list[str | None] = []
    invalid = np.zeros(len(column), dtype=bool)
    raw = column.raw
    if set(map(type, raw)) <= _TEXT_TYPES:
        return raw, invalid
    for i, value in enumerate(raw):
        try:
            keys.append(category_key(value))
        except ValueError:
            keys.append(None)
            invalid[i] = True
    return keys, invalid
