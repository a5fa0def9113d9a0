"""Prometheus metric definitions, all in one place, on a registry the app owns (SPEC §6).

Components receive a `Metrics` instance; nothing uses prometheus_client's global REGISTRY.
Label values are bounded: models and features come from configuration and baselines,
reasons from `monitor.decode.Reason`; categories never become labels.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from monitor import __version__


class Metrics:
    """Counters and histograms updated by the stream, evaluator and sinks."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build_info = Info("driftmon_build", "driftmon version.", registry=r)
        self.build_info.info({"version": __version__})
        self.events = Counter(
            "driftmon_events",
            "Valid inference events counted into windows, per model.",
            ["model"],
            registry=r,
        )
        self.events_invalid = Counter(
            "driftmon_events_invalid",
            "Events that could not be used, by reason (see README: invalid events).",
            ["reason"],
            registry=r,
        )
        self.events_late = Counter(
            "driftmon_events_late",
            "Valid events older than the longest window plus grace: counted, not windowed.",
            ["model"],
            registry=r,
        )
        self.events_skipped = Counter(
            "driftmon_events_replayed_skipped",
            "Events read again after a restart or rebalance and skipped as already counted.",
            ["model"],
            registry=r,
        )
        self.dead_letters = Counter(
            "driftmon_dead_letters",
            "Messages copied to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.flush_duration = Histogram(
            "driftmon_flush_duration_seconds",
            "Time to apply one flush of count deltas to Redis (all models).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.flush_conflicts = Counter(
            "driftmon_flush_conflicts",
            "Flushes refused because another consumer advanced a watermark (rebalance).",
            registry=r,
        )
        self.messages_lost = Counter(
            "driftmon_messages_lost",
            "Kafka messages the broker deleted (retention) before driftmon read them: "
            "skipped offsets, per partition. Their events are missing from the windows.",
            ["topic", "partition"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "driftmon_consumer_lag_messages",
            "Messages behind the partition's high watermark.",
            ["topic", "partition"],
            registry=r,
        )
        self.evaluation_duration = Histogram(
            "driftmon_evaluation_duration_seconds",
            "Evaluation time per model (all windows): its share of a round, which evaluates "
            "every held model at once, Redis round trips included.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.redis_up = Gauge(
            "driftmon_redis_up", "1 when the last Redis call succeeded.", registry=r
        )
        self.notifications = Counter(
            "driftmon_notifications",
            "Alert notifications per sink and outcome: delivered, retry, rejected, "
            "dropped_overflow, filtered (below the sink's min_severity), resent, resend_failed.",
            ["sink", "outcome"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "driftmon_outbox_depth",
            "Notifications waiting in a sink's durable Redis queue.",
            ["sink"],
            registry=r,
        )
        self.notification_duration = Histogram(
            "driftmon_notification_duration_seconds",
            "Time of one delivery attempt (HTTP round trip) per sink.",
            ["sink"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
