"""Kafka source: the confluent-kafka adapter. Stage 1 of the pipeline. I/O edge.

- consumer group with cooperative-sticky assignment and batched `consume()`;
- `enable.auto.offset.store=false`: offsets are stored only after the batch's counts are
  in Redis (`store_offsets`), then committed (auto-commit of stored offsets, and a sync
  commit on revoke and on close);
- on assignment each partition starts where the stream says (the Redis watermark),
  not at the group's committed offset, which may be stale;
- every librdkafka option (SASL/SSL, timeouts) passes through `kafka.options`;
- offset resets are driftmon's, not librdkafka's (`auto.offset.reset=error` underneath):
  `monitor.source.offsets` decides where a partition without a usable position starts;
  here a stopped partition is assigned again there (it cannot be `seek()`ed);
- invalid messages can be copied to a dead-letter topic with the reason in a header.

Library exceptions are mapped to `ServiceError` here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

import structlog
from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
)
from confluent_kafka import TopicPartition as KafkaTopicPartition

from monitor.errors import ServiceError
from monitor.metrics import Metrics
from monitor.settings import KafkaSettings
from monitor.source.offsets import StartOffsets, Unstarted, warn_resumed

log = structlog.get_logger(__name__)

TopicPartition = tuple[str, int]
DEAD_LETTER_REASON_HEADER = "driftmon-reason"
DEAD_LETTER_ORIGIN_HEADER = "driftmon-origin"
WAKE_TIMEOUT_S = 1.0
LAG_INTERVAL_S = 5.0


class Record(Protocol):
    """What the stream needs of a consumed message (a confluent_kafka.Message)."""

    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...


class Rebalance(Protocol):
    """Callbacks from the consumer's rebalance protocol, implemented by the stream."""

    def assigned(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        """Return the offset to start each partition at: None when Redis has no watermark
        (the group's committed offset, else the start policy); a partition left out is not
        known yet and is seeked later (`seek_to`)."""
        ...

    def started(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Partitions without a watermark start at these offsets (absolute where >= 0)."""
        ...

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Flush what was read from these partitions; offsets are committed afterwards."""
        ...

    def lost(self, partitions: Sequence[TopicPartition]) -> None:
        """The partitions are gone without a clean revoke: drop what was read from them."""
        ...


def consumer_config(settings: KafkaSettings) -> dict[str, Any]:
    """librdkafka configuration: driftmon's fixed choices, then the user's options."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": settings.group_id,
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000,
        "max.poll.interval.ms": 300_000,
        "message.max.bytes": max(settings.max_message_bytes + 1024, 1_000_000),
        # librdkafka waits 1 s (default) before fetching again once its local queue is
        # over queued.max.messages.kbytes; driftmon drains that queue in ~0.1-0.3 s, so
        # the default throttled one consumer to ~0.15 M events/s (BENCHMARKS.md, scaling)
        "fetch.queue.backoff.ms": 100,
    }
    config.update(settings.options)
    # librdkafka's reset would move a partition silently (to the end, by default) when its
    # position is gone; "error" hands the decision to `monitor.source.offsets`
    config["auto.offset.reset"] = "error"
    if settings.sasl_password is not None:
        config["sasl.password"] = settings.sasl_password.get_secret_value()
    return config


def producer_config(settings: KafkaSettings) -> dict[str, Any]:
    """Configuration of the dead-letter producer: connection options only."""
    consumer_only = {
        "group.id",
        "partition.assignment.strategy",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "auto.offset.reset",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "max.poll.interval.ms",
        "fetch.min.bytes",
        "fetch.wait.max.ms",
        "fetch.queue.backoff.ms",
        "isolation.level",
        "group.instance.id",
    }
    config = {k: v for k, v in consumer_config(settings).items() if k not in consumer_only}
    config["linger.ms"] = 50
    return config


class KafkaSource:
    """A consumer-group member that reads batches and reports rebalances to `rebalance`."""

    def __init__(
        self,
        settings: KafkaSettings,
        rebalance: Rebalance,
        consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._rebalance = rebalance
        self._metrics = metrics if metrics is not None else Metrics()
        try:
            self._consumer = consumer_factory(consumer_config(settings))
        except KafkaException as exc:
            raise ServiceError(f"kafka: cannot create consumer: {exc}") from exc
        self._dead_letters: Producer | None = None
        if settings.dead_letter_topic:
            self._dead_letters = Producer(producer_config(settings))
        self._assignment: set[TopicPartition] = set()
        self._starts: dict[TopicPartition, int] = {}  # explicit start offsets given
        self._lag_labels: set[TopicPartition] = set()
        self._paused = False
        self._offsets = StartOffsets(
            self._consumer, settings.start_policy, self.committed, self._metrics
        )
        strategy = str(consumer_config(settings)["partition.assignment.strategy"])
        self._cooperative = "cooperative" in strategy

    @property
    def assignment(self) -> set[TopicPartition]:
        return set(self._assignment)

    def subscribe(self) -> None:
        self._consumer.subscribe(
            list(self._settings.topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        starts = self._rebalance.assigned(tps)
        # None: no watermark in Redis; left out: not known yet (Redis down, seeked later)
        offsets = self._assigned_unstarted(
            [tp for tp in tps if tp in starts and starts[tp] is None]
        )
        self._rebalance.started(offsets)
        offsets.update((tp, o) for tp, o in starts.items() if o is not None)
        self._starts.update((tp, o) for tp, o in offsets.items() if o >= 0)
        assign = [
            KafkaTopicPartition(t, p, offsets[(t, p)])
            if (t, p) in offsets
            else KafkaTopicPartition(t, p)
            for t, p in tps
        ]
        if self._cooperative:
            consumer.incremental_assign(assign)
            self._assignment.update(tps)
        else:  # eager protocols hand over the whole assignment each time
            consumer.assign(assign)
            self._assignment = set(tps)
        if self._paused:
            consumer.pause(assign)
        log.info("partitions_assigned", partitions=_fmt(tps), starts=_fmt_starts(starts))

    def _assigned_unstarted(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Start offsets of newly assigned partitions without a watermark (see `unstarted`);
        none when the group coordinator does not answer (librdkafka's error decides)."""
        try:
            unstarted = self.unstarted(tps)
        except ServiceError as exc:
            log.warning("committed_offsets_unavailable", error=str(exc))
            return {}
        warn_resumed(
            "committed_without_watermark",
            unstarted.resumed,
            "the group has committed these partitions but Redis holds no watermark for them: "
            "Redis lost driftmon's data (or another application uses this group id). Reading "
            "on from the committed offsets; earlier counts are not in the windows",
        )
        return dict(unstarted.offsets)

    def unstarted(self, tps: Sequence[TopicPartition]) -> Unstarted:
        """Where assigned partitions without a watermark in Redis start."""
        return self._offsets.unstarted(tps)

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        self._rebalance.revoked(tps)
        self.commit()
        self._unassign(consumer, partitions)
        log.info("partitions_revoked", partitions=_fmt(tps))

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        self._rebalance.lost(tps)
        self._unassign(consumer, partitions)
        log.warning("partitions_lost", partitions=_fmt(tps))

    def _unassign(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        if self._cooperative:
            consumer.incremental_unassign(partitions)
        else:
            consumer.unassign()
        gone = [(p.topic, p.partition) for p in partitions]
        self._assignment.difference_update(gone)
        for tp in gone:
            self._starts.pop(tp, None)
            if tp in self._lag_labels:
                self._lag_labels.discard(tp)
                self._metrics.consumer_lag.remove(tp[0], str(tp[1]))

    def consume(self) -> list[Record]:
        """Up to `batch_size` messages; errors other than end-of-partition are logged."""
        try:
            messages = self._consumer.consume(
                num_messages=self._settings.batch_size,
                timeout=self._settings.poll_timeout_seconds,
            )
        except KafkaException as exc:
            raise ServiceError(f"kafka: {exc}") from exc
        records: list[Record] = [msg for msg in messages if msg.error() is None]
        if len(records) < len(messages):
            self._errors(messages)
        return records

    def _errors(self, messages: Sequence[Message]) -> None:
        """Handle the error events among `messages`: restart partitions whose offset is
        gone, log the rest, raise on a fatal one."""
        restarts: dict[TopicPartition, int] = {}
        for msg in messages:
            err = msg.error()
            if err is None or err.code() == KafkaError._PARTITION_EOF:
                continue
            if err.code() == KafkaError._AUTO_OFFSET_RESET:
                tp = (msg.topic() or "", msg.partition() or 0)
                if tp in self._assignment:  # else revoked since: its new owner starts it
                    restarts[tp] = self._offsets.restart_target(tp, msg.offset())
                continue
            log.warning("kafka_error", error=str(err), fatal=err.fatal())
            if err.fatal():
                raise ServiceError(f"kafka: fatal error: {err}")
        if restarts:
            self._restart(restarts)

    def _restart(self, targets: dict[TopicPartition, int]) -> None:
        """Assign partitions again at `targets` (a stopped partition cannot be seeked)."""
        starts = [KafkaTopicPartition(t, p, o) for (t, p), o in targets.items()]
        try:
            if self._cooperative:
                self._consumer.incremental_unassign([KafkaTopicPartition(t, p) for t, p in targets])
                self._consumer.incremental_assign(starts)
            else:  # eager: the whole assignment, every other partition where it is
                self._consumer.assign([*starts, *self._positions(exclude=targets)])
            if self._paused:  # librdkafka kept the pause here (seen); not documented
                self._consumer.pause(starts)
        except KafkaException as exc:
            raise ServiceError(f"kafka: restart {_fmt_starts(dict(targets))}: {exc}") from exc
        self._starts.update((tp, o) for tp, o in targets.items() if o >= 0)

    def _positions(self, exclude: Collection[TopicPartition]) -> list[KafkaTopicPartition]:
        """Assigned partitions at their positions (else their start, else committed)."""
        others = [KafkaTopicPartition(t, p) for t, p in self._assignment if (t, p) not in exclude]
        out = []
        for tp in self._consumer.position(others) if others else []:
            key = (tp.topic, tp.partition)
            offset = tp.offset if tp.offset >= 0 else self._starts.get(key)
            out.append(
                KafkaTopicPartition(tp.topic, tp.partition, offset)
                if offset is not None
                else KafkaTopicPartition(tp.topic, tp.partition)
            )
        return out

    def poll_idle(self, timeout: float) -> list[Record]:
        """Serve heartbeats and rebalance callbacks while paused.

        Returns any message fetched before the pause took effect, so none is lost.
        """
        try:
            messages = self._consumer.consume(
                num_messages=self._settings.batch_size, timeout=timeout
            )
        except KafkaException as exc:
            raise ServiceError(f"kafka: {exc}") from exc
        records: list[Record] = [m for m in messages if m.error() is None]
        if len(records) < len(messages):  # a stopped partition must restart while paused too
            self._errors(messages)
        return records

    def store_offsets(self, next_offsets: dict[TopicPartition, int]) -> None:
        """Mark offsets (the next to read) as safe to commit."""
        tps = [
            KafkaTopicPartition(t, p, o)
            for (t, p), o in next_offsets.items()
            if (t, p) in self._assignment
        ]
        if not tps:
            return
        try:
            self._consumer.store_offsets(offsets=tps)
        except KafkaException as exc:  # e.g. revoked in between: the next owner resumes
            log.info("store_offsets_skipped", error=str(exc))

    def commit(self) -> None:
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("commit_failed", error=str(exc))

    def seek_to(self, starts: dict[TopicPartition, int | None]) -> None:
        """Move assigned partitions to the given offsets (None: the start policy; resolve
        committed offsets first with `unstarted`)."""
        for (t, p), offset in starts.items():
            if (t, p) not in self._assignment:
                continue
            if offset is None:
                target = self._offsets.policy_offset((t, p))
            else:
                target = self._starts[(t, p)] = offset
            try:
                self._consumer.seek(KafkaTopicPartition(t, p, target))
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError._STATE:
                    raise ServiceError(f"kafka: seek {t}:{p}: {exc}") from exc
                # stopped after a failed fetch (its error event is on the way): restart it
                self._restart({(t, p): target})

    def committed(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        tps = [KafkaTopicPartition(t, p) for t, p in partitions]
        try:
            result = self._consumer.committed(tps, timeout=10)
        except KafkaException as exc:
            raise ServiceError(f"kafka: committed offsets: {exc}") from exc
        return {
            (r.topic, r.partition): (
                None if r.offset == OFFSET_INVALID or r.offset < 0 else r.offset
            )
            for r in result
        }

    def pause(self) -> None:
        if not self._paused:
            self._consumer.pause(self._current())
            self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._consumer.resume(self._current())
            self._paused = False
            self._wake_fetcher()

    def _wake_fetcher(self) -> None:
        """Have librdkafka notice resumed partitions now, not up to a second later.

        A broker thread with nothing to fetch sleeps up to 1 s and a resume does not wake
        it (seen: fetching restarted 1.04 s after resume); a metadata request does. Best
        effort: with several brokers it wakes the one that answers.
        """
        try:
            self._consumer.list_topics(self._settings.topics[0], timeout=WAKE_TIMEOUT_S)
        except KafkaException as exc:
            log.debug("wake_fetcher_failed", error=str(exc))

    def _current(self) -> list[KafkaTopicPartition]:
        return [KafkaTopicPartition(t, p) for t, p in self._assignment]

    def dead_letter(self, record: Record, reason: str) -> None:
        """Copy a message to the dead-letter topic, reason in a header (at least once)."""
        if self._dead_letters is None or self._settings.dead_letter_topic is None:
            return
        origin = f"{record.topic()}:{record.partition()}:{record.offset()}"
        try:
            self._dead_letters.produce(
                self._settings.dead_letter_topic,
                value=record.value(),
                key=record.key(),
                headers=[(DEAD_LETTER_REASON_HEADER, reason), (DEAD_LETTER_ORIGIN_HEADER, origin)],
            )
        except BufferError:
            self._dead_letters.poll(1.0)
            self._dead_letters.produce(
                self._settings.dead_letter_topic,
                value=record.value(),
                key=record.key(),
                headers=[(DEAD_LETTER_REASON_HEADER, reason), (DEAD_LETTER_ORIGIN_HEADER, origin)],
            )
        self._dead_letters.poll(0)

    def export_lag(self) -> None:
        """Set `driftmon_consumer_lag_messages` for every assigned partition."""
        for (topic, partition), lag in self.lag().items():
            self._metrics.consumer_lag.labels(topic, str(partition)).set(lag)
            self._lag_labels.add((topic, partition))

    def lag(self) -> dict[TopicPartition, int]:
        """Messages behind the high watermark per assigned partition (cached offsets)."""
        out: dict[TopicPartition, int] = {}
        try:
            positions = self._consumer.position(self._current())
        except KafkaException:
            return out
        for tp in positions:
            try:
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high >= 0 and tp.offset >= 0:
                out[(tp.topic, tp.partition)] = max(0, high - tp.offset)
        return out

    def close(self) -> None:
        """Commit stored offsets and leave the group (revoke callbacks run first)."""
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("consumer_close_failed", error=str(exc))
        if self._dead_letters is not None:
            self._dead_letters.flush(10)


def _fmt(tps: Sequence[TopicPartition]) -> str:
    return ",".join(f"{t}:{p}" for t, p in sorted(tps))


def _fmt_starts(starts: dict[TopicPartition, int | None]) -> str:
    return ",".join(
        f"{t}:{p}@{o if o is not None else 'committed'}" for (t, p), o in starts.items()
    )
