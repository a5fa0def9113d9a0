"""Bucket hashes as arrays: the read side of `monitor.window.accumulate` (pure).

A bucket hash (`n`, `f:<feature>:<bin|m|o|u>`, `l:<i>`, `x:<reason>`, `ign`) becomes a
`Counts` laid out like the model's schema; windows are sums of `Counts`. Unknown fields
(a feature dropped from the baseline, a bin past the edges) are skipped.

Every `Counts` is one flat int64 vector; its fields (`numeric`, `latency`, ...) are views
into it, so a window sum is one vector addition. `Layout` fixes where each field lives
for a schema and maps every field name the writer can produce to its slot, so parsing a
hash is a lookup per field and a scatter-add, with no string splitting: `parse_bucket`
for a decoded hash, `parse_raw` (one numba pass, `monitor.window.raw_hash`) for the
HGETALL reply the evaluator reads as Redis sent it. Names outside the map go through the
hash's grammar (`Layout.slot_of`), so odd spellings count as they always did.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import numpy.typing as npt

from monitor.decode import ModelSchema, Reason
from monitor.kernels import N_BUCKETS
from monitor.window.raw_hash import SlotTable, scatter_resp

IntArray = npt.NDArray[np.int64]
SlotArray = npt.NDArray[np.intp]

EVENTS = 0  # slot of `n`
INVALID = 1  # slot of every `x:<reason>`
SKIP = -1  # a field that is known but not counted (`ign`) or unknown


@dataclass(frozen=True)
class Layout:
    """Where each field of a schema's `Counts` lives in the flat vector.

    [events, invalid, numeric (F_num x K) row-major, numeric missing (F_num), numeric
    out-of-range (F_num), categorical bins (concatenated), categorical missing (F_cat),
    unseen (F_cat), latency (N_BUCKETS)]
    """

    numeric_names: tuple[str, ...]
    k: int  # bins per numeric row (the widest numeric feature)
    categorical_names: tuple[str, ...]
    categorical_sizes: tuple[int, ...]

    @property
    def n_numeric(self) -> int:
        return len(self.numeric_names)

    @property
    def n_categorical(self) -> int:
        return len(self.categorical_names)

    @cached_property
    def numeric_at(self) -> int:
        return 2

    @cached_property
    def numeric_missing_at(self) -> int:
        return self.numeric_at + self.n_numeric * self.k

    @cached_property
    def numeric_oor_at(self) -> int:
        return self.numeric_missing_at + self.n_numeric

    @cached_property
    def categorical_at(self) -> int:
        return self.numeric_oor_at + self.n_numeric

    @cached_property
    def categorical_offsets(self) -> tuple[int, ...]:
        """Start of each categorical feature's bins, plus the end of the last one."""
        return tuple(np.cumsum((self.categorical_at, *self.categorical_sizes)).tolist())

    @cached_property
    def categorical_missing_at(self) -> int:
        return self.categorical_offsets[-1]

    @cached_property
    def unseen_at(self) -> int:
        return self.categorical_missing_at + self.n_categorical

    @cached_property
    def latency_at(self) -> int:
        return self.unseen_at + self.n_categorical

    @cached_property
    def size(self) -> int:
        return self.latency_at + N_BUCKETS

    @cached_property
    def slots(self) -> dict[str, int]:
        """Every field name the writer produces for this schema -> its slot (or SKIP)."""
        out: dict[str, int] = {"n": EVENTS, "ign": SKIP}
        out.update({f"x:{reason.value}": INVALID for reason in Reason})
        for j, name in enumerate(self.numeric_names):
            row = self.numeric_at + j * self.k
            out.update({f"f:{name}:{i}": row + i for i in range(self.k)})
            out[f"f:{name}:m"] = self.numeric_missing_at + j
            out[f"f:{name}:o"] = self.numeric_oor_at + j
        for j, name in enumerate(self.categorical_names):
            row = self.categorical_offsets[j]
            out.update({f"f:{name}:{i}": row + i for i in range(self.categorical_sizes[j])})
            out[f"f:{name}:m"] = self.categorical_missing_at + j
            out[f"f:{name}:u"] = self.unseen_at + j
        out.update({f"l:{i}": self.latency_at + i for i in range(N_BUCKETS)})
        return out

    @cached_property
    def slot_table(self) -> SlotTable:
        """`slots` for the one-pass parser of raw replies."""
        return SlotTable.build([(name.encode(), slot) for name, slot in self.slots.items()])

    @cached_property
    def _numeric_index(self) -> dict[str, int]:
        return {name: j for j, name in enumerate(self.numeric_names)}

    @cached_property
    def _categorical_index(self) -> dict[str, int]:
        return {name: j for j, name in enumerate(self.categorical_names)}

    def slot_of(self, field: str) -> int:
        """The slot of any field name by the hash's grammar; SKIP for unknown ones.

        Agrees with `slots` on every name there; also accepts spellings no writer
        produces (``f:x:01``, ``n:...``, any ``x:<reason>``).
        """
        kind, _, rest = field.partition(":")
        if kind == "n":
            return EVENTS
        if kind == "x":
            return INVALID
        if kind == "l":
            if rest.isdigit() and int(rest) < N_BUCKETS:
                return self.latency_at + int(rest)
            return SKIP
        if kind != "f":
            return SKIP
        name, _, slot = rest.rpartition(":")
        if name in self._numeric_index:
            j = self._numeric_index[name]
            if slot == "m":
                return self.numeric_missing_at + j
            if slot == "o":
                return self.numeric_oor_at + j
            if slot.isdigit() and int(slot) < self.k:
                return self.numeric_at + j * self.k + int(slot)
        elif name in self._categorical_index:
            j = self._categorical_index[name]
            if slot == "m":
                return self.categorical_missing_at + j
            if slot == "u":
                return self.unseen_at + j
            if slot.isdigit() and int(slot) < self.categorical_sizes[j]:
                return self.categorical_offsets[j] + int(slot)
        return SKIP


def layout_of(schema: ModelSchema) -> Layout:
    """The (cached) layout of a schema's counts."""
    return _layout(
        tuple(p.name for p in schema.numeric),
        int(schema.edges.shape[1]) + 1,
        tuple(p.name for p in schema.categorical),
        tuple(p.nbins for p in schema.categorical),
    )


@lru_cache(maxsize=256)
def _layout(
    numeric: tuple[str, ...], k: int, categorical: tuple[str, ...], sizes: tuple[int, ...]
) -> Layout:
    return Layout(numeric, k, categorical, sizes)


class Counts:
    """Counts of one bucket or a sum of buckets, laid out like the model's schema.

    Every array attribute is a view into `flat`; assigning to one copies into the view.
    """

    __slots__ = (
        "_categorical",
        "_categorical_missing",
        "_latency",
        "_numeric",
        "_numeric_missing",
        "_numeric_oor",
        "_unseen",
        "flat",
        "layout",
    )

    def __init__(self, layout: Layout, flat: IntArray | None = None) -> None:
        if flat is None:
            flat = np.zeros(layout.size, dtype=np.int64)
        if flat.shape != (layout.size,) or flat.dtype != np.int64:
            raise ValueError(f"flat counts must be int64 of length {layout.size}")
        self.layout = layout
        self.flat = flat
        lay = layout
        self._numeric = flat[lay.numeric_at : lay.numeric_missing_at].reshape(lay.n_numeric, lay.k)
        self._numeric_missing = flat[lay.numeric_missing_at : lay.numeric_oor_at]
        self._numeric_oor = flat[lay.numeric_oor_at : lay.categorical_at]
        offsets = lay.categorical_offsets
        self._categorical = [flat[a:b] for a, b in itertools.pairwise(offsets)]
        self._categorical_missing = flat[lay.categorical_missing_at : lay.unseen_at]
        self._unseen = flat[lay.unseen_at : lay.latency_at]
        self._latency = flat[lay.latency_at :]

    @classmethod
    def zeros(cls, schema: ModelSchema) -> Counts:
        return cls(layout_of(schema))

    @property
    def events(self) -> int:
        return int(self.flat[EVENTS])

    @events.setter
    def events(self, value: int) -> None:
        self.flat[EVENTS] = value

    @property
    def invalid(self) -> int:
        return int(self.flat[INVALID])

    @invalid.setter
    def invalid(self, value: int) -> None:
        self.flat[INVALID] = value

    @property
    def numeric(self) -> IntArray:
        """(F_num, K) bin counts."""
        return self._numeric

    @numeric.setter
    def numeric(self, value: IntArray) -> None:
        self._numeric[...] = value

    @property
    def numeric_missing(self) -> IntArray:
        return self._numeric_missing

    @numeric_missing.setter
    def numeric_missing(self, value: IntArray) -> None:
        self._numeric_missing[...] = value

    @property
    def numeric_oor(self) -> IntArray:
        return self._numeric_oor

    @numeric_oor.setter
    def numeric_oor(self, value: IntArray) -> None:
        self._numeric_oor[...] = value

    @property
    def categorical(self) -> list[IntArray]:
        """Per categorical feature, its bin counts (views: add in place)."""
        return self._categorical

    @property
    def categorical_missing(self) -> IntArray:
        return self._categorical_missing

    @categorical_missing.setter
    def categorical_missing(self, value: IntArray) -> None:
        self._categorical_missing[...] = value

    @property
    def unseen(self) -> IntArray:
        return self._unseen

    @unseen.setter
    def unseen(self, value: IntArray) -> None:
        self._unseen[...] = value

    @property
    def latency(self) -> IntArray:
        return self._latency

    @latency.setter
    def latency(self, value: IntArray) -> None:
        self._latency[...] = value

    def add(self, other: Counts) -> None:
        if other.layout is not self.layout and other.layout != self.layout:
            raise ValueError("counts of different layouts cannot be added")
        self.flat += other.flat


def parse_bucket(schema: ModelSchema, fields: Mapping[str, int]) -> Counts:
    """A bucket hash (see `monitor.window.accumulate`) as arrays. Unknown fields are skipped."""
    layout = layout_of(schema)
    get = layout.slots.get
    slots = [get(name) for name in fields]
    if None in slots:  # spellings outside the map: the grammar decides
        slots = [layout.slot_of(n) if s is None else s for n, s in zip(fields, slots, strict=True)]
    values = np.fromiter(fields.values(), dtype=np.int64, count=len(fields))
    return Counts(layout, _scatter(layout, np.array(slots, dtype=np.intp), values))


def parse_raw(layout: Layout, raw: bytes) -> IntArray | None:
    """The flat counts of an HGETALL reply as Redis sent it; None for no fields (there is
    no such hash). Same rules as `parse_bucket`; ValueError if `raw` is not such a reply.
    """
    flat = np.zeros(layout.size, dtype=np.int64)
    fields, unknown = scatter_resp(layout.slot_table, raw, flat)
    for name, value in unknown:
        slot = _slot_of_bytes(layout, name)
        if slot >= 0:
            flat[slot] += value
    return flat if fields else None


def _slot_of_bytes(layout: Layout, name: bytes) -> int:
    try:
        return layout.slot_of(name.decode())
    except UnicodeDecodeError:
        return SKIP


def _scatter(layout: Layout, slots: SlotArray, values: IntArray) -> IntArray:
    flat = np.zeros(layout.size, dtype=np.int64)
    keep = slots >= 0
    np.add.at(flat, slots[keep], values[keep])
    return flat


def sum_flat(layout: Layout, parts: Iterable[IntArray]) -> Counts:
    """The sum of flat count vectors as a `Counts`."""
    total = np.zeros(layout.size, dtype=np.int64)
    for part in parts:
        total += part
    return Counts(layout, total)
