"""Durable per-sink notification queues in Redis, and the alert audit log. I/O edge.

Pipeline position: evaluate -> alerts state machine -> **outbox** -> delivery -> sinks.

The evaluator calls `Outbox.enqueue` once per alert transition; one Lua call appends the
notification to the queue of every configured sink, so a sink that is down holds back
only its own queue. `monitor.alerts.delivery` drains each queue in order (a resolve is
never delivered before its firing): it reads the head, delivers it and only then removes
it (`ack`), so a crash between the two re-delivers after restart (at least once); the
removal and the "already delivered" mark are one atomic step, so an id that was
acknowledged is never delivered again.

Per sink, under the `{alerts}` hash tag (see `monitor.window.keys`):
    q      list of ids, FIFO          items  id -> notification JSON
    meta   id -> "attempts next_at"   seen   ids delivered/rejected/dropped, by time
    open   identities sent as firing  lease  which worker drains the sink

- Idempotent enqueue: an id already queued or in `seen` (kept 24 h, at most 10 000) is
  not queued again for that sink.
- Bounded: a queue holds at most `max_len` items; when full the *oldest* item is dropped
  (the newest transitions say what is true now, and dropping a stale firing is harmless
  while dropping a resolve would leave an incident open), logged at error level, counted
  as `outcome="dropped_overflow"` and written to the audit log. Never silently.
- `append_alert_log` writes the `<prefix>:alerts:log` stream (SPEC §4): every transition
  (firing, resolved: by the evaluator) and delivery outcome (notified, delivery_failed).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import redis
import structlog

from monitor.alerts.model import Alert, Notification
from monitor.errors import RedisUnavailable
from monitor.metrics import Metrics
from monitor.window.keys import Keys

ALERT_LOG_MAXLEN = 10_000
SEEN_MAX = 10_000
SEEN_SECONDS = 86_400.0
DEFAULT_MAX_LEN = 10_000

_log = structlog.get_logger(__name__)

# KEYS: per sink q, items, meta, seen. ARGV: id, payload, max_len.
# Returns per sink {status, dropped payloads...}; status 1 queued, 0 duplicate.
_ENQUEUE = """
local id, payload, cap = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
for s = 1, #KEYS, 4 do
  local q, items, meta, seen = KEYS[s], KEYS[s + 1], KEYS[s + 2], KEYS[s + 3]
  local res = {0}
  if redis.call('HEXISTS', items, id) == 0 and not redis.call('ZSCORE', seen, id) then
    while redis.call('LLEN', q) >= cap do
      local old = redis.call('LPOP', q)
      table.insert(res, redis.call('HGET', items, old) or '')
      redis.call('HDEL', items, old)
      redis.call('HDEL', meta, old)
    end
    redis.call('RPUSH', q, id)
    redis.call('HSET', items, id, payload)
    res[1] = 1
  end
  table.insert(out, res)
end
return out
"""

# KEYS: q, items, meta, seen, open. ARGV: id, now, seen_since, seen_max, identity, open_op.
_ACK = """
local id = ARGV[1]
redis.call('LREM', KEYS[1], 1, id)
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('ZADD', KEYS[4], ARGV[2], id)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[3])
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -tonumber(ARGV[4]) - 1)
if ARGV[6] == 'add' then redis.call('SADD', KEYS[5], ARGV[5])
elseif ARGV[6] == 'remove' then redis.call('SREM', KEYS[5], ARGV[5]) end
return redis.call('LLEN', KEYS[1])
"""

# KEYS: items, meta. ARGV: id, "attempts next_at". Only while the item is still queued.
_RESCHEDULE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: lease. ARGV: owner, ttl ms. Take a free lease or extend our own.
_LEASE = """
local cur = redis.call('GET', KEYS[1])
if not cur or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

OpenOp = Literal["add", "remove", "keep"]


@dataclass(frozen=True, slots=True)
class QueuedItem:
    """The head of one sink's queue."""

    notification: Notification
    attempts: int  # failed attempts so far
    next_at: float  # epoch seconds before which it is not retried


def append_alert_log(
    client: redis.Redis, keys: Keys, event: str, alert: Alert, **extra: Any
) -> None:
    """XADD one entry to the capped audit stream `<prefix>:alerts:log`.

    `event` is `firing`, `resolved`, `severity_changed` (evaluator), `notified` or
    `delivery_failed` (delivery). Fields: the alert's labels and values, identity,
    dedup_key, plus `extra` (e.g. sink, reason, attempts); None becomes "".
    """
    fields: dict[str, str] = {
        "event": event,
        "alertname": alert.alertname,
        "severity": alert.severity,
        "model": alert.model,
        "feature": alert.feature or "",
        "window": alert.window,
        "status": alert.status,
        "value": repr(alert.value),
        "threshold": repr(alert.threshold),
        "starts_at": repr(alert.starts_at),
        "ends_at": "" if alert.ends_at is None else repr(alert.ends_at),
        "identity": alert.identity,
        "dedup_key": alert.dedup_key,
        "labels": json.dumps(alert.labels(), sort_keys=True),
    }
    for name, value in extra.items():
        fields[name] = "" if value is None else str(value)
    try:
        client.xadd(keys.alerts_log, fields, maxlen=ALERT_LOG_MAXLEN, approximate=True)  # type: ignore[arg-type]
    except redis.RedisError as exc:
        raise RedisUnavailable(f"cannot append to {keys.alerts_log}: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Outbox:
    """Durable FIFO queues of notifications, one per sink name, in Redis."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        sink_names: Sequence[str],
        *,
        max_len: int = DEFAULT_MAX_LEN,
        metrics: Metrics | None = None,
    ) -> None:
        if max_len < 1:
            raise ValueError("outbox max_len must be >= 1")
        if len(set(sink_names)) != len(sink_names):
            raise ValueError(f"sink names must be unique: {list(sink_names)}")
        self.client = client
        self.keys = keys
        self.sink_names = tuple(sink_names)
        self.max_len = max_len
        self.metrics = metrics
        self._enqueue = client.register_script(_ENQUEUE)
        self._ack = client.register_script(_ACK)
        self._reschedule = client.register_script(_RESCHEDULE)
        self._lease = client.register_script(_LEASE)
        self._release = client.register_script(_RELEASE)

    def _key(self, sink: str, part: str) -> str:
        return self.keys.outbox(sink, part)

    def enqueue(self, notification: Notification) -> dict[str, bool]:
        """Queue `notification` for every sink in one atomic step.

        Returns sink -> True if queued, False if that id was already queued or done.
        Raises `RedisUnavailable`; the caller retries (the same id makes it safe).
        """
        if not self.sink_names:
            return {}
        keys = [
            self._key(sink, part)
            for sink in self.sink_names
            for part in ("q", "items", "meta", "seen")
        ]
        payload = msgspec.json.encode(notification)
        try:
            result = self._enqueue(keys=keys, args=[notification.id, payload, self.max_len])
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot enqueue notification {notification.id}: {exc}") from exc
        queued: dict[str, bool] = {}
        for sink, (status, *dropped) in zip(self.sink_names, result, strict=True):
            queued[sink] = int(status) == 1
            for raw in dropped:
                self._report_overflow(sink, raw)
        return queued

    def _report_overflow(self, sink: str, raw: bytes) -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(sink=sink, outcome="dropped_overflow").inc()
        try:
            dropped = msgspec.json.decode(raw, type=Notification)
        except msgspec.DecodeError:
            _log.error("outbox_overflow_dropped", sink=sink, max_len=self.max_len, id=None)
            return
        _log.error(
            "outbox_overflow_dropped",
            sink=sink,
            max_len=self.max_len,
            id=dropped.id,
            alert=dropped.alert.identity,
            kind=dropped.kind,
        )
        try:
            append_alert_log(
                self.client,
                self.keys,
                "delivery_failed",
                dropped.alert,
                sink=sink,
                reason="dropped_overflow",
                notification_id=dropped.id,
                kind=dropped.kind,
            )
        except RedisUnavailable:
            _log.warning("alert_log_unavailable", sink=sink, id=dropped.id)

    def head(self, sink: str) -> QueuedItem | None:
        """The oldest queued notification of `sink` (not removed), or None if empty."""
        try:
            ids = self.client.lrange(self._key(sink, "q"), 0, 0)
            if not ids:
                return None
            item_id = _text(ids[0])
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(self._key(sink, "items"), item_id)
            pipe.hget(self._key(sink, "meta"), item_id)
            raw, meta = pipe.execute()
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot read the outbox of {sink}: {exc}") from exc
        if raw is None:
            # dropped by overflow or acknowledged between the two reads: drop the stray id
            self._forget_stray(sink, item_id)
            return self.head(sink)
        attempts, next_at = (0, 0.0)
        if meta:
            text_attempts, text_next = _text(meta).split()
            attempts, next_at = int(text_attempts), float(text_next)
        notification = msgspec.json.decode(raw, type=Notification)
        return QueuedItem(notification, attempts, next_at)

    def _forget_stray(self, sink: str, item_id: str) -> None:
        try:
            self.client.lrem(self._key(sink, "q"), 1, item_id)
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot clean the outbox of {sink}: {exc}") from exc

    def ack(self, sink: str, notification: Notification, now: float, open_op: OpenOp) -> int:
        """Remove a delivered (or permanently rejected) notification; return the new depth.

        `open_op` updates the set of identities this sink was sent as firing: `add` after
        a delivered firing, `remove` after a delivered resolve, `keep` otherwise.
        """
        keys = [self._key(sink, part) for part in ("q", "items", "meta", "seen", "open")]
        args: list[str | float | int] = [
            notification.id,
            now,
            now - SEEN_SECONDS,
            SEEN_MAX,
            notification.alert.identity,
            open_op,
        ]
        try:
            return int(self._ack(keys=keys, args=args))
        except redis.RedisError as exc:
            raise RedisUnavailable(
                f"cannot acknowledge {notification.id} for {sink}: {exc}"
            ) from exc

    def reschedule(self, sink: str, notification_id: str, attempts: int, next_at: float) -> None:
        """Record a failed attempt: retry the item not before `next_at` (epoch seconds)."""
        keys = [self._key(sink, "items"), self._key(sink, "meta")]
        try:
            self._reschedule(keys=keys, args=[notification_id, f"{attempts} {next_at!r}"])
        except redis.RedisError as exc:
            raise RedisUnavailable(
                f"cannot reschedule {notification_id} for {sink}: {exc}"
            ) from exc

    def is_open(self, sink: str, identity: str) -> bool:
        """Whether `sink` was sent this alert identity as firing and not yet resolved."""
        try:
            return bool(self.client.sismember(self._key(sink, "open"), identity))
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot read the open alerts of {sink}: {exc}") from exc

    def depth(self, sink: str) -> int:
        try:
            return int(self.client.llen(self._key(sink, "q")))
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot read the outbox of {sink}: {exc}") from exc

    def claim(self, sink: str, owner: str, ttl_seconds: float) -> bool:
        """Take or extend the lease on draining `sink` (one worker per sink across replicas)."""
        try:
            got = self._lease(
                keys=[self._key(sink, "lease")], args=[owner, max(1, int(ttl_seconds * 1000))]
            )
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot lease the outbox of {sink}: {exc}") from exc
        return int(got) == 1

    def release(self, sink: str, owner: str) -> None:
        """Give the lease back (clean shutdown) so another replica takes over at once."""
        try:
            self._release(keys=[self._key(sink, "lease")], args=[owner])
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot release the outbox lease of {sink}: {exc}") from exc
