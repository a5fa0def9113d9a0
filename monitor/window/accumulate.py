"""Accumulate count deltas per (model, bucket) in memory between flushes (pure).

Columns of decoded events are binned with the kernels and added to numpy accumulators;
`fields()` renders one bucket's deltas as Redis hash fields (only non-zero ones):

    n                 valid events
    f:<feature>:<i>   count in bin i          f:<feature>:m   missing values
    f:<feature>:o     out of reference range  f:<feature>:u   unseen categories
    l:<i>             latency histogram bucket i (monitor.kernels.latency)
    x:<reason>        invalid events of this model, by reason
    ign               feature values not in the baseline (ignored)

Feature names may contain ':'; readers split on the last ':' only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from monitor.decode import Columns, ModelSchema, Reason
from monitor.kernels import bin_matrix, count_codes, insert_latencies, new_histogram
from monitor.window.buckets import bucket_starts

IntArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class BucketCounts:
    """Deltas of one model's bucket since the last flush."""

    schema: ModelSchema
    events: int = 0
    numeric: IntArray = field(init=False)
    numeric_missing: IntArray = field(init=False)
    numeric_oor: IntArray = field(init=False)
    categorical: list[IntArray] = field(init=False)
    categorical_missing: IntArray = field(init=False)
    unseen: IntArray = field(init=False)
    latency: IntArray = field(init=False)
    invalid: Counter[str] = field(default_factory=Counter)
    ignored: int = 0

    def __post_init__(self) -> None:
        s = self.schema
        self.numeric = np.zeros((len(s.numeric), s.edges.shape[1] + 1), dtype=np.int64)
        self.numeric_missing = np.zeros(len(s.numeric), dtype=np.int64)
        self.numeric_oor = np.zeros(len(s.numeric), dtype=np.int64)
        self.categorical = [np.zeros(p.nbins, dtype=np.int64) for p in s.categorical]
        self.categorical_missing = np.zeros(len(s.categorical), dtype=np.int64)
        self.unseen = np.zeros(len(s.categorical), dtype=np.int64)
        self.latency = new_histogram()

    def add(self, cols: Columns, rows: npt.NDArray[np.intp] | slice) -> None:
        """Add the given rows of `cols`."""
        numeric = cols.numeric[rows]
        self.events += numeric.shape[0]
        if self.schema.numeric:
            binned = bin_matrix(numeric, self.schema.edges, self.schema.lo, self.schema.hi)
            self.numeric += binned.counts
            self.numeric_missing += binned.missing
            self.numeric_oor += binned.out_of_range
        for j, profile in enumerate(self.schema.categorical):
            counts, missing = count_codes(cols.codes[j][rows], profile.nbins)
            self.categorical[j] += counts
            self.categorical_missing[j] += missing
            self.unseen[j] += int(np.count_nonzero(cols.unseen[j][rows]))
        insert_latencies(self.latency, cols.latency_ms[rows])

    def fields(self) -> dict[str, int]:
        """Non-zero deltas as Redis hash fields."""
        out: dict[str, int] = {}
        if self.events:
            out["n"] = self.events
        for j, profile in enumerate(self.schema.numeric):
            _put_bins(out, profile.name, self.numeric[j, : profile.nbins])
            _put(out, f"f:{profile.name}:m", self.numeric_missing[j])
            _put(out, f"f:{profile.name}:o", self.numeric_oor[j])
        for j, cprofile in enumerate(self.schema.categorical):
            _put_bins(out, cprofile.name, self.categorical[j])
            _put(out, f"f:{cprofile.name}:m", self.categorical_missing[j])
            _put(out, f"f:{cprofile.name}:u", self.unseen[j])
        for i in np.flatnonzero(self.latency):
            out[f"l:{i}"] = int(self.latency[i])
        for reason, count in self.invalid.items():
            out[f"x:{reason}"] = count
        _put(out, "ign", self.ignored)
        return out


def _put(out: dict[str, int], key: str, value: np.integer | int) -> None:
    if value:
        out[key] = int(value)


def _put_bins(out: dict[str, int], name: str, counts: IntArray) -> None:
    for i in np.flatnonzero(counts):
        out[f"f:{name}:{i}"] = int(counts[i])


@dataclass(slots=True)
class Accumulator:
    """All deltas since the last flush, per model and bucket start."""

    bucket_seconds: int
    buckets: dict[str, dict[int, BucketCounts]] = field(default_factory=dict)
    pending_events: int = 0

    def add_columns(
        self, schema: ModelSchema, cols: Columns, late_before: float, now: float, grace: float
    ) -> int:
        """Add a model's columns; returns how many events were late (and dropped)."""
        times = cols.times
        late = times < late_before
        n_late = int(np.count_nonzero(late))
        times = np.where(times > now + grace, now, times)  # clock-skewed producers
        starts = bucket_starts(times, self.bucket_seconds)
        per_model = self.buckets.setdefault(schema.model, {})
        valid = ~late
        for start in np.unique(starts[valid]):
            rows = np.flatnonzero(valid & (starts == start))
            bucket = per_model.get(int(start))
            if bucket is None:
                bucket = per_model[int(start)] = BucketCounts(schema)
            bucket.add(cols, rows)
        if cols.ignored_features:
            self._any_bucket(schema, now).ignored += cols.ignored_features
        self.pending_events += len(times)
        return n_late

    def add_invalid(self, schema: ModelSchema, reason: Reason, when: float, count: int = 1) -> None:
        """Count invalid events of a known model (by message time)."""
        bucket = self._bucket(schema, int(when // self.bucket_seconds) * self.bucket_seconds)
        bucket.invalid[reason.value] += count
        self.pending_events += count

    def _any_bucket(self, schema: ModelSchema, now: float) -> BucketCounts:
        per_model = self.buckets.get(schema.model)
        if per_model:
            return per_model[max(per_model)]
        return self._bucket(schema, int(now // self.bucket_seconds) * self.bucket_seconds)

    def _bucket(self, schema: ModelSchema, start: int) -> BucketCounts:
        per_model = self.buckets.setdefault(schema.model, {})
        bucket = per_model.get(start)
        if bucket is None:
            bucket = per_model[start] = BucketCounts(schema)
        return bucket

    def clear(self) -> None:
        self.buckets.clear()
        self.pending_events = 0
