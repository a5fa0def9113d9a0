"""Where a partition starts when driftmon has no position for it, and where it resumes
when the broker no longer has its position. Part of the Kafka source (I/O edge).

librdkafka's own `auto.offset.reset` is off (`error`): it would move a partition whose
position was deleted by retention to the end of the log without an error event,
skipping what is still retained. Here:
- a partition with no watermark in Redis starts at the group's committed offset, else
  where the user's `auto.offset.reset` says (latest by default; `error` stops);
- a position the broker no longer has resumes at the earliest retained message; the
  messages skipped are counted in `driftmon_messages_lost_total` and logged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition

from monitor.errors import ServiceError
from monitor.metrics import Metrics

log = structlog.get_logger(__name__)

TopicPartition = tuple[str, int]
WATERMARK_TIMEOUT_S = 5.0
_FIRST = {"earliest", "smallest", "beginning"}


@dataclass(frozen=True, slots=True)
class Unstarted:
    """Start offsets of partitions Redis has no watermark for."""

    offsets: dict[TopicPartition, int]  # a partition left out: librdkafka's error decides
    resumed: dict[TopicPartition, int]  # those at the group's committed offset


def warn_resumed(event: str, resumed: Mapping[TopicPartition, int], action: str) -> None:
    """One warning naming the committed offsets partitions without a watermark resume from:
    a commit without a watermark means Redis lost driftmon's data."""
    if resumed:
        log.warning(
            event,
            resumed_from={f"{t}:{p}": o for (t, p), o in sorted(resumed.items())},
            action=action,
        )


class StartOffsets:
    """Decides start offsets for a consumer; asks the broker for watermarks and commits."""

    def __init__(
        self,
        consumer: Consumer,
        policy: str,
        committed: Callable[[Sequence[TopicPartition]], dict[TopicPartition, int | None]],
        metrics: Metrics,
    ) -> None:
        self._consumer = consumer
        self._policy = policy  # the user's auto.offset.reset (KafkaSettings.start_policy)
        self._committed = committed
        self._metrics = metrics
        self._lost_to: dict[TopicPartition, int] = {}  # log start up to which loss is counted

    def unstarted(self, tps: Sequence[TopicPartition]) -> Unstarted:
        """Where partitions without a watermark in Redis start: at the group's committed
        offset, else by the start policy (absolute, where the broker answers). Resolved
        here, not through librdkafka's "no committed offset" error event, which restarts
        the partition only once the application polls (a paused new member would start
        late). With the policy 'error' a partition without a commit is left out: assigned
        without an offset, that error event decides (`restart_target`).

        Raises ServiceError when the group coordinator does not answer.
        """
        if not tps:
            return Unstarted({}, {})
        committed = self._committed(tps)
        resumed = {tp: o for tp, o in committed.items() if o is not None}
        offsets = dict(resumed)
        if self._policy != "error":
            offsets.update((tp, self._policy_start(tp)) for tp in tps if tp not in resumed)
        return Unstarted(offsets, resumed)

    def _policy_start(self, tp: TopicPartition) -> int:
        """The start policy's offset as an absolute one where the broker answers: librdkafka
        resolves a logical offset given at assignment ~0.4 s later (measured on the mock
        broker; a replica joining a group would start counting that much later)."""
        first = self._policy in _FIRST
        try:
            low, high = self._consumer.get_watermark_offsets(
                KafkaTopicPartition(*tp), timeout=WATERMARK_TIMEOUT_S
            )
        except KafkaException:
            return self.policy_offset(tp)
        offset = low if first else high
        return offset if offset >= 0 else self.policy_offset(tp)

    def restart_target(self, tp: TopicPartition, offset: int | None) -> int:
        """Where a partition librdkafka stopped for want of a valid offset starts again.

        `offset` is where the fetch failed; None or negative when the partition had no
        start at all (no watermark in Redis, no committed offset): then the start policy.
        """
        if offset is None or offset < 0:
            log.info(
                "partition_started_by_policy",
                topic=tp[0],
                partition=tp[1],
                policy=self._policy,
            )
            return self.policy_offset(tp)
        return self._after_out_of_range(tp, offset)

    def _after_out_of_range(self, tp: TopicPartition, offset: int) -> int:
        """Where to read on after the broker said `offset` is out of range."""
        topic, partition = tp
        try:
            low, high = self._consumer.get_watermark_offsets(
                KafkaTopicPartition(topic, partition), timeout=WATERMARK_TIMEOUT_S
            )
        except KafkaException as exc:
            log.warning(
                "kafka_messages_lost",
                topic=topic,
                partition=partition,
                first_missing=offset,
                messages="unknown",
                error=f"log start not available: {exc}",
                action="resuming at the earliest message the broker has",
            )
            return OFFSET_BEGINNING
        if offset < low:
            # the same gap can be reported twice (an eager re-assignment restarts other
            # stopped partitions at their failed offset): count each offset once
            counted_to = self._lost_to.get(tp, offset)
            lost = low - max(offset, counted_to)
            self._lost_to[tp] = max(low, counted_to)
            if lost <= 0:
                return low
            self._metrics.messages_lost.labels(topic, str(partition)).inc(lost)
            log.warning(
                "kafka_messages_lost",
                topic=topic,
                partition=partition,
                first_missing=offset,
                resumed_at=low,
                messages=lost,
                reason="deleted by the broker (retention) before driftmon read them",
            )
            if self._policy == "error":
                raise ServiceError(
                    f"kafka: {topic}:{partition}: offsets {offset}..{low - 1} were deleted "
                    f"before driftmon read them ({lost} messages); auto.offset.reset is "
                    "'error' in kafka.options"
                )
            return low
        if offset > high:
            log.warning(
                "kafka_offset_beyond_end",
                topic=topic,
                partition=partition,
                offset=offset,
                log_end=high,
                action=f"the topic was recreated or truncated; starting by policy {self._policy}",
            )
            return self.policy_offset(tp)
        return offset  # in range again (e.g. the leader moved): read on where it failed

    def policy_offset(self, tp: TopicPartition) -> int:
        """The offset the user's auto.offset.reset names for a partition with no start."""
        policy = self._policy
        if policy == "error":
            raise ServiceError(
                f"kafka: {tp[0]}:{tp[1]} has no watermark in Redis and no committed offset, "
                "and auto.offset.reset is 'error' in kafka.options"
            )
        return OFFSET_BEGINNING if policy in _FIRST else OFFSET_END
