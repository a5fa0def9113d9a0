"""Decode: Kafka message bytes -> events -> per-model columns. Pure: no I/O, no clock.

Stage 2 of the pipeline (source -> **decode** -> window -> kernels -> evaluate -> sinks).

`decode_message` turns one message value into events (SPEC §1: one JSON object, or an
array of them) plus the reasons of any invalid ones. The fast path decodes straight
into a typed `Event` struct; anything it rejects is re-read untyped, element by element,
so one bad element of a batched message does not take the good ones down with it.

`columnize` turns a model's events into arrays in baseline order: a float64 matrix of
numeric features (NaN = missing), category codes per categorical feature, latencies and
event times. Values of the wrong type for their baseline feature, or non-finite numbers,
make the whole event invalid (reason `wrong_type` / `non_finite`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import repeat
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from monitor.baseline import Baseline, CategoricalProfile, NumericProfile, category_key
from monitor.kernels import pad_edges

PREDICTION = "__prediction__"
MODEL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

FeatureValue = int | float | str | bool | None  # int kept: category "1", not "1.0"


class Reason(StrEnum):
    """Why an event is invalid: the `reason` label of `driftmon_events_invalid_total`."""

    OVERSIZE = "oversize"  # message value larger than kafka.max_message_bytes
    NOT_UTF8 = "not_utf8"  # bytes that are not UTF-8
    BAD_JSON = "bad_json"  # not JSON at all, or an empty value
    BAD_SHAPE = "bad_shape"  # not an object (or array of objects) with the SPEC §1 fields
    BAD_MODEL = "bad_model"  # `model` missing or not 1-64 chars of [A-Za-z0-9_.-]
    UNKNOWN_MODEL = "unknown_model"  # a model that is not tracked
    WRONG_TYPE = "wrong_type"  # a feature value of the wrong type for its baseline feature
    NON_FINITE = "non_finite"  # Inf/NaN or out-of-range number
    BAD_TIMESTAMP = "bad_timestamp"  # `ts` neither epoch seconds nor RFC 3339
    NEGATIVE_LATENCY = "negative_latency"


class Event(msgspec.Struct, frozen=True, gc=False):
    """One inference event (SPEC §1). Unknown top-level keys are ignored.

    `gc=False`: events hold no reference cycles, and keeping hundreds of thousands of
    them per second out of the cyclic GC's bookkeeping makes decoding ~1.4x faster.
    """

    model: str
    features: dict[str, FeatureValue] = {}
    ts: float | str | None = None
    prediction: int | float | str | bool | None = None
    latency_ms: float | None = None
    model_version: str | None = None
    request_id: str | None = None


FAST_DECODER = msgspec.json.Decoder(Event | list[Event])
# What a typed decode raises for a message the careful path must look at. RecursionError:
# JSON nested deeper than msgspec's limit (~1000 levels), even where a value is skipped.
FAST_PATH_ERRORS = (
    msgspec.DecodeError,
    msgspec.ValidationError,
    UnicodeDecodeError,
    RecursionError,
)
_UNTYPED = msgspec.json.Decoder()


@dataclass(slots=True)
class Decoded:
    """What one message held: valid events (time still unresolved) and invalid reasons."""

    events: list[Event] = field(default_factory=list)
    invalid: list[Reason] = field(default_factory=list)


def fast_events(value: bytes | None, max_bytes: int) -> Sequence[Event] | None:
    """The events of a well-formed message, or None: then use `decode_message`."""
    if not value or len(value) > max_bytes:
        return None
    try:
        result = FAST_DECODER.decode(value)
    except FAST_PATH_ERRORS:
        return None
    if isinstance(result, list):
        return result or None
    return (result,)


def decode_message(value: bytes | None, max_bytes: int) -> Decoded:
    """Decode one Kafka message value. Never raises on bad input.

    Per-event checks that need the model (name, feature types) or that vectorise well
    (latency sign, timestamps) are left to the stream and `columnize`.
    """
    out = Decoded()
    if not value:
        out.invalid.append(Reason.BAD_JSON)
        return out
    if len(value) > max_bytes:
        out.invalid.append(Reason.OVERSIZE)
        return out
    try:
        result = FAST_DECODER.decode(value)
    except FAST_PATH_ERRORS:
        return _decode_slow(value, out)
    if isinstance(result, list):
        if not result:
            out.invalid.append(Reason.BAD_SHAPE)
        out.events.extend(result)
    else:
        out.events.append(result)
    return out


def _decode_slow(value: bytes, out: Decoded) -> Decoded:
    try:
        raw = _UNTYPED.decode(value)
    except UnicodeDecodeError:
        out.invalid.append(Reason.NOT_UTF8)
        return out
    except RecursionError:  # nested deeper than the parser goes: not JSON we can read
        out.invalid.append(Reason.BAD_JSON)
        return out
    except msgspec.ValidationError:  # e.g. 1e999: "Number out of range"
        # msgspec stops at the first such number: the message may also be broken later on.
        out.invalid.append(_text_reason(value) or Reason.NON_FINITE)
        return out
    except msgspec.DecodeError:
        out.invalid.append(_text_reason(value) or Reason.BAD_JSON)
        return out
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        out.invalid.append(Reason.BAD_SHAPE)
    for item in items:
        event, reason = _convert(item)
        if reason is None and event is not None:
            out.events.append(event)
        else:
            out.invalid.append(reason or Reason.BAD_SHAPE)
    return out


def _text_reason(value: bytes) -> Reason | None:
    """NOT_UTF8 or BAD_JSON when the whole message is no UTF-8 JSON text, else None.

    Only for messages msgspec rejected: Python's parser reads 1e999 (as inf) and goes on
    to the end, so it tells a broken message from one with an out-of-range number.
    """
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return Reason.NOT_UTF8
    try:
        json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return Reason.BAD_JSON
    return None


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _convert(item: Any) -> tuple[Event | None, Reason | None]:
    """Validate one untyped element; nested feature values survive to `columnize`."""
    if not isinstance(item, dict):
        return None, Reason.BAD_SHAPE
    if not isinstance(item.get("model"), str):
        return None, Reason.BAD_MODEL
    features = item.get("features", {})
    if not isinstance(features, dict):
        return None, Reason.BAD_SHAPE
    # Lists/objects are kept as a marker: wrong_type only if the feature is in the baseline.
    clean = {
        k: (_NESTED if isinstance(v, list | dict) else v)
        for k, v in features.items()
        if isinstance(k, str)
    }
    try:
        event = msgspec.convert({**item, "features": {}}, Event)
    except msgspec.ValidationError:
        return None, Reason.BAD_SHAPE
    return msgspec.structs.replace(event, features=clean), None


class _Nested:
    """Marker for a list or object feature value (invalid only for baseline features)."""

    def __repr__(self) -> str:
        return "<nested>"


_NESTED: Any = _Nested()


def event_time(ts: float | str) -> float | None:
    """Epoch seconds from a float or an RFC 3339 string; None when unreadable."""
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return float(ts) if math.isfinite(ts) else None
    if isinstance(ts, str):
        try:
            parsed = datetime.fromisoformat(ts)
        except ValueError:
            return None
        if parsed.tzinfo is None:  # RFC 3339 requires an offset
            return None
        return parsed.timestamp()
    return None


@dataclass(frozen=True, slots=True)
class ModelSchema:
    """How a model's events become columns: the baseline's features in a fixed order."""

    model: str
    baseline: Baseline
    numeric: tuple[NumericProfile, ...]
    categorical: tuple[CategoricalProfile, ...]
    edges: npt.NDArray[np.float64]  # (F_num, K_max-1), +inf padded
    lo: npt.NDArray[np.float64]
    hi: npt.NDArray[np.float64]
    has_prediction: bool

    @classmethod
    def from_baseline(cls, baseline: Baseline) -> ModelSchema:
        numeric = tuple(p for p in baseline.features.values() if isinstance(p, NumericProfile))
        categorical = tuple(
            p for p in baseline.features.values() if isinstance(p, CategoricalProfile)
        )
        edges = pad_edges([p.edges for p in numeric]) if numeric else np.zeros((0, 1))
        return cls(
            model=baseline.model,
            baseline=baseline,
            numeric=numeric,
            categorical=categorical,
            edges=edges,
            lo=np.array([p.min for p in numeric], dtype=np.float64),
            hi=np.array([p.max for p in numeric], dtype=np.float64),
            has_prediction=PREDICTION in baseline.features,
        )


@dataclass(frozen=True, slots=True)
class Columns:
    """One model's valid events as arrays (rows in event order)."""

    times: npt.NDArray[np.float64]  # event time, epoch seconds
    numeric: npt.NDArray[np.float64]  # (n, F_num), NaN = missing
    codes: tuple[npt.NDArray[np.int64], ...]  # per categorical feature; -1 = missing
    unseen: tuple[npt.NDArray[np.bool_], ...]  # per categorical feature
    latency_ms: npt.NDArray[np.float64]  # NaN = not given
    ignored_features: int  # feature values not in the baseline


def columnize(
    schema: ModelSchema, events: Sequence[Event], fallback_times: Sequence[float]
) -> tuple[Columns, list[tuple[int, Reason]]]:
    """Columns of the valid events, and (index, reason) of the invalid ones.

    `fallback_times[i]` is the Kafka message timestamp used when event i has no `ts`.
    The hot path: values are pulled with C-level `map(dict.get, ...)`, never one Python
    call per value, and converted to arrays in one step per feature.
    """
    n = len(events)
    bad: dict[int, Reason] = {}
    feats = [e.features for e in events]
    present = 0  # baseline features given (value or null), to count the ignored ones
    numeric = np.empty((n, len(schema.numeric)), dtype=np.float64)
    for j, nprofile in enumerate(schema.numeric):
        raw = _pull(events, feats, nprofile.name)
        numeric[:, j] = _numeric_column(raw, bad)
        present += _present(feats, nprofile.name, raw, n)
    cat_values: list[list[str | None]] = []
    for cprofile in schema.categorical:
        raw = _pull(events, feats, cprofile.name)
        cat_values.append(categorical_column(raw, bad))
        present += _present(feats, cprofile.name, raw, n)
    ignored = sum(map(len, feats)) - present
    latency = np.array([e.latency_ms for e in events], dtype=np.float64)  # None -> NaN
    times = _times(events, fallback_times, bad)
    return assemble(schema, numeric, cat_values, times, latency, bad, max(ignored, 0))


def assemble(
    schema: ModelSchema,
    numeric: npt.NDArray[np.float64],
    cat_values: list[list[str | None]],
    times: npt.NDArray[np.float64],
    latency: npt.NDArray[np.float64],
    bad: dict[int, Reason],
    ignored: int,
) -> tuple[Columns, list[tuple[int, Reason]]]:
    """Columns of the rows not in `bad` (after the latency check), and the bad rows.

    Shared by `columnize` and the typed fast path (`monitor.typed_decode`).
    """
    negative = latency < 0
    if negative.any():
        for row in np.flatnonzero(negative).tolist():
            bad.setdefault(row, Reason.NEGATIVE_LATENCY)
    keep = np.ones(len(times), dtype=bool)
    if bad:
        keep[list(bad)] = False
    kept_rows = np.flatnonzero(keep).tolist() if bad else None
    codes: list[npt.NDArray[np.int64]] = []
    unseen: list[npt.NDArray[np.bool_]] = []
    for cprof, values in zip(schema.categorical, cat_values, strict=True):
        kept = values if kept_rows is None else [values[i] for i in kept_rows]
        c, u = _codes(cprof, kept)
        codes.append(c)
        unseen.append(u)
    columns = Columns(
        times=times if kept_rows is None else times[keep],
        numeric=numeric if kept_rows is None else numeric[keep],
        codes=tuple(codes),
        unseen=tuple(unseen),
        latency_ms=latency if kept_rows is None else latency[keep],
        ignored_features=ignored,
    )
    return columns, sorted(bad.items())


def _pull(events: Sequence[Event], feats: list[dict[str, Any]], name: str) -> list[Any]:
    if name == PREDICTION:
        return [e.prediction for e in events]
    return list(map(dict.get, feats, repeat(name)))


def _present(feats: list[dict[str, Any]], name: str, raw: list[Any], n: int) -> int:
    """How many events carry the key `name` (null included) — cheap when none is null."""
    if name == PREDICTION:
        return 0  # the prediction is not a key of `features`
    if None not in raw:
        return n
    return sum(map(dict.__contains__, feats, repeat(name)))


def _times(
    events: Sequence[Any], fallback: Sequence[float], bad: dict[int, Reason]
) -> npt.NDArray[np.float64]:
    raw = [e.ts for e in events]
    return event_times(raw, fallback, bad)


def event_times(
    raw: list[Any], fallback: Sequence[float], bad: dict[int, Reason]
) -> npt.NDArray[np.float64]:
    """Event times from `ts` values; a missing `ts` takes `fallback[i]` (message time)."""
    if str not in set(map(type, raw)):
        times = np.array(raw, dtype=np.float64)  # None -> NaN
    else:  # RFC 3339 strings (numpy would also read "1.5" or "nan": not times)
        times = np.empty(len(raw), dtype=np.float64)
        for i, ts in enumerate(raw):
            if ts is None:
                times[i] = np.nan
                continue
            parsed = event_time(ts)
            if parsed is None:
                bad.setdefault(i, Reason.BAD_TIMESTAMP)
                times[i] = 0.0  # the row is dropped; NaN would ask for a fallback
            else:
                times[i] = parsed
    missing = np.isnan(times)
    if missing.any():
        times[missing] = np.asarray(fallback, dtype=np.float64)[missing]
    return times


_NUMBER_TYPES = frozenset({float, int, bool, type(None)})


def _numeric_column(raw: list[Any], bad: dict[int, Reason]) -> npt.NDArray[np.float64]:
    col = None
    if set(map(type, raw)) <= _NUMBER_TYPES:  # numpy alone would also read "1.5"
        try:
            col = np.array(raw, dtype=np.float64)  # None -> NaN, bool -> 0/1
        except OverflowError:  # an integer beyond the float range
            col = None
    if col is None:
        col = np.empty(len(raw), dtype=np.float64)
        for i, v in enumerate(raw):
            col[i] = np.nan
            if v is None:
                continue
            if isinstance(v, int | float):  # bool is an int: 0/1
                try:
                    col[i] = float(v)
                except OverflowError:
                    bad.setdefault(i, Reason.NON_FINITE)
            else:
                bad.setdefault(i, Reason.WRONG_TYPE)
    inf = np.isinf(col)
    if inf.any():
        for row in np.flatnonzero(inf).tolist():
            bad.setdefault(row, Reason.NON_FINITE)
        col[inf] = np.nan
    return col


def _codes(
    profile: CategoricalProfile, values: list[str | None]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Category codes, and per row whether the value was never seen in the reference."""
    codes, _ = profile.codes(values)
    unseen = np.zeros(len(values), dtype=bool)
    other = profile.nbins - 1
    for i in np.flatnonzero(codes == other).tolist():
        unseen[i] = values[i] not in profile.other_seen
    return codes, unseen


def categorical_column(raw: list[Any], bad: dict[int, Reason]) -> list[str | None]:
    out: list[str | None] = []
    for i, v in enumerate(raw):
        if v is None or isinstance(v, str):
            out.append(v)
        elif isinstance(v, float) and not math.isfinite(v):
            bad.setdefault(i, Reason.NON_FINITE)
            out.append(None)
        elif isinstance(v, int | float):  # numbers and booleans in their string form
            out.append(category_key(v))
        else:
            bad.setdefault(i, Reason.WRONG_TYPE)
            out.append(None)
    return out
