"""Bucket hashes as arrays: the read side of `monitor.window.accumulate` (pure).

A bucket hash (`n`, `f:<feature>:<bin|m|o|u>`, `l:<i>`, `x:<reason>`, `ign`) becomes a
`Counts` laid out like the model's schema; windows are sums of `Counts`. Unknown fields
(a feature dropped from the baseline, a bin past the edges) are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.decode import ModelSchema
from monitor.kernels import N_BUCKETS

IntArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class Counts:
    """Counts of one bucket or a sum of buckets, laid out like the model's schema."""

    events: int
    numeric: IntArray  # (F_num, K_max)
    numeric_missing: IntArray
    numeric_oor: IntArray
    categorical: list[IntArray]
    categorical_missing: IntArray
    unseen: IntArray
    latency: IntArray
    invalid: int

    @classmethod
    def zeros(cls, schema: ModelSchema) -> Counts:
        return cls(
            events=0,
            numeric=np.zeros((len(schema.numeric), schema.edges.shape[1] + 1), dtype=np.int64),
            numeric_missing=np.zeros(len(schema.numeric), dtype=np.int64),
            numeric_oor=np.zeros(len(schema.numeric), dtype=np.int64),
            categorical=[np.zeros(p.nbins, dtype=np.int64) for p in schema.categorical],
            categorical_missing=np.zeros(len(schema.categorical), dtype=np.int64),
            unseen=np.zeros(len(schema.categorical), dtype=np.int64),
            latency=np.zeros(N_BUCKETS, dtype=np.int64),
            invalid=0,
        )

    def add(self, other: Counts) -> None:
        self.events += other.events
        self.numeric += other.numeric
        self.numeric_missing += other.numeric_missing
        self.numeric_oor += other.numeric_oor
        for j, theirs in enumerate(other.categorical):
            self.categorical[j] += theirs
        self.categorical_missing += other.categorical_missing
        self.unseen += other.unseen
        self.latency += other.latency
        self.invalid += other.invalid


def parse_bucket(schema: ModelSchema, fields: Mapping[str, int]) -> Counts:
    """A bucket hash (see `monitor.window.accumulate`) as arrays. Unknown fields are skipped."""
    counts = Counts.zeros(schema)
    numeric = {p.name: j for j, p in enumerate(schema.numeric)}
    categorical = {p.name: j for j, p in enumerate(schema.categorical)}
    for field, value in fields.items():
        kind, _, rest = field.partition(":")
        if kind == "n":
            counts.events += value
        elif kind == "f":
            name, _, slot = rest.rpartition(":")
            if name in numeric:
                _add_numeric(counts, numeric[name], slot, value)
            elif name in categorical:
                _add_categorical(counts, categorical[name], slot, value)
        elif kind == "l" and rest.isdigit() and int(rest) < N_BUCKETS:
            counts.latency[int(rest)] += value
        elif kind == "x":
            counts.invalid += value
    return counts


def _add_numeric(counts: Counts, j: int, slot: str, value: int) -> None:
    if slot == "m":
        counts.numeric_missing[j] += value
    elif slot == "o":
        counts.numeric_oor[j] += value
    elif slot.isdigit() and int(slot) < counts.numeric.shape[1]:
        counts.numeric[j, int(slot)] += value


def _add_categorical(counts: Counts, j: int, slot: str, value: int) -> None:
    if slot == "m":
        counts.categorical_missing[j] += value
    elif slot == "u":
        counts.unseen[j] += value
    elif slot.isdigit() and int(slot) < counts.categorical[j].size:
        counts.categorical[j][int(slot)] += value
