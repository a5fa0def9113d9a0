"""The decoder never raises, and names a reason for everything it rejects (pure tests)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.decode import (
    Event,
    ModelSchema,
    Reason,
    columnize,
    decode_message,
    event_time,
    fast_events,
)
from tests.schemas import small_schema

MAX = 10_000

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.text(max_size=8)
    | (st.floats(allow_nan=False, allow_infinity=False))
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def schema() -> ModelSchema:
    return small_schema()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(value: bytes) -> None:
    decoded = decode_message(value, MAX)
    assert decoded.events or decoded.invalid
    assert all(isinstance(r, Reason) for r in decoded.invalid)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_never_raises(value: object) -> None:
    decoded = decode_message(json.dumps(value).encode(), MAX)
    assert decoded.events or decoded.invalid


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(["x", "c", "other"]), json_values, max_size=3),
        min_size=1,
        max_size=20,
    )
)
def test_columnize_accounts_for_every_event(schema: ModelSchema, features: list[dict]) -> None:
    events = []
    for f in features:
        decoded = decode_message(json.dumps({"model": "m", "features": f}).encode(), MAX)
        events += decoded.events
    if not events:
        return
    cols, bad = columnize(schema, events, [1.0] * len(events))
    assert len(cols.times) + len(bad) == len(events)
    assert cols.numeric.shape == (len(cols.times), 2)  # x and __prediction__
    assert {r for _, r in bad} <= {Reason.WRONG_TYPE, Reason.NON_FINITE}
    assert not np.isinf(cols.numeric).any()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", Reason.BAD_JSON),
        (b"{nope", Reason.BAD_JSON),
        (b"\xff\xfe", Reason.NOT_UTF8),
        (b'{"model": "m", "features": {"c": "\xff"}}', Reason.NOT_UTF8),
        (b"[]", Reason.BAD_SHAPE),
        (b"[1]", Reason.BAD_SHAPE),
        (b'"text"', Reason.BAD_SHAPE),
        (b'{"features": {}}', Reason.BAD_MODEL),
        (b'{"model": "m", "features": {"x": 1e999}}', Reason.NON_FINITE),
        (b'{"model": "m", "features": []}', Reason.BAD_SHAPE),
        (b"x" * (MAX + 1), Reason.OVERSIZE),
    ],
)
def test_reasons(value: bytes, reason: Reason) -> None:
    decoded = decode_message(value, MAX)
    assert decoded.invalid == [reason]
    assert decoded.events == []
    assert fast_events(value, MAX) is None


def test_a_bad_element_does_not_take_the_good_ones_down() -> None:
    good = {"model": "m", "features": {"x": 1.0}}
    decoded = decode_message(json.dumps([good, {"features": {}}, good]).encode(), MAX)
    assert len(decoded.events) == 2
    assert decoded.invalid == [Reason.BAD_MODEL]


def test_columnize_types_times_and_latency(schema: ModelSchema) -> None:
    raw = [
        {"model": "m", "features": {"x": 1.5, "c": "a"}, "prediction": 0.3, "ts": 100.0},
        {"model": "m", "features": {"x": True, "c": 7, "new": 1}, "ts": "1970-01-01T00:02:00Z"},
        {"model": "m", "features": {"x": "oops"}},
        {"model": "m", "features": {"x": 2.0}, "ts": "yesterday"},
        {"model": "m", "features": {"x": 2.0}, "latency_ms": -1},
        {"model": "m", "features": {"x": None, "c": None}, "latency_ms": 5.0},
    ]
    events: list[Event] = []
    for r in raw:
        events += decode_message(json.dumps(r).encode(), MAX).events
    cols, bad = columnize(schema, events, [50.0] * len(events))
    assert bad == [(2, Reason.WRONG_TYPE), (3, Reason.BAD_TIMESTAMP), (4, Reason.NEGATIVE_LATENCY)]
    assert cols.times.tolist() == [100.0, 120.0, 50.0]
    x = [p.name for p in schema.numeric].index("x")
    assert cols.numeric[:2, x].tolist() == [1.5, 1.0]  # a boolean counts as 1
    assert math.isnan(cols.numeric[2, x])
    assert cols.ignored_features == 1 + 0  # "new" (and nothing from the invalid rows' keys)
    assert np.isnan(cols.latency_ms[0]) and cols.latency_ms[2] == 5.0
    (c_codes,) = cols.codes
    assert c_codes[2] == -1  # missing
    assert bool(cols.unseen[0][1])  # "7" was never seen


def test_event_time() -> None:
    assert event_time(1.5) == 1.5
    assert event_time("2026-11-22T10:00:00+01:00") == event_time("2026-11-22T09:00:00Z")
    assert event_time("2026-11-22T10:00:00") is None  # RFC 3339 needs an offset
    assert event_time("soon") is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b'{"model": "m", "features": {"x": "1.5"}}', Reason.WRONG_TYPE),  # numpy reads it
        (b'{"model": "m", "features": {"x": "nan"}}', Reason.WRONG_TYPE),
        (b'{"model": "m", "features": {"x": 1' + b"0" * 400 + b"}}", Reason.NON_FINITE),
        (b'{"model": "m", "features": {"x": -1' + b"0" * 400 + b"}}", Reason.NON_FINITE),
        (b'{"model": "m", "features": {"x": 1e400}}', Reason.NON_FINITE),
    ],
)
def test_numeric_strings_and_huge_integers_are_invalid(
    schema: ModelSchema, value: bytes, reason: Reason
) -> None:
    decoded = decode_message(value, MAX)
    if decoded.invalid:  # caught while decoding
        assert decoded.invalid == [reason]
        return
    _, bad = columnize(schema, decoded.events, [0.0])
    assert bad == [(0, reason)]


def test_integer_categories_keep_their_integer_form(schema: ModelSchema) -> None:
    """JSON 1 is category "1" (as in a baseline built from integers), not "1.0"."""
    (event,) = decode_message(b'{"model": "m", "features": {"c": 1, "x": 2}}', MAX).events
    assert event.features == {"c": 1, "x": 2}
    assert type(event.features["c"]) is int


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        # msgspec stops at the out-of-range number; the NUL later makes it no JSON at all
        (b'{"features": 1' + b"0" * 300 + b'.5, "model": "m"\x00}', Reason.BAD_JSON),
        (b'{"features": {"x": 1e999}, "model": "m", "n": NaN}', Reason.BAD_JSON),
        (b'{"features": {"x": 1e999}, "model": "m"}', Reason.NON_FINITE),
        (b'{"features": {"x": 1e999}, "model": "\xff"}', Reason.NOT_UTF8),
    ],
)
def test_a_broken_message_is_bad_json_whatever_its_numbers(value: bytes, reason: Reason) -> None:
    assert decode_message(value, MAX).invalid == [reason]
