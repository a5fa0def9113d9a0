"""Redis store of window counts: the exactly-once step (SPEC §4). I/O edge.

`apply` adds one model's count deltas and advances that model's per-(topic, partition)
watermarks in one Lua call, as a compare-and-set:

- every watermark still equals what the caller last saw  -> apply, return APPLIED;
- every watermark already equals the new value             -> the same batch was applied
  before (a lost reply being retried): change nothing, return ALREADY_APPLIED;
- anything else                                            -> another consumer moved the
  partition on (a zombie after a rebalance): change nothing, return CONFLICT.

A consumer resumes each partition from `<prefix>:offsets` (what every model has applied)
and skips, per model, events at or below that model's own watermark; see
`monitor.stream`. redis-py errors are mapped to `RedisUnavailable` here.

Bucket versions, for the evaluator: the same call sets `<prefix>:{model}:bv` field
`<start>` to an id unique to this call (`<store id>:<n>`) for every bucket it changed.
An evaluator that cached a bucket's counts with that id needs not read the bucket again
until the id changes; ids never repeat, so a Redis restart or flush, after which ids
start over, cannot make stale counts look current. When a bucket first appears, the
versions of expired buckets are dropped and the hash's TTL follows the newest bucket.
The evaluator reads buckets with HGETALL, as raw replies (`monitor.conversation`), and
`monitor.window.counts.parse_raw` parses them; `bucket_reads` reads many in one call.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import redis

from monitor.errors import RedisUnavailable
from monitor.window.keys import Keys, partition_field

_APPLY = """
local n = tonumber(ARGV[1])
local i = 3
local same_as_new = true
local same_as_expected = true
for r = 1, n do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if cur ~= tonumber(ARGV[i + 2]) then same_as_new = false end
  if cur ~= tonumber(ARGV[i + 1]) then same_as_expected = false end
  i = i + 3
end
if n > 0 and same_as_new then return 2 end
if not same_as_expected then return 0 end
i = 3
for r = 1, n do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
  i = i + 3
end
for k = 3, #KEYS do
  local start = ARGV[i]
  local expire_at = ARGV[i + 1]
  local nf = tonumber(ARGV[i + 2])
  i = i + 3
  for f = 1, nf do
    redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  redis.call('EXPIREAT', KEYS[k], expire_at)
  if redis.call('HSET', KEYS[2], start, ARGV[2]) == 1 then
    local span = tonumber(expire_at) - tonumber(start)
    local now = tonumber(redis.call('TIME')[1])
    local newest = tonumber(start)
    for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
      local s = tonumber(field)
      if s == nil or s + span < now then
        redis.call('HDEL', KEYS[2], field)
      elseif s > newest then
        newest = s
      end
    end
    redis.call('EXPIREAT', KEYS[2], newest + span)
  end
end
return 1
"""

_READ_MANY = """
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('HGETALL', KEYS[i])
end
return out
"""

_RAISE_OFFSETS = """
for i = 1, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if not cur or tonumber(ARGV[i + 1]) > tonumber(cur) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
"""

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


class ApplyResult(IntEnum):
    CONFLICT = 0
    APPLIED = 1
    ALREADY_APPLIED = 2


@dataclass(frozen=True, slots=True)
class PartitionAdvance:
    """A model's watermark for one partition moves from `expected` to `new`."""

    topic: str
    partition: int
    expected: int  # -1 when the model never applied anything from this partition
    new: int


@dataclass(frozen=True, slots=True)
class BucketDelta:
    start: int
    expire_at: int
    fields: dict[str, int]


class WindowStore:
    """Counts, watermarks and resume offsets in Redis."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys
        self._apply = client.register_script(_APPLY)
        self._raise_offsets = client.register_script(_RAISE_OFFSETS)
        self._read_many = client.register_script(_READ_MANY)
        self._id = uuid.uuid4().hex[:16]
        self._calls = itertools.count()

    @property
    def keys(self) -> Keys:
        return self._keys

    def apply(
        self, model: str, advances: Sequence[PartitionAdvance], buckets: Sequence[BucketDelta]
    ) -> ApplyResult:
        """Atomically add `buckets` and advance watermarks (see module docstring)."""
        keys = [self._keys.watermarks(model), self._keys.bucket_versions(model)]
        args: list[Any] = [len(advances), f"{self._id}:{next(self._calls)}"]
        for adv in advances:
            args += [partition_field(adv.topic, adv.partition), adv.expected, adv.new]
        for bucket in buckets:
            keys.append(self._keys.bucket(model, bucket.start))
            args += [bucket.start, bucket.expire_at, len(bucket.fields)]
            for name, delta in bucket.fields.items():
                args += [name, delta]
        try:
            return ApplyResult(int(self._apply(keys=keys, args=args)))
        except REDIS_ERRORS as exc:
            raise RedisUnavailable(f"redis: {exc}") from exc

    def model_watermarks(self, model: str) -> dict[tuple[str, int], int]:
        """(topic, partition) -> last offset applied for `model`."""
        return _parse_offsets(self._call(self._redis.hgetall, self._keys.watermarks(model)))

    def resume_offsets(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> last offset that every model has applied."""
        return _parse_offsets(self._call(self._redis.hgetall, self._keys.offsets))

    def set_resume_offsets(self, offsets: dict[tuple[str, int], int]) -> None:
        """Record resume points (only ever moves forward; -1: start at offset 0)."""
        if not offsets:
            return
        script_args: list[Any] = []
        for (topic, partition), offset in offsets.items():
            script_args += [partition_field(topic, partition), offset]
        self._call(self._raise_offsets, keys=[self._keys.offsets], args=script_args)

    def record_progress(self, progress: dict[str, tuple[float, float]]) -> None:
        """Per model: when counts were last flushed, and the newest message time in them."""
        if not progress:
            return
        pipe = self._redis.pipeline(transaction=False)
        for model, (flushed_at, newest) in progress.items():
            pipe.hset(
                self._keys.progress(model), mapping={"flushed_at": flushed_at, "newest": newest}
            )
        self._call(pipe.execute)

    def read_progress(self, model: str) -> tuple[float, float] | None:
        return parse_progress(self._call(self._redis.hgetall, self._keys.progress(model)))

    def register_models(self, models: Iterable[str]) -> None:
        names = list(models)
        if names:
            self._call(self._redis.sadd, self._keys.models, *names)

    def bucket_reads(self, model: str, starts: Sequence[int]) -> tuple[Any, ...]:
        """One command reading several of a model's buckets: its reply is the array of
        their HGETALL replies (empty for a missing one). For a model without versions,
        whose buckets are mostly missing: one command instead of one per bucket. Needs
        `load_scripts` first."""
        keys = [self._keys.bucket(model, start) for start in starts]
        return ("EVALSHA", self._read_many.sha, len(keys), *keys)

    def load_scripts(self) -> None:
        """Make sure Redis knows the read script (after a restart it does not)."""
        self._call(self._redis.script_load, _READ_MANY)

    @staticmethod
    def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except REDIS_ERRORS as exc:
            raise RedisUnavailable(f"redis: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def parse_versions(raw: Mapping[bytes, bytes]) -> dict[int, bytes] | None:
    """A bucket versions hash as start -> version; None when the hash does not exist."""
    if not raw:
        return None
    try:
        return {int(field): version for field, version in raw.items()}
    except ValueError:  # not written by the apply script: skip what is not a start
        return {int(f): v for f, v in raw.items() if f.isdigit()}


def parse_progress(raw: Mapping[Any, Any]) -> tuple[float, float] | None:
    """A progress hash as (flushed_at, newest message time); None when it does not exist."""
    if not raw:
        return None
    values = {_text(k): float(v) for k, v in raw.items()}
    return values.get("flushed_at", 0.0), values.get("newest", 0.0)


def _parse_offsets(raw: dict[Any, Any]) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for field, value in raw.items():
        topic, _, partition = _text(field).rpartition(":")
        out[(topic, int(partition))] = int(value)
    return out
