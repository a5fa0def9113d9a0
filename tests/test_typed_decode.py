"""The typed fast path gives exactly what the generic path gives, or hands over (pure tests).

The generic path (`decode_message` + `columnize`) is the reference: for every message
the typed decoder accepts, the columns and invalid rows must be identical; everything it
cannot represent exactly must raise so the stream takes the generic path.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.baseline import baseline_from_document, build_baseline
from monitor.decode import Columns, ModelSchema, Reason, columnize, decode_message
from monitor.typed_decode import NOT_TYPED, TypedColumns, TypedDecoder

MAX = 1 << 20
FALLBACK = 1_795_311_000.0


def _schema(model: str, prediction: list[Any]) -> ModelSchema:
    rng = np.random.default_rng(3)
    doc = build_baseline(
        model,
        {
            "x": rng.normal(0, 1, 400).tolist(),
            "y:odd name-1": rng.uniform(0, 10, 400).tolist(),
            "c": rng.choice(["a", "b", "1", "true"], 400).tolist(),
            "__prediction__": prediction,
        },
        bins=5,
        top_k=3,
    )
    return ModelSchema.from_baseline(baseline_from_document(doc))


@pytest.fixture(scope="module")
def schemas() -> dict[str, ModelSchema]:
    rng = np.random.default_rng(4)
    return {
        "score": _schema("score", rng.uniform(0, 1, 400).tolist()),  # numeric prediction
        "klass": _schema("klass", rng.choice(["cat", "dog"], 400).tolist()),  # categorical
    }


def _generic(schema: ModelSchema, value: bytes) -> tuple[Columns, list[tuple[int, Reason]]]:
    decoded = decode_message(value, MAX)
    assert not decoded.invalid
    return columnize(schema, decoded.events, [FALLBACK] * len(decoded.events))


def _typed(
    schemas: dict[str, ModelSchema], value: bytes
) -> tuple[str, Columns, list[tuple[int, Reason]]]:
    decoder = TypedDecoder(schemas)
    result = decoder.decode(value)
    events = result if isinstance(result, list) else [result]
    models = {decoder.model_of[type(e)] for e in events}
    assert len(models) == 1
    model = models.pop()
    columns, bad = TypedColumns(schemas[model]).columns(events, lambda: [FALLBACK] * len(events))
    return model, columns, bad


def _assert_same(a: Columns, b: Columns) -> None:
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.numeric, b.numeric)  # NaN == NaN here
    assert a.numeric.flags.writeable  # a read-only array would make numba compile anew
    assert len(a.codes) == len(b.codes)
    for x, y in zip(a.codes, b.codes, strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(a.unseen, b.unseen, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.latency_ms, b.latency_ms)
    assert a.ignored_features == b.ignored_features


EVENTS = [
    {"model": "score", "ts": 1_795_311_001.5, "features": {"x": 0.3, "c": "a"}, "prediction": 0.9},
    {"model": "score", "features": {"x": None, "y:odd name-1": 4, "c": None}, "latency_ms": 3},
    {"model": "score", "ts": "2026-11-22T10:00:00+01:00", "features": {"c": 1}, "prediction": 1},
    {"model": "score", "ts": "2026-11-22T10:00:00", "features": {"c": True}},  # no offset
    {"model": "score", "features": {"x": 1e300, "c": "zzz"}, "latency_ms": -1},
    {"model": "score", "features": {}, "prediction": None, "latency_ms": 12.25},
    {"features": {"c": 2.5, "x": -3}, "model": "score", "request_id": "r", "model_version": "7"},
]


def test_typed_columns_equal_the_generic_path(schemas: dict[str, ModelSchema]) -> None:
    value = json.dumps(EVENTS).encode()
    model, typed, typed_bad = _typed(schemas, value)
    generic, generic_bad = _generic(schemas[model], value)
    assert typed_bad == generic_bad == [(3, Reason.BAD_TIMESTAMP), (4, Reason.NEGATIVE_LATENCY)]
    _assert_same(typed, generic)
    assert len(typed.times) == len(EVENTS) - 2


def test_categorical_prediction(schemas: dict[str, ModelSchema]) -> None:
    events = [
        {"model": "klass", "features": {"x": 1}, "prediction": "cat"},
        {"model": "klass", "features": {"x": 2}, "prediction": "bird"},
        {"model": "klass", "features": {"x": 3}, "prediction": 7},
    ]
    value = json.dumps(events).encode()
    _, typed, bad = _typed(schemas, value)
    generic, generic_bad = _generic(schemas["klass"], value)
    assert bad == generic_bad == []
    _assert_same(typed, generic)


@pytest.mark.parametrize(
    "value",
    [
        b'{"model": "nope", "features": {}}',  # unknown model
        b'{"features": {"x": 1}}',  # no model
        b'{"model": "!", "features": {}}',  # the sentinel tag is not a model
        b'{"model": "score", "features": {"x": 1, "extra": 2}}',  # must be counted: ignored
        b'{"model": "score", "features": {"x": true}}',  # boolean for a numeric feature
        b'{"model": "score", "features": {"x": "1.5"}}',  # string for a numeric feature
        b'{"model": "score", "features": {"c": [1]}}',  # nested
        b'{"model": "score", "features": {"x": 1e999}}',  # out of range
        b'{"model": "score", "prediction": "yes"}',  # string for a numeric prediction
        b'{"model": "score", "features": []}',
        b"[]",
        b'[{"model": "score"}, {"model": "nope"}]',
        b"{not json",
        b"\xff",
        b'{"model": "score", "features": {"c": "\xff"}}',  # not UTF-8 inside a string
        b'{"model": "score", "extra": ' + b"[" * 2000 + b"]" * 2000 + b"}",  # too deep
    ],
)
def test_messages_the_typed_path_hands_over(schemas: dict[str, ModelSchema], value: bytes) -> None:
    with pytest.raises(NOT_TYPED):
        TypedDecoder(schemas).decode(value)


def test_mixed_models_in_one_message_decode_to_their_types(
    schemas: dict[str, ModelSchema],
) -> None:
    decoder = TypedDecoder(schemas)
    result = decoder.decode(b'[{"model": "score"}, {"model": "klass"}, {"model": "score"}]')
    assert [decoder.model_of[type(e)] for e in result] == ["score", "klass", "score"]


scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["a", "b", "1", "true", "zz", ""])
)
feature_names = st.sampled_from(["x", "y:odd name-1", "c", "other"])
events = st.fixed_dictionaries(
    {"model": st.just("score")},
    optional={
        "features": st.dictionaries(feature_names, scalar, max_size=4),
        "prediction": scalar,
        "latency_ms": scalar,
        "ts": st.none()
        | st.floats(1e9, 2e9)
        | st.sampled_from(["2026-11-22T10:00:00Z", "yesterday", "1795311000"]),
    },
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(events, min_size=1, max_size=5))
def test_typed_path_equals_generic_or_hands_over(
    schemas: dict[str, ModelSchema], batch: list[dict[str, Any]]
) -> None:
    value = json.dumps(batch).encode()
    decoded = decode_message(value, MAX)
    try:
        _, typed, typed_bad = _typed(schemas, value)
    except NOT_TYPED:
        return  # the stream takes the generic path: nothing to compare
    assert not decoded.invalid
    generic, generic_bad = columnize(
        schemas["score"], decoded.events, [FALLBACK] * len(decoded.events)
    )
    assert typed_bad == generic_bad
    _assert_same(typed, generic)
