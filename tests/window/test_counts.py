"""Bucket hashes -> flat counts: the slot map and raw-reply parsing agree with the grammar."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.baseline import baseline_from_document, build_baseline
from monitor.decode import ModelSchema
from monitor.kernels import N_BUCKETS
from monitor.window.counts import Counts, layout_of, parse_bucket, parse_raw


def _naive(schema: ModelSchema, fields: dict[str, int]) -> dict[str, object]:
    """The hash's grammar, field by field (README "Redis keys"), into plain Python values."""
    numeric = {p.name: j for j, p in enumerate(schema.numeric)}
    categorical = {p.name: j for j, p in enumerate(schema.categorical)}
    k = schema.edges.shape[1] + 1
    out: dict[str, object] = {
        "events": 0,
        "invalid": 0,
        "numeric": [[0] * k for _ in schema.numeric],
        "numeric_missing": [0] * len(numeric),
        "numeric_oor": [0] * len(numeric),
        "categorical": [[0] * p.nbins for p in schema.categorical],
        "categorical_missing": [0] * len(categorical),
        "unseen": [0] * len(categorical),
        "latency": {},
    }
    for field, value in fields.items():
        kind, _, rest = field.partition(":")
        name, _, slot = rest.rpartition(":")
        if kind == "n":
            out["events"] += value  # type: ignore[operator]
        elif kind == "x":
            out["invalid"] += value  # type: ignore[operator]
        elif kind == "l" and rest.isdigit() and int(rest) < N_BUCKETS:
            latency: dict[int, int] = out["latency"]  # type: ignore[assignment]
            latency[int(rest)] = latency.get(int(rest), 0) + value
        elif kind == "f" and name in numeric:
            j = numeric[name]
            if slot in ("m", "o"):
                key = "numeric_missing" if slot == "m" else "numeric_oor"
                out[key][j] += value  # type: ignore[index]
            elif slot.isdigit() and int(slot) < k:
                out["numeric"][j][int(slot)] += value  # type: ignore[index]
        elif kind == "f" and name in categorical:
            j = categorical[name]
            if slot in ("m", "u"):
                key = "categorical_missing" if slot == "m" else "unseen"
                out[key][j] += value  # type: ignore[index]
            elif slot.isdigit() and int(slot) < schema.categorical[j].nbins:
                out["categorical"][j][int(slot)] += value  # type: ignore[index]
    return out


def _plain(counts: Counts) -> dict[str, object]:
    latency = {int(i): int(counts.latency[i]) for i in np.flatnonzero(counts.latency)}
    return {
        "events": counts.events,
        "invalid": counts.invalid,
        "numeric": counts.numeric.tolist(),
        "numeric_missing": counts.numeric_missing.tolist(),
        "numeric_oor": counts.numeric_oor.tolist(),
        "categorical": [c.tolist() for c in counts.categorical],
        "categorical_missing": counts.categorical_missing.tolist(),
        "unseen": counts.unseen.tolist(),
        "latency": latency,
    }


@pytest.fixture(scope="module")
def schema() -> ModelSchema:
    rng = np.random.default_rng(5)
    doc = build_baseline(
        "m",
        {
            "x": rng.normal(0, 1, 2000).tolist(),
            "a:b": rng.integers(0, 3, 2000).astype(float).tolist(),  # ':' in a name, 3 bins
            "c": rng.choice(["p", "q", "r", "s"], 2000).tolist(),
            "ü ÿ\u00ff": rng.choice(["u", "v"], 2000).tolist(),  # non-ASCII name
        },
        bins=5,
        top_k=3,
    )
    return ModelSchema.from_baseline(baseline_from_document(doc))


def _fields(rng: np.random.Generator, schema: ModelSchema) -> dict[str, int]:
    names = [p.name for p in (*schema.numeric, *schema.categorical)]
    pool = ["n", "ign", "x:wrong_type", "x:bad_json", "x:made_up", "n:odd", "l:0", "l:57"]
    pool += [f"l:{N_BUCKETS - 1}", f"l:{N_BUCKETS}", "l:x", "f:gone:1", "f:x", "zz", ""]
    for name in names:
        pool += [f"f:{name}:{s}" for s in ("0", "1", "2", "4", "5", "9", "01", "m", "o", "u", "")]
    chosen = rng.choice(len(pool), size=int(rng.integers(0, len(pool))), replace=False)
    return {pool[i]: int(rng.integers(0, 10**6)) for i in chosen}


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _hgetall_reply(fields: dict[str, int], resp3: bool = False) -> bytes:
    """HGETALL's reply as the protocol spells it: RESP2 array or RESP3 map of bulk strings."""
    head = b"%%%d\r\n" % len(fields) if resp3 else b"*%d\r\n" % (2 * len(fields))
    return head + b"".join(_bulk(k.encode()) + _bulk(b"%d" % v) for k, v in fields.items())


@pytest.mark.parametrize("seed", range(40))
def test_parse_bucket_and_raw_follow_the_grammar(schema: ModelSchema, seed: int) -> None:
    fields = _fields(np.random.default_rng(seed), schema)
    expected = _naive(schema, fields)
    assert _plain(parse_bucket(schema, fields)) == expected
    layout = layout_of(schema)
    for resp3 in (False, True):
        flat = parse_raw(layout, _hgetall_reply(fields, resp3))
        if fields:
            assert flat is not None and _plain(Counts(layout, flat)) == expected
        else:
            assert flat is None


def test_every_field_the_writer_produces_has_a_slot(schema: ModelSchema) -> None:
    layout = layout_of(schema)
    assert len(set(layout.slots.values()) - {-1}) == layout.size - 0  # all slots reachable
    assert layout.slots["f:a:b:2"] == layout.slot_of("f:a:b:2")
    assert all(layout.slot_of(name) == slot for name, slot in layout.slots.items())


def test_counts_fields_are_views_of_the_flat_vector(schema: ModelSchema) -> None:
    counts = Counts.zeros(schema)
    counts.events = 7
    counts.latency += np.arange(N_BUCKETS)
    counts.categorical[1] += 3
    counts.numeric = np.ones_like(counts.numeric)
    other = Counts.zeros(schema)
    other.add(counts)
    other.add(counts)
    assert other.events == 14 and other.latency[5] == 10
    assert other.categorical[1].tolist() == [6] * schema.categorical[1].nbins
    assert int(other.flat.sum()) == 2 * int(counts.flat.sum())


def test_empty_and_malformed_raw_hashes(schema: ModelSchema) -> None:
    layout = layout_of(schema)
    assert parse_raw(layout, b"*0\r\n") is None and parse_raw(layout, b"%0\r\n") is None
    good = _hgetall_reply({"n": 1, "ign": 2})
    for malformed in (
        b"",
        b"*1\r\n" + _bulk(b"n"),  # a name without a value
        b"*2\r\n" + _bulk(b"n"),  # the reply stops early
        _hgetall_reply({"n": 1})[:-1],  # ... in the last CRLF
        b"*2\r\n" + _bulk(b"n") + _bulk(b"2.5"),  # not an integer
        b"*2\r\n" + _bulk(b"n") + _bulk(b"-"),
        b"*2\r\n" + _bulk(b"n") + b":1\r\n",  # not a bulk string
        b"*2\r\n$2\r\nn\r\n" + _bulk(b"1"),  # a length that does not fit
        good + b"+OK\r\n",  # more than one reply
        b"$1\r\nn\r\n",  # not a hash
        b"*x\r\n",
        b"*2\r\n$9223372036854775807\r\n" + b"x" * 20,  # a length that would wrap int64
    ):
        with pytest.raises(ValueError, match="not an HGETALL reply of integer values"):
            parse_raw(layout, malformed)
    flat = parse_raw(layout, _hgetall_reply({"n": -3, "ign": 4}))
    assert flat is not None and flat[0] == -3
    flat = parse_raw(layout, _hgetall_reply({"": 5, "n": 2}))  # an empty name: unknown
    assert flat is not None and flat[0] == 2 and flat.sum() == 2
    # The smallest fields, repeated (no hash has that, but the bytes may say so): every one
    # is an unknown name, and the kernel has room for all of them.
    flat = parse_raw(layout, b"*40\r\n" + (_bulk(b"") + _bulk(b"1")) * 20)
    assert flat is not None and not flat.any()
