"""The stream: Kafka records -> decoded events -> count deltas -> Redis, exactly once.

Wires stages 1-3 (source -> decode -> window). Per batch of records it decodes, drops
and counts invalid and late events, bins the rest into per-(model, bucket) deltas, and
every `flush_interval_ms` (or `flush_max_events`) applies each model's deltas with one
atomic Lua call that also advances the model's per-partition watermark
(`WindowStore.apply`). Only then are the Kafka offsets stored for commit.

Exactly-once effect, case by case:
- crash before a model's apply: nothing of it is in Redis; the partition is read again
  from the resume offset (`<prefix>:offsets`), which never passes an unapplied event;
- crash between models' applies: on replay each model skips events at or below its own
  watermark (loaded on assignment);
- lost reply: the retried apply finds the watermarks already at the new values and
  changes nothing (ALREADY_APPLIED);
- rebalance: the revoked partitions are flushed before the new owner is assigned them,
  and the new owner starts from Redis, not from a possibly stale group commit;
- zombie consumer: its apply's compare-and-set fails (CONFLICT); it drops everything in
  memory and re-reads its partitions from Redis watermarks;
- Redis down: consumption pauses, readiness goes false, the flush is retried with backoff.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from monitor.clock import Clock
from monitor.decode import (
    MODEL_NAME,
    Columns,
    Event,
    ModelSchema,
    Reason,
    columnize,
    decode_message,
    fast_events,
)
from monitor.errors import RedisUnavailable
from monitor.metrics import Metrics
from monitor.settings import KafkaSettings, WindowSettings
from monitor.source.kafka import KafkaSource, Record, TopicPartition
from monitor.typed_decode import NOT_TYPED, TypedColumns, TypedDecoder
from monitor.window.accumulate import Accumulator
from monitor.window.buckets import expire_at, late_cutoff
from monitor.window.store import ApplyResult, BucketDelta, PartitionAdvance, WindowStore

log = structlog.get_logger(__name__)


class Conflict(Exception):
    """Another consumer advanced a watermark this one expected to own."""


@dataclass(slots=True)
class Health:
    """What /livez and /readyz report."""

    redis_ok: bool = False
    assigned: bool = False
    baselines_loaded: bool = False
    last_loop: float = 0.0  # monotonic time of the last loop iteration

    @property
    def ready(self) -> bool:
        return self.redis_ok and self.assigned and self.baselines_loaded


@dataclass(slots=True)
class _Pending:
    """What was read since the last flush: the last offset of each partition."""

    last_offset: dict[TopicPartition, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Rows:
    """One model's events of a batch, with their fallback times and source records."""

    events: list[Event] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)


class Stream:
    """One consumer-group member's processing state. Implements the source's `Rebalance`."""

    def __init__(
        self,
        kafka: KafkaSettings,
        windows: WindowSettings,
        schemas: dict[str, ModelSchema],
        window_seconds: dict[str, dict[str, int]],
        store: WindowStore,
        clock: Clock,
        metrics: Metrics,
        health: Health,
    ) -> None:
        self._kafka = kafka
        self._windows = windows
        self._schemas = schemas
        self._typed = TypedDecoder(schemas)
        self._typed_columns = {m: TypedColumns(s) for m, s in schemas.items()}
        self._longest = {m: max(w.values()) for m, w in window_seconds.items()}
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._health = health
        self._acc = Accumulator(windows.bucket_seconds)
        self._pending = _Pending()
        self._watermarks: dict[str, dict[TopicPartition, int]] = {m: {} for m in schemas}
        self._assigned: set[TopicPartition] = set()
        # Highest watermark of any model per partition: below it, events may be replays.
        self._replay_floor: dict[TopicPartition, int] = {}
        self._newest: dict[str, float] = {}  # newest message time per model, this flush
        self._needs_reset = False
        self._last_flush = clock.monotonic()
        self.source: KafkaSource | None = None

    # --- rebalance (called from inside the consumer's poll) -----------------------------

    def assigned(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        self._assigned.update(partitions)
        self._health.assigned = bool(self._assigned)
        try:
            return self._load_starts(partitions)
        except RedisUnavailable as exc:
            # Start nowhere yet: pause and seek once Redis answers (see `_recover`).
            log.warning("assign_without_redis", error=str(exc))
            self._needs_reset = True
            self._health.redis_ok = False
            return {}

    def started(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Partitions without a watermark start at these offsets: the next flush records
        each as read up to the offset before it, so a restart resumes there even when
        nothing was read. Otherwise the start policy would decide again, and with
        'latest' skip what arrived while driftmon was down."""
        for tp, offset in offsets.items():
            if offset >= 0 and tp in self._assigned and tp not in self._replay_floor:
                self._pending.last_offset.setdefault(tp, offset - 1)

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        try:
            self.flush()
        except (RedisUnavailable, Conflict) as exc:
            # Nothing of the unflushed deltas is in Redis: the new owner reads them again.
            log.warning("revoke_flush_failed_dropping", error=str(exc))
            self._drop_all()
        self._assigned.difference_update(partitions)
        for tp in partitions:
            self._pending.last_offset.pop(tp, None)
        self._health.assigned = bool(self._assigned)

    def lost(self, partitions: Sequence[TopicPartition]) -> None:
        self._drop_all()
        self._assigned.difference_update(partitions)
        self._health.assigned = bool(self._assigned)

    def _load_starts(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int | None]:
        resume = self._store.resume_offsets()
        for tp in partitions:
            self._replay_floor.pop(tp, None)
        for model in self._schemas:
            marks = self._store.model_watermarks(model)
            for tp in partitions:
                if tp in marks:
                    self._watermarks[model][tp] = marks[tp]
                    floor = max(self._replay_floor.get(tp, -1), marks[tp])
                    self._replay_floor[tp] = floor
                else:
                    self._watermarks[model].pop(tp, None)
        self._health.redis_ok = True
        starts: dict[TopicPartition, int | None] = {}
        for tp in partitions:
            if tp in resume:
                starts[tp] = resume[tp] + 1
            else:
                starts[tp] = None
                log.info(
                    "no_watermark_in_redis",
                    topic=tp[0],
                    partition=tp[1],
                    action="starting from the group's committed offset (or auto.offset.reset)",
                )
        return starts

    def _drop_all(self) -> None:
        """Forget all unflushed deltas; assigned partitions must be re-read from Redis."""
        self._acc.clear()
        self._pending = _Pending()
        self._newest.clear()
        self._needs_reset = True

    # --- processing ---------------------------------------------------------------------

    def process(self, records: Sequence[Record]) -> None:
        """Decode, validate and accumulate a batch of records.

        The per-record loop is the hot path. A message of tracked models with baseline
        features only is decoded straight into typed per-model structs
        (`monitor.typed_decode`); anything else, and replays, take the generic path,
        which names every reason. Everything per value happens in the column step and
        the kernels.
        """
        now = self._clock.now()
        typed: dict[type, _Typed] = {}
        by_model: dict[str, _Rows] = {}
        skipped: Counter[str] = Counter()
        max_bytes = self._kafka.max_message_bytes
        last_offset = self._pending.last_offset
        replay_floor = self._replay_floor
        decode = self._typed.decode
        tp: TopicPartition = ("", -1)
        floor = -1
        last_type: type | None = None
        last = _Typed()
        for record in records:
            topic, partition = record.topic() or "", record.partition() or 0
            if partition != tp[1] or topic != tp[0]:  # records come in runs per partition
                tp = (topic, partition)
                floor = replay_floor.get(tp, -1)
            offset = record.offset() or 0
            last_offset[tp] = offset
            value = record.value()
            if offset > floor and value and len(value) <= max_bytes:
                try:
                    result = decode(value)
                except NOT_TYPED:
                    pass
                else:
                    if type(result) is last_type:  # the common case: one model per topic
                        last.events.append(result)
                        last.records.append(record)
                    elif type(result) is list:
                        for event in result:
                            _typed_rows(typed, type(event)).add(event, record)
                    else:
                        last_type = type(result)
                        last = _typed_rows(typed, last_type)
                        last.add(result, record)
                    continue
            self._generic(record, tp, offset, now, by_model, skipped)
        for event_type, rows in typed.items():
            self._accumulate_typed(self._typed.model_of[event_type], rows, now)
        for model, generic in by_model.items():
            if generic.events:
                self._accumulate(model, generic, now)
        for model, count in skipped.items():
            self._metrics.events_skipped.labels(model).inc(count)

    def _generic(
        self,
        record: Record,
        tp: TopicPartition,
        offset: int,
        now: float,
        by_model: dict[str, _Rows],
        skipped: Counter[str],
    ) -> None:
        """The generic path: any message, every reason named, replays skipped per model."""
        max_bytes = self._kafka.max_message_bytes
        value = record.value()
        events = fast_events(value, max_bytes)
        if events is None:  # not the common shape: the careful path names the reason
            decoded = decode_message(value, max_bytes)
            for reason in decoded.invalid:
                self._invalid(record, reason)
            events = decoded.events
            if not events:
                return
        msg_time = _message_time(record, now)
        replay = offset <= self._replay_floor.get(tp, -1)
        for event in events:
            model = event.model
            rows = by_model.get(model)
            if rows is None:
                if model not in self._schemas:
                    known = MODEL_NAME.fullmatch(model)
                    self._invalid(record, Reason.UNKNOWN_MODEL if known else Reason.BAD_MODEL)
                    continue
                rows = by_model[model] = _Rows()
            if replay and offset <= self._watermarks[model].get(tp, -1):
                skipped[model] += 1
                continue
            rows.events.append(event)
            rows.times.append(msg_time)
            rows.records.append(record)

    def _accumulate_typed(self, model: str, rows: _Typed, now: float) -> None:
        records = rows.records

        def message_times() -> list[float]:
            return [_message_time(r, now) for r in records]

        cols, bad = self._typed_columns[model].columns(rows.events, message_times)
        self._note_newest(model, records, now)
        self._add(model, cols, bad, records, now)

    def _accumulate(self, model: str, rows: _Rows, now: float) -> None:
        self._newest[model] = max(self._newest.get(model, 0.0), *rows.times)
        cols, bad = columnize(self._schemas[model], rows.events, rows.times)
        self._add(model, cols, bad, rows.records, now)

    def _note_newest(self, model: str, records: list[Record], now: float) -> None:
        """Newest message time of the model's records: the last of each partition run."""
        newest = self._newest.get(model, 0.0)
        previous = None
        for record in reversed(records):
            if record.partition() != previous:  # not every run, but one per partition
                previous = record.partition()
                newest = max(newest, _message_time(record, now))
        self._newest[model] = newest

    def _add(
        self,
        model: str,
        cols: Columns,
        bad: list[tuple[int, Reason]],
        records: Sequence[Record],
        now: float,
    ) -> None:
        schema = self._schemas[model]
        for i, reason in bad:
            self._invalid(records[i], reason)
            self._acc.add_invalid(schema, reason, _message_time(records[i], now))
        w = self._windows
        cutoff = late_cutoff(now, self._longest[model], w.bucket_seconds, w.grace_seconds)
        late = self._acc.add_columns(schema, cols, cutoff, now, w.grace_seconds)
        if late:
            self._metrics.events_late.labels(model).inc(late)
        valid = len(cols.times) - late
        if valid:
            self._metrics.events.labels(model).inc(valid)

    def _invalid(self, record: Record, reason: Reason) -> None:
        self._metrics.events_invalid.labels(reason.value).inc()
        log.info(
            "invalid_event",
            reason=reason.value,
            topic=record.topic(),
            partition=record.partition(),
            offset=record.offset(),
        )
        if self.source is not None and self._kafka.dead_letter_topic:
            self.source.dead_letter(record, reason.value)
            self._metrics.dead_letters.labels(reason.value).inc()

    # --- flushing -------------------------------------------------------------------------

    def flush_due(self) -> bool:
        if self._acc.pending_events >= self._windows.flush_max_events:
            return True
        elapsed = self._clock.monotonic() - self._last_flush
        return elapsed * 1000.0 >= self._windows.flush_interval_ms and bool(
            self._pending.last_offset
        )

    def flush(self) -> None:
        """Apply all deltas to Redis, then mark the offsets for commit.

        Raises RedisUnavailable (deltas kept, retry later) or Conflict (caller resets).
        """
        if not self._pending.last_offset:
            self._last_flush = self._clock.monotonic()
            return
        started = time.perf_counter()
        for model in list(self._acc.buckets):
            self._apply_model(model)
        offsets = dict(self._pending.last_offset)
        self._store.set_resume_offsets(offsets)
        now = self._clock.now()
        self._store.record_progress({m: (now, t) for m, t in self._newest.items()})
        self._newest.clear()
        self._health.redis_ok = True
        if self.source is not None:
            self.source.store_offsets({tp: o + 1 for tp, o in offsets.items()})
        self._pending = _Pending()
        self._acc.pending_events = 0
        self._last_flush = self._clock.monotonic()
        self._metrics.flush_duration.observe(time.perf_counter() - started)

    def _apply_model(self, model: str) -> None:
        buckets = self._acc.buckets[model]
        w = self._windows
        longest = self._longest[model]
        deltas = [
            BucketDelta(
                start, expire_at(start, w.bucket_seconds, longest, w.grace_seconds), b.fields()
            )
            for start, b in sorted(buckets.items())
        ]
        marks = self._watermarks[model]
        # Every partition read since the last flush advances, with or without events of
        # this model: "applied up to offset o" holds for all of them.
        advances = [
            PartitionAdvance(tp[0], tp[1], marks.get(tp, -1), last)
            for tp, last in sorted(self._pending.last_offset.items())
        ]
        result = self._store.apply(model, advances, deltas)
        if result is ApplyResult.CONFLICT:
            self._metrics.flush_conflicts.inc()
            raise Conflict(f"model {model}: a watermark moved under this consumer")
        if result is ApplyResult.ALREADY_APPLIED:
            log.info("flush_already_applied", model=model)
        for adv in advances:
            marks[(adv.topic, adv.partition)] = adv.new
        del self._acc.buckets[model]

    # --- recovery -------------------------------------------------------------------------

    @property
    def needs_reset(self) -> bool:
        return self._needs_reset

    def reset(self) -> dict[TopicPartition, int | None]:
        """Drop memory and return where each assigned partition must be read from."""
        self._acc.clear()
        self._pending = _Pending()
        starts = self._load_starts(sorted(self._assigned))
        self._needs_reset = False
        return starts


@dataclass(slots=True)
class _Typed:
    """One model's typed events of a batch and their source records."""

    events: list[Any] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)

    def add(self, event: Any, record: Record) -> None:
        self.events.append(event)
        self.records.append(record)


def _typed_rows(typed: dict[type, _Typed], event_type: type) -> _Typed:
    rows = typed.get(event_type)
    if rows is None:
        rows = typed[event_type] = _Typed()
    return rows


def _message_time(record: Record, now: float) -> float:
    """The Kafka message timestamp in epoch seconds; `now` when the record has none."""
    ts_type, ts_ms = record.timestamp()
    return ts_ms / 1000.0 if ts_type and ts_ms > 0 else now
