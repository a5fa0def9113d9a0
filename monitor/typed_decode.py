"""The typed fast path of decoding: message bytes straight into per-model structs (pure).

`monitor.decode` decodes any event into a generic `Event` whose features are a dict, and
pulls columns out of the dicts value by value. Most traffic is more regular than that:
every event belongs to a tracked model and carries only that model's baseline features,
with numbers for numeric features and strings (or numbers/booleans) for categorical ones.
For such messages `TypedDecoder` decodes into one struct class per model (a msgspec
tagged union on `model`), whose features are a struct with one typed field per baseline
feature, so decoding validates the types and `typed_columns` pulls a whole row with one
C call. About 2.5x faster than the generic path (BENCHMARKS.md).

Anything else raises `msgspec.ValidationError` / `DecodeError` in `TypedDecoder.decode`
and the caller takes the generic path, which knows every reason: an unknown or missing
model, a feature not in the baseline (it must be counted as ignored), a boolean for a
numeric feature, a nested value, a number out of range. Both paths give the same counts.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Mapping, Sequence
from itertools import starmap
from typing import Any

import msgspec
import numpy as np

from monitor.baseline import CategoricalProfile, NumericProfile
from monitor.decode import (
    FAST_PATH_ERRORS,
    PREDICTION,
    Columns,
    ModelSchema,
    Reason,
    assemble,
    categorical_column,
    event_times,
)

# Never a model name (SPEC §1: 1-64 chars of [A-Za-z0-9_.-]): with this member in the
# union, an event without `model` fails to decode instead of defaulting to a lone member.
_SENTINEL_TAG = "!"
_CATEGORY = str | bool | int | float | None  # numbers and booleans: their string form


# What `TypedDecoder.decode` raises for a message that needs the generic path.
NOT_TYPED = FAST_PATH_ERRORS


class _Sentinel(msgspec.Struct, tag_field="model", tag=_SENTINEL_TAG):
    pass


class TypedDecoder:
    """Decodes messages of tracked models into per-model structs; raises on anything else.

    `decode(value)` returns one event struct or a list of them (a batched message);
    `model_of[type(event)]` names the event's model. Raises one of `NOT_TYPED` (also for
    an empty list or the sentinel tag) when the message needs the generic path.
    """

    def __init__(self, schemas: Mapping[str, ModelSchema]) -> None:
        self.model_of: dict[type, str] = {}
        members: list[Any] = [_Sentinel]
        for i, (model, schema) in enumerate(sorted(schemas.items())):
            event_type = _event_struct(f"Event{i}", model, schema)
            self.model_of[event_type] = model
            members.append(event_type)
        union = _union(members)
        self._decode = msgspec.json.Decoder(union | list[union]).decode  # type: ignore[valid-type]

    def decode(self, value: bytes) -> Any:
        result = self._decode(value)
        if type(result) is list:
            if not result or any(type(e) is _Sentinel for e in result):
                raise msgspec.ValidationError("needs the generic path")
        elif type(result) is _Sentinel:
            raise msgspec.ValidationError("needs the generic path")
        return result


def _union(members: list[Any]) -> Any:
    union = members[0]
    for member in members[1:]:
        union = union | member
    return union


def _event_struct(name: str, model: str, schema: ModelSchema) -> type[msgspec.Struct]:
    """`{"model": <model>, "features": {...}, ...}` with typed baseline features only."""
    fields: list[tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    for j, profile in enumerate(_feature_profiles(schema)):
        kind = float | None if profile in schema.numeric else _CATEGORY
        fields.append((f"c{j}", kind, None))
        rename[f"c{j}"] = profile.name
    features = msgspec.defstruct(
        f"{name}Features",
        fields,
        rename=rename,
        forbid_unknown_fields=True,  # unknown features are counted: generic path
        gc=False,
    )
    numeric_prediction = any(p.name == PREDICTION for p in schema.numeric)
    prediction: Any = float | None if numeric_prediction else str | bool | int | float | None
    return msgspec.defstruct(
        name,
        [
            ("features", features, msgspec.field(default_factory=features)),
            ("ts", float | str | None, None),
            ("prediction", prediction, None),
            ("latency_ms", float | None, None),
            # model_version, request_id, ...: not counted, so skipped, not decoded
        ],
        tag_field="model",
        tag=model,
        gc=False,  # no reference cycles; keeps the cyclic GC out of the hot path
    )


def _feature_profiles(schema: ModelSchema) -> list[NumericProfile | CategoricalProfile]:
    """Baseline features carried in `features` (not the prediction), numeric first."""
    profiles: list[NumericProfile | CategoricalProfile] = [*schema.numeric, *schema.categorical]
    return [p for p in profiles if p.name != PREDICTION]


class TypedColumns:
    """Pulls a model's typed events into `Columns`: one C call per row for the numbers."""

    def __init__(self, schema: ModelSchema) -> None:
        self._schema = schema
        profiles = _feature_profiles(schema)  # the struct's fields: numeric, categorical
        slot = {p.name: j for j, p in enumerate(profiles)}
        self._n_numeric_slots = sum(1 for p in schema.numeric if p.name != PREDICTION)
        self._has_slots = bool(profiles)
        self._numeric_only = len(profiles) == self._n_numeric_slots
        self._numeric_part = operator.itemgetter(slice(0, self._n_numeric_slots))
        self._pack = struct.Struct(f"{self._n_numeric_slots}d").pack  # a row, native doubles
        self._prediction_at = next(
            (j for j, p in enumerate(schema.numeric) if p.name == PREDICTION), None
        )
        self._categorical: list[Callable[[Any], Any] | None] = [
            None if p.name == PREDICTION else operator.itemgetter(slot[p.name])
            for p in schema.categorical
        ]

    def columns(
        self, events: Sequence[Any], fallback_times: Callable[[], Sequence[float]]
    ) -> tuple[Columns, list[tuple[int, Reason]]]:
        """Columns of the valid events, and (index, reason) of the invalid ones.

        `fallback_times()` gives the message times; it is called only when an event has
        no `ts`. Types and ranges were checked by the decoder: what is left to find here
        is a negative latency or an unreadable RFC 3339 time.
        """
        schema = self._schema
        n = len(events)
        bad: dict[int, Reason] = {}
        # One C call per event: the feature struct as a tuple in slot order.
        rows = list(map(astuple, map(_features, events))) if self._has_slots else []
        numeric = np.empty((n, len(schema.numeric)), dtype=np.float64)
        k = self._n_numeric_slots
        if k:
            numbers = rows if self._numeric_only else list(map(self._numeric_part, rows))
            try:  # packed as C doubles: 3x faster than np.fromiter when no value is missing
                flat = np.frombuffer(bytearray().join(starmap(self._pack, numbers)), np.float64)
            except struct.error:  # None: np.array makes it NaN
                flat = np.array(numbers, dtype=np.float64)
            matrix = flat.reshape(n, k)
            if self._prediction_at is None:
                numeric = matrix
            else:
                numeric[:, : self._prediction_at] = matrix[:, : self._prediction_at]
                numeric[:, self._prediction_at + 1 :] = matrix[:, self._prediction_at :]
        if self._prediction_at is not None:
            predictions = list(map(_prediction, events))
            numeric[:, self._prediction_at] = np.array(predictions, dtype=np.float64)
        cat_values = [
            categorical_column(
                list(map(_prediction, events)) if get is None else list(map(get, rows)), bad
            )
            for get in self._categorical
        ]
        raw_ts = list(map(_ts, events))
        fallback: Sequence[float] = fallback_times() if None in raw_ts else ()
        times = event_times(raw_ts, fallback, bad)
        latency = np.array(list(map(_latency, events)), dtype=np.float64)  # None -> NaN
        return assemble(schema, numeric, cat_values, times, latency, bad, 0)


astuple = msgspec.structs.astuple
_features = operator.attrgetter("features")
_prediction = operator.attrgetter("prediction")
_ts = operator.attrgetter("ts")
_latency = operator.attrgetter("latency_ms")
