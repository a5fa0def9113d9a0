"""Hostile and malformed messages, with what README "Inference events" says each must do.

Every message here is written by hand with its expected outcome: an invalid reason (one
per message, or one per element of a parsed array), or a valid event whose counts the
stream harness computes independently (tests/stream/harness.py: expected_counts), or a
late event. Nothing here asks the decoder what it thinks.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_BYTES = 200_000  # kafka.max_message_bytes of the hostile run
ARRAY = 1000  # events per message in the bulk batches

# Feature names that mean something to Redis (key patterns, hash tags, separators),
# Prometheus' text format (quotes, braces, newlines, comments) or a shell.
SPECIAL_NAMES = [
    "a:b",
    "{fraud}:b:1",
    "*",
    "$(rm -rf ~)",
    "`id`",
    'x"} 1\n# HELP driftmon_events_total x',
    "\n",
    'le="0.5"',
    "\u0000",
    "é🙂",
    'driftmon_events_total{model="x"}',
    "; DROP TABLE x; --",
    "../../etc/passwd",
]


@dataclass
class Hostile:
    """Messages to produce (None is a tombstone) and what each must lead to."""

    messages: list[bytes | None] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    valid: list[dict[str, Any]] = field(default_factory=list)  # counted, expected_counts
    bulk: list[tuple[dict[str, Any], int]] = field(default_factory=list)  # (template, times)
    late: int = 0
    ignored: int = 0  # feature values not in the baseline, of valid events

    def invalid(self, reason: str, *values: bytes | None, per_message: int = 1) -> None:
        self.messages.extend(values)
        self.reasons[reason] += per_message * len(values)

    def event(self, value: dict[str, Any], ignored: int = 0) -> None:
        self.messages.append(json.dumps(value).encode())
        self.valid.append(value)
        self.ignored += ignored


def _j(value: Any) -> bytes:
    return json.dumps(value).encode()


def hostile_messages(now: float, distinct_categories: int) -> Hostile:
    h = Hostile()
    ok: dict[str, Any] = {
        "model": "fraud",
        "ts": now,
        "features": {"amount": 12.5, "country": "DE", "age": 40},
    }

    def feat(**features: Any) -> dict[str, Any]:
        return {**ok, "features": {**ok["features"], **features}}

    # -- not JSON ------------------------------------------------------------------
    h.invalid(
        "bad_json",
        b"{not json",
        b"",
        None,  # a tombstone: no value at all
        b'{"model": "fraud", "features": {',
        b'{"model": "fraud", "features": {"amount": NaN}}',
        b'{"model": "fraud", "features": {"amount": Infinity}}',
        b'{"model": "fraud", "features": {"amount": -Infinity}}',
        b"\x00\x01\x02",
        b"{'model': 'fraud'}",
        # nested deeper than any parser's limit (once a RecursionError that killed the daemon)
        b'{"model": "fraud", "features": {"amount": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
        b"[" * 100_000,
    )
    h.invalid(
        "not_utf8",
        b"\xff\xfe\x00garbage",
        b'{"model": "fraud", "features": {"country": "\xff"}}',
        b'{"model": "fr\xc0\xafaud", "features": {}}',  # overlong encoding of "/"
        b'{"model": "fraud", "features": {"country": "\xed\xa0\x80"}}',  # UTF-8 surrogate
    )
    # -- not the shape of an event -------------------------------------------------
    h.invalid("bad_shape", b"[]", b'"text"', b"42", b"null", b"true")
    h.invalid("bad_shape", b"[1, 2]", per_message=2)  # each element counts once
    h.invalid(
        "bad_shape",
        _j({**ok, "features": [1, 2]}),
        _j({**ok, "features": "amount=1"}),
        _j({**ok, "latency_ms": "fast"}),
    )
    # -- model ---------------------------------------------------------------------
    h.invalid(
        "bad_model",
        _j({"features": {"amount": 1.0}}),
        _j({**ok, "model": 5}),
        _j({**ok, "model": None}),
        _j({**ok, "model": ""}),
        _j({**ok, "model": "bad name!"}),
        _j({**ok, "model": "x" * 65}),
        _j({**ok, "model": "fraud\n"}),
        _j({**ok, "model": "$(reboot)"}),
        _j({**ok, "model": "{fraud}:b:*"}),
        _j({**ok, "model": 'a"}\n# x'}),
    )
    h.invalid("unknown_model", _j({**ok, "model": "nope"}), _j({**ok, "model": "fraud2"}))
    # -- feature types -------------------------------------------------------------
    h.invalid(
        "wrong_type",
        _j(feat(amount="abc")),
        _j(feat(amount="12.5")),
        _j(feat(amount="NaN")),
        _j(feat(amount=[1, 2])),
        _j(feat(amount={"a": 1})),
        _j(feat(country={"x": 1})),
        _j(feat(country=["DE"])),
        _j(feat(age="forty")),
        _j({**ok, "prediction": "high"}),
    )
    big = b"9" * 400  # an integer far beyond the float range
    h.invalid(
        "non_finite",
        b'{"model": "fraud", "features": {"amount": 1e999}}',
        b'{"model": "fraud", "features": {"amount": -1e999}}',
        b'{"model": "fraud", "features": {"amount": ' + big + b"}}",
        b'{"model": "fraud", "features": {"amount": -' + big + b"}}",
        b'{"model": "fraud", "features": {"amount": 1.0}, "latency_ms": 1e999}',
        b'{"model": "fraud", "features": {"amount": 1.0}, "prediction": 1e999}',
        b'{"model": "fraud", "features": {"country": 1e999}}',
    )
    h.invalid(
        "bad_timestamp",
        _j({**ok, "ts": "yesterday"}),
        _j({**ok, "ts": "2026-11-22T10:00:00"}),  # RFC 3339 needs an offset
        _j({**ok, "ts": ""}),
    )
    h.invalid(
        "negative_latency",
        _j({**ok, "latency_ms": -1}),
        _j({**ok, "latency_ms": -1e300}),
    )
    h.invalid(
        "oversize",
        _j(feat(pad="x" * MAX_BYTES)),
        b"[" + b",".join([_j(ok)] * (3 * MAX_BYTES // len(_j(ok)))) + b"]",
        b"\xff" * (MAX_BYTES + 1),
    )
    # -- a parsed array: each element counts on its own ----------------------------
    h.messages.append(_j([ok, feat(amount="x"), {"features": {}}, ok]))
    h.reasons.update({"wrong_type": 1, "bad_model": 1})
    h.valid += [ok, ok]

    # -- valid, if odd: counted -----------------------------------------------------
    h.event(
        {**ok, "features": {**ok["features"], **{n: i for i, n in enumerate(SPECIAL_NAMES)}}},
        ignored=len(SPECIAL_NAMES),
    )
    for features in (
        {"amount": 1e308},
        {"amount": -1e308},
        {"amount": 10**30},
        {"amount": True},  # booleans count as 1/0
        {"amount": 0, "age": False},
        {"country": 12345678901234567890},  # a number, in its string form: unseen
        {"country": True},
        {"country": ""},
        {"country": "x" * 10_000},
        {"country": "DE\u0000"},
        {},
    ):
        h.event({**ok, "features": features})
    h.event({**ok, "latency_ms": 1e300})
    h.event({**ok, "latency_ms": 0})
    h.event({**ok, "prediction": 1e308})
    h.event({**ok, "prediction": True})
    h.event({**ok, "ts": 1e300})  # far ahead of the clock: the current bucket
    h.event({**ok, "ts": "2999-01-01T00:00:00+00:00"})
    h.event({**ok, "ts": None})  # the Kafka timestamp
    h.event({**ok, "model_version": "x" * 5000, "request_id": "$(id)", "unknown_top": [1]})
    # -- late: older than the longest window plus the grace ------------------------
    for ts in (-1e300, 0, now - 3 * 3600):
        h.messages.append(_j({**ok, "ts": ts}))
        h.late += 1

    # -- 10 000 distinct feature names, 100 per event ------------------------------
    for m in range(100):
        extra = {f"feature-{m}-{i}:{{x}}": i for i in range(100)}
        h.event({**ok, "features": {**ok["features"], **extra}}, ignored=100)

    # -- many distinct category values, in arrays of ARRAY events -------------------
    template = {"model": "fraud", "ts": now, "features": {"amount": 1.0, "country": "?"}}
    for start in range(0, distinct_categories, ARRAY):
        batch = [
            {**template, "features": {"amount": 1.0, "country": f"cat-{i}"}}
            for i in range(start, min(start + ARRAY, distinct_categories))
        ]
        h.messages.append(_j(batch))
    h.bulk.append((template, distinct_categories))  # every value unseen: one expected row
    return h
