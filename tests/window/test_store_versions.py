"""Bucket versions of WindowStore and raw bucket reads, on a real Redis."""

from __future__ import annotations

import time

import numpy as np
import redis

from monitor.baseline import baseline_from_document, build_baseline
from monitor.conversation import raw_replies
from monitor.decode import ModelSchema
from monitor.resp import split_array
from monitor.window.buckets import expire_at
from monitor.window.counts import IntArray, Layout, layout_of, parse_bucket, parse_raw
from monitor.window.keys import Keys
from monitor.window.store import (
    ApplyResult,
    BucketDelta,
    PartitionAdvance,
    WindowStore,
    parse_versions,
)

BUCKET = 60
LONGEST = 3600
GRACE = 120


def _delta(start: int, fields: dict[str, int]) -> BucketDelta:
    return BucketDelta(start, expire_at(start, BUCKET, LONGEST, GRACE), fields)


def _versions(client: redis.Redis, keys: Keys) -> dict[int, bytes] | None:
    return parse_versions(client.hgetall(keys.bucket_versions("m")))


def test_each_applied_flush_gives_its_buckets_a_new_version(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix.rstrip(":"))
    store = WindowStore(redis_client, keys)
    now = int(time.time()) // BUCKET * BUCKET
    first = [PartitionAdvance("t", 0, -1, 10)]
    assert store.apply("m", first, [_delta(now, {"n": 3}), _delta(now - 60, {"n": 1})])
    v1 = _versions(redis_client, keys)
    assert v1 is not None and set(v1) == {now, now - 60} and v1[now] == v1[now - 60]

    # A retried (already applied) batch and a zombie's batch change nothing.
    again = store.apply("m", first, [_delta(now, {"n": 3})])
    assert again is ApplyResult.ALREADY_APPLIED
    zombie = store.apply("m", [PartitionAdvance("t", 0, 5, 12)], [_delta(now, {"n": 9})])
    assert zombie is ApplyResult.CONFLICT
    assert _versions(redis_client, keys) == v1

    second = [PartitionAdvance("t", 0, 10, 20)]
    assert store.apply("m", second, [_delta(now, {"n": 2})]) is ApplyResult.APPLIED
    v2 = _versions(redis_client, keys)
    assert v2 is not None and v2[now] != v1[now] and v2[now - 60] == v1[now - 60]
    assert int(redis_client.hget(keys.bucket("m", now), "n") or 0) == 5


def test_a_new_bucket_drops_versions_of_expired_buckets(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix.rstrip(":"))
    store = WindowStore(redis_client, keys)
    now = int(time.time()) // BUCKET * BUCKET
    span = BUCKET + LONGEST + GRACE
    gone, kept = now - span - 2 * BUCKET, now - span + 2 * BUCKET
    redis_client.hset(keys.bucket_versions("m"), mapping={gone: "old", kept: "old", "junk": "x"})
    store.apply("m", [], [_delta(now, {"n": 1})])
    versions = _versions(redis_client, keys)
    assert versions is not None and set(versions) == {kept, now}
    ttl = redis_client.ttl(keys.bucket_versions("m"))
    assert abs(ttl - (now + span - time.time())) < 5  # lives as long as the newest bucket


def test_raw_read_parses_like_the_hash(redis_client: redis.Redis, key_prefix: str) -> None:
    rng = np.random.default_rng(4)
    doc = build_baseline(
        "m",
        {"x": rng.normal(0, 1, 500).tolist(), "ü:c": rng.choice(["a", "b"], 500).tolist()},
        bins=4,
    )
    schema = ModelSchema.from_baseline(baseline_from_document(doc))
    keys = Keys(key_prefix.rstrip(":"))
    store = WindowStore(redis_client, keys)
    now = int(time.time()) // BUCKET * BUCKET
    fields = {"n": 40, "f:x:0": 12, "f:x:3": 28, "f:x:m": 2, "f:ü:c:1": 40, "l:450": 40}
    fields |= {"x:bad_json": 3, "ign": 5, "f:dropped:2": 7}
    store.apply("m", [], [_delta(now, fields)])
    reads = [("HGETALL", keys.bucket("m", now)), ("HGETALL", keys.bucket("m", now - 60))]
    store.load_scripts()
    many = store.bucket_reads("m", [now - 60, now])
    current, empty, both = raw_replies(redis_client, [*reads, many])
    layout = layout_of(schema)
    decoded = redis_client.hgetall(keys.bucket("m", now))
    as_dict = parse_bucket(schema, {k.decode(): int(v) for k, v in decoded.items()})
    parsed = parse_raw(layout, current)
    assert parsed is not None and parsed.tolist() == as_dict.flat.tolist()
    assert as_dict.events == 40 and as_dict.invalid == 3 and as_dict.categorical[0][1] == 40
    assert parse_raw(layout, empty) is None
    assert _same_hash(split_array(both), layout, parsed)
    assert raw_replies(redis_client, []) == []


def _same_hash(hashes: list[bytes], layout: Layout, parsed: IntArray) -> bool:
    """The script's array holds the missing bucket, then the same counts (its field order
    may differ from a plain HGETALL's)."""
    missing, current = (parse_raw(layout, raw) for raw in hashes)
    return missing is None and current is not None and current.tolist() == parsed.tolist()
