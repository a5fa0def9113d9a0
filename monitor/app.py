"""Wiring and the main loop of `driftmon run`. Builds components from settings; no logic.

Loop: consume a batch -> process -> flush when due. When Redis fails the partitions are
paused (the consumer keeps polling so it stays in its group), readiness turns false and
the flush is retried with capped exponential backoff; nothing is dropped from memory.
SIGTERM/SIGINT: stop consuming, flush, commit, leave the group.
"""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import msgspec
import redis
import structlog

from monitor.alerts.delivery import Delivery
from monitor.alerts.outbox import Outbox
from monitor.alerts.sinks import AlertmanagerResender, AlertmanagerSink, build_sinks
from monitor.baseline import load_baseline
from monitor.clock import Clock
from monitor.decode import ModelSchema
from monitor.errors import ConfigError, RedisUnavailable
from monitor.evaluator import Evaluator
from monitor.exporter import StateCollector
from monitor.http import HttpServer
from monitor.metrics import Metrics
from monitor.settings import RedisSettings, Settings
from monitor.source.kafka import LAG_INTERVAL_S, KafkaSource, TopicPartition
from monitor.source.offsets import warn_resumed
from monitor.states import read_states
from monitor.stream import Conflict, Health, Stream
from monitor.window.keys import Keys
from monitor.window.store import REDIS_ERRORS, WindowStore

log = structlog.get_logger(__name__)

BACKOFF_START = 0.1
BACKOFF_MAX = 5.0


def redis_client(settings: RedisSettings) -> redis.Redis:
    """A client for the configured URL; credentials from settings override the URL's."""
    kwargs: dict[str, object] = {
        "socket_timeout": settings.socket_timeout_seconds,
        "socket_connect_timeout": settings.socket_timeout_seconds,
        "health_check_interval": 30,
    }
    if settings.username:
        kwargs["username"] = settings.username
    if settings.password is not None:
        kwargs["password"] = settings.password.get_secret_value()
    try:
        return redis.Redis.from_url(settings.url, **kwargs)
    except ValueError as exc:
        raise ConfigError(f"redis.url: {exc}") from None


def load_schemas(settings: Settings) -> dict[str, ModelSchema]:
    """Every configured model's baseline, as decoding schemas."""
    if not settings.models:
        raise ConfigError("models: no model configured; add one with its baseline file")
    return {
        name: ModelSchema.from_baseline(load_baseline(model.baseline))
        for name, model in settings.models.items()
    }


def publish_baselines(client: redis.Redis, keys: Keys, schemas: dict[str, ModelSchema]) -> None:
    """Put the baselines in force into Redis so every reader sees the same ones."""
    pipe = client.pipeline(transaction=False)
    for model, schema in schemas.items():
        pipe.set(keys.baseline(model), msgspec.json.encode(schema.baseline.document))
    pipe.sadd(keys.models, *schemas)
    pipe.execute()


def tune_gc() -> None:
    """Make the cyclic GC rare: the hot path allocates many short-lived acyclic objects.

    With the default gen-0 threshold (700) the collector runs several times per batch and
    promotes batch objects into older generations, costing ~30% of decode time (measured,
    BENCHMARKS.md). Long-lived objects built at start are frozen out of collections.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


class Runner:
    """The consume/process/flush loop around a `Stream` and a `KafkaSource`."""

    def __init__(
        self,
        stream: Stream,
        source: KafkaSource,
        health: Health,
        clock: Clock,
        on_state_lost: Callable[[], None] | None = None,
    ) -> None:
        self._stream = stream
        self._source = source
        self._health = health
        self._clock = clock
        self._on_state_lost = on_state_lost
        self._backoff = BACKOFF_START
        self._flush_failed = False
        self._lag_due = 0.0

    def step(self) -> None:
        """One loop iteration."""
        self._health.last_loop = self._clock.monotonic()
        if self._stream.needs_reset:
            self._recover()
            return
        if self._flush_failed:
            self._retry_flush()
            return
        records = self._source.consume()
        if records:
            self._stream.process(records)
        if self._stream.flush_due():
            self._flush()
        now = self._clock.monotonic()
        if now >= self._lag_due:
            self._lag_due = now + LAG_INTERVAL_S
            self._source.export_lag()

    def _flush(self) -> None:
        try:
            self._stream.flush()
        except RedisUnavailable as exc:
            log.warning("redis_unavailable_pausing", error=str(exc))
            self._health.redis_ok = False
            self._flush_failed = True
            self._source.pause()
        except Conflict as exc:
            log.warning("flush_conflict_resetting", error=str(exc))
            self._stream.lost([])  # drop memory, re-read assigned partitions from Redis

    def _wait(self) -> None:
        """Back off while staying in the group (poll serves heartbeats and rebalances)."""
        records = self._source.poll_idle(self._backoff)
        if records:  # fetched before the pause took effect: keep them, nothing is lost
            self._stream.process(records)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    def _retry_flush(self) -> None:
        self._wait()
        try:
            self._stream.flush()
        except RedisUnavailable:
            return
        except Conflict:
            self._stream.lost([])
        self._flush_failed = False
        self._backoff = BACKOFF_START
        self._source.resume()
        log.info("redis_back_resumed")

    def _recover(self) -> None:
        self._source.pause()
        try:
            starts = self._stream.reset()
        except RedisUnavailable:
            self._health.redis_ok = False
            self._wait()
            return
        self._source.seek_to(self._resolve_missing(starts))
        self._source.resume()
        self._flush_failed = False
        self._backoff = BACKOFF_START
        log.info("partitions_reset_from_redis", partitions=len(starts))

    def _resolve_missing(
        self, starts: dict[TopicPartition, int | None]
    ) -> dict[TopicPartition, int | None]:
        """Start partitions Redis has no watermark for at the group's committed offset.

        A committed offset without a watermark means Redis lost driftmon's data (restarted
        without persistence, flushed, failed over to an empty replica): say so, and what
        happens, in one warning.
        """
        missing = sorted(tp for tp, offset in starts.items() if offset is None)
        if not missing:
            return starts
        unstarted = self._source.unstarted(missing)
        warn_resumed(
            "redis_state_lost",
            unstarted.resumed,
            "Redis holds no watermark for partitions this group has committed: its data was "
            "lost. Re-reading each partition from the group's committed offset; counts of "
            "earlier events are gone from the windows; baselines re-published; alert states "
            "start over",
        )
        if unstarted.resumed and self._on_state_lost is not None:
            self._on_state_lost()
        self._stream.started(unstarted.offsets)
        return {**starts, **unstarted.offsets}

    def shutdown(self) -> None:
        """Flush what is pending (best effort), commit and leave the group."""
        if not self._stream.needs_reset:
            try:
                self._stream.flush()
            except (RedisUnavailable, Conflict) as exc:
                log.warning("final_flush_failed", error=str(exc))
        self._source.close()


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT (restores the previous handlers afterwards)."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run(settings: Settings, clock: Clock, stop: threading.Event) -> None:
    """`driftmon run`: the daemon, until `stop` is set."""
    metrics = Metrics()
    health = Health()
    schemas = load_schemas(settings)
    health.baselines_loaded = True
    tune_gc()
    client = redis_client(settings.redis)
    keys = Keys(settings.redis.key_prefix)
    store = WindowStore(client, keys)
    metrics.registry.register(StateCollector(lambda: read_states(client, keys)))
    http = HttpServer(
        settings.http, metrics, health, clock, read_state=lambda m: read_states(client, keys, m)
    )
    http.start()
    log.info("http_listening", host=settings.http.host, port=http.port)
    alerting = Alerting(settings, schemas, client, clock, metrics)
    try:
        _publish_until_done(client, keys, schemas, health, clock, stop)
        alerting.start(stop)
        windows = {m: settings.windows_for(m) for m in schemas}
        stream = Stream(
            settings.kafka, settings.windows, schemas, windows, store, clock, metrics, health
        )
        source = KafkaSource(settings.kafka, stream, metrics=metrics)
        stream.source = source
        source.subscribe()
        runner = Runner(stream, source, health, clock, lambda: _republish(client, keys, schemas))
        log.info("running", models=sorted(schemas), topics=settings.kafka.topics)
        while not stop.is_set():
            runner.step()
        runner.shutdown()
    finally:
        alerting.stop()
        http.stop()
        client.close()
    log.info("stopped")


class Alerting:
    """The evaluator thread, the durable outbox and the delivery workers."""

    def __init__(
        self,
        settings: Settings,
        schemas: dict[str, ModelSchema],
        client: redis.Redis,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        sinks = build_sinks(settings.alerting, clock=clock)
        keys = Keys(settings.redis.key_prefix)
        self.outbox = Outbox(client, keys, [s.name for s in sinks], metrics=metrics)
        self.evaluator = Evaluator(settings, schemas, client, clock, metrics, self.outbox)
        resender = AlertmanagerResender(
            [s for s in sinks if isinstance(s, AlertmanagerSink)],
            self.evaluator.firing_alerts,
            clock=clock,
            metrics=metrics,
            interval=settings.alerting.resend_seconds,
        )
        self.delivery = Delivery(
            self.outbox,
            sinks,
            clock,
            metrics,
            resender=resender,
            lease_seconds=settings.evaluation.lease_seconds,
        )
        self._interval = settings.evaluation.interval_seconds
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, stop: threading.Event) -> None:
        self.delivery.start()
        self._thread = threading.Thread(target=self._loop, args=(stop,), name="evaluator")
        self._thread.start()

    def _loop(self, stop: threading.Event) -> None:
        while not (stop.is_set() or self._stop.is_set()):
            try:
                if self.evaluator.run_once():
                    self.delivery.wake()
            except Exception:  # the evaluator must outlive any bug in one round
                log.exception("evaluation_failed")
            stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.evaluator.release()
        self.delivery.stop()
        self.delivery.close()


def _republish(client: redis.Redis, keys: Keys, schemas: dict[str, ModelSchema]) -> None:
    try:
        publish_baselines(client, keys, schemas)
    except REDIS_ERRORS as exc:  # the next state loss, or a restart, publishes them again
        log.warning("baselines_republish_failed", error=str(exc))


def _publish_until_done(
    client: redis.Redis,
    keys: Keys,
    schemas: dict[str, ModelSchema],
    health: Health,
    clock: Clock,
    stop: threading.Event,
) -> None:
    delay = BACKOFF_START
    while not stop.is_set():
        try:
            publish_baselines(client, keys, schemas)
        except REDIS_ERRORS as exc:
            log.warning("redis_unavailable_at_start", error=str(exc), retry_in=delay)
            clock.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
            continue
        health.redis_ok = True
        return
