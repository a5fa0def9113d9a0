"""The evaluator: every `evaluation.interval_seconds`, for every model this replica holds
the lease of, bring the window sums up to date, evaluate, advance the alert state machine,
replace the state document, and queue notifications. I/O edge around `monitor.evaluate`
and `monitor.alerts.rules`.

A round costs a few pipelined round trips for all models together, not a few per
model: renew the leases; read bucket versions, progress and alert states; read the
buckets that changed (`monitor.window.cache`: in steady state only the current one);
write the state documents. Parsed buckets and window sums stay in memory between rounds.

Several replicas: a model is evaluated by the holder of `<prefix>:{<model>}:lease` (SET NX
PX, renewed every round by its holder). A replica that dies stops renewing, and another
takes over within one lease period, continuing from the alert states stored in Redis.

Order of writes, so that no transition is lost or duplicated by a crash: notifications
are queued first (idempotent ids), then each model's state document and alert states
are replaced together (one Lua call; one hash slot).
"""

from __future__ import annotations

import math
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import redis
import structlog

from monitor.alerts.model import Alert
from monitor.alerts.outbox import Outbox, append_alert_log
from monitor.alerts.rules import AlertState, Transition, step, to_alert, to_notification
from monitor.clock import Clock
from monitor.decode import ModelSchema
from monitor.errors import RedisUnavailable
from monitor.evaluate import EvaluationInput, WindowTotals, evaluate_totals, iso_time
from monitor.metrics import Metrics
from monitor.settings import Rules, Settings
from monitor.window.buckets import window_buckets
from monitor.window.cache import WindowCache
from monitor.window.counts import Layout, layout_of, parse_packed
from monitor.window.keys import Keys
from monitor.window.store import REDIS_ERRORS, WindowStore, parse_progress, parse_versions

log = structlog.get_logger(__name__)

_STATES = msgspec.json.Decoder(dict[str, AlertState])

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""

_SAVE = """
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""


@dataclass(frozen=True, slots=True)
class _Model:
    """What the settings say about one model, resolved once."""

    schema: ModelSchema
    layout: Layout
    rules: Rules
    windows: dict[str, int]  # name -> seconds
    longest: int
    latency_slo_ms: float | None


class Evaluator:
    """Evaluates the models whose lease this replica holds."""

    def __init__(
        self,
        settings: Settings,
        schemas: dict[str, ModelSchema],
        client: redis.Redis,
        clock: Clock,
        metrics: Metrics,
        outbox: Outbox | None = None,
        replica: str | None = None,
    ) -> None:
        self._settings = settings
        self._schemas = schemas
        self._redis = client
        self._keys = Keys(settings.redis.key_prefix)
        self._store = WindowStore(client, self._keys)
        self._clock = clock
        self._metrics = metrics
        self._outbox = outbox
        # host and pid make the lease holder findable from `redis-cli GET ...:lease`
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renew = client.register_script(_RENEW)
        self._save = client.register_script(_SAVE)
        self._firing: dict[str, list[Alert]] = {}
        self._held: set[str] = set()
        self._models = {model: self._resolve(model, schema) for model, schema in schemas.items()}
        self._caches: dict[str, WindowCache] = {}

    def _resolve(self, model: str, schema: ModelSchema) -> _Model:
        settings = self._settings
        windows = settings.windows_for(model)
        slo = settings.models[model].latency_slo_ms if model in settings.models else None
        return _Model(
            schema=schema,
            layout=layout_of(schema),
            rules=settings.rules_for(model),
            windows=windows,
            longest=max(windows.values()),
            latency_slo_ms=slo,
        )

    def run_once(self) -> list[str]:
        """One round over all models; returns the models evaluated here."""
        started = time.perf_counter()
        models = list(self._schemas)
        ms = int(self._settings.evaluation.lease_seconds * 1000)
        try:
            # One round trip: renew the leases and read what evaluating needs (wasted
            # for the models another replica holds: three small replies each).
            pipe = self._redis.pipeline(transaction=False)
            for model in models:
                self._renew(keys=[self._keys.lease(model)], args=[self.replica, ms], client=pipe)
            self._queue_reads(pipe, models)
            replies = self._call(pipe.execute)
            held = self._held_now(models, replies[: len(models)])
            if not held:
                return []
            reads = dict(zip(models, _triples(replies[len(models) :]), strict=True))
            self._evaluate(held, [reads[m] for m in held])
        except RedisUnavailable as exc:
            log.warning("evaluation_skipped_redis_unavailable", error=str(exc))
            return []
        share = (time.perf_counter() - started) / len(held)  # the round trips are shared
        for _ in held:
            self._metrics.evaluation_duration.observe(share)
        return held

    def _held_now(self, models: list[str], replies: list[Any]) -> list[str]:
        held = []
        for model, reply in zip(models, replies, strict=True):
            if reply:
                if model not in self._held:
                    log.info("lease_acquired", model=model, replica=self.replica)
                held.append(model)
            else:
                self._firing.pop(model, None)
                self._caches.pop(model, None)  # another replica's now: counts move on
        self._held = set(held)
        return held

    def release(self) -> None:
        """Give up every lease (clean shutdown: another replica takes over at once)."""
        for model in list(self._held):
            try:
                self._redis.eval(
                    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                    "return redis.call('DEL', KEYS[1]) end return 0",
                    1,
                    self._keys.lease(model),
                    self.replica,
                )
            except REDIS_ERRORS:
                continue
        self._held.clear()

    def evaluate(self, model: str) -> dict[str, Any]:
        """Evaluate one model now; returns the state document written."""
        return self.evaluate_models([model])[model]

    def evaluate_models(self, models: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Evaluate the given models now (lease or not); returns their state documents."""
        pipe = self._redis.pipeline(transaction=False)
        self._queue_reads(pipe, models)
        return self._evaluate(models, list(_triples(self._call(pipe.execute))))

    def _queue_reads(self, pipe: Any, models: Sequence[str]) -> None:
        """Per model: bucket versions, progress, alert states."""
        for model in models:
            pipe.hgetall(self._keys.bucket_versions(model))
            pipe.hgetall(self._keys.progress(model))
            pipe.get(self._keys.alert_states(model))

    def _evaluate(
        self, models: Sequence[str], reads: Sequence[tuple[Any, Any, Any]]
    ) -> dict[str, dict[str, Any]]:
        now = self._clock.now()
        bucket_seconds = self._settings.windows.bucket_seconds
        keys = self._keys
        plans = []
        wanted: list[tuple[str, int]] = []
        windows: dict[int, list[int]] = {}  # longest window -> its bucket starts
        for i, model in enumerate(models):
            m = self._models[model]
            cache = self._caches.get(model)
            if cache is None:
                lengths = {name: s // bucket_seconds for name, s in m.windows.items()}
                cache = self._caches[model] = WindowCache(m.layout, lengths)
            starts = windows.get(m.longest) or windows.setdefault(
                m.longest, window_buckets(now, m.longest, bucket_seconds)
            )
            versions = parse_versions(reads[i][0])
            wanted += [(model, start) for start in cache.stale(starts, versions)]
            plans.append((model, m, cache, starts, versions))
        packed = iter(self._store.read_packed(wanted))
        fetched: dict[str, dict[int, Any]] = {model: {} for model in models}
        for model, start in wanted:
            fetched[model][start] = parse_packed(self._models[model].layout, next(packed))

        inputs = []
        for i, (model, m, cache, starts, versions) in enumerate(plans):
            cache.update(starts, versions, fetched[model])
            spec = EvaluationInput(
                schema=m.schema,
                rules=m.rules,
                windows=m.windows,
                bucket_seconds=bucket_seconds,
                latency_slo_ms=m.latency_slo_ms,
                no_traffic_seconds=m.rules.no_traffic_seconds,
                progress=parse_progress(reads[i][1]),
                evaluation_interval=self._settings.evaluation.interval_seconds,
            )
            inputs.append(WindowTotals(spec, cache.totals(), cache.last_traffic()))
        results = evaluate_totals(inputs, now)

        docs: dict[str, dict[str, Any]] = {}
        saves: list[tuple[str, bytes, bytes]] = []
        for i, (model, result) in enumerate(zip(models, results, strict=True)):
            states = self._decode_states(model, reads[i][2])
            new_states, transitions = step(states, result.findings_for(states), now)
            self._notify(model, transitions, now)
            base = self._settings.alerting.runbook_base_url
            firing = {k: s for k, s in new_states.items() if s.status == "firing"}
            self._firing[model] = [to_alert(model, k, s, now, base) for k, s in firing.items()]
            docs[model] = {
                "model": model,
                "evaluated_at": iso_time(now),
                "baseline_id": self._models[model].schema.baseline.id,
                "severity": result.severity,
                "windows": result.windows,
                "alerts": [_active(k, s) for k, s in sorted(firing.items())],
            }
            saves.append((model, msgspec.json.encode(docs[model]), msgspec.json.encode(new_states)))

        pipe = self._redis.pipeline(transaction=False)
        for model, doc, states_json in saves:
            self._save(
                keys=[keys.state(model), keys.alert_states(model)],
                args=[doc, states_json],
                client=pipe,
            )
        self._call(pipe.execute)
        return docs

    def _notify(self, model: str, transitions: list[Transition], now: float) -> None:
        """Queue each transition's notification and log it (before the states are saved)."""
        base = self._settings.alerting.runbook_base_url
        for t in transitions:
            notification = to_notification(model, t, now, base)
            if self._outbox is not None:
                self._outbox.enqueue(notification)
            append_alert_log(self._redis, self._keys, t.kind, notification.alert)
            log.info(
                "alert_" + t.kind,
                model=model,
                alert=t.key,
                severity=t.state.severity,
                value=t.state.value,
                threshold=t.state.threshold,
            )

    @staticmethod
    def _decode_states(model: str, raw: bytes | None) -> dict[str, AlertState]:
        if not raw:
            return {}
        try:
            return _STATES.decode(raw)
        except msgspec.DecodeError:
            log.exception("alert_states_unreadable_reset", model=model)
            return {}

    @staticmethod
    def _call(fn: Any) -> Any:
        try:
            return fn()
        except REDIS_ERRORS as exc:
            raise RedisUnavailable(f"redis: {exc}") from exc

    def firing_alerts(self) -> list[Alert]:
        """Alerts firing for the models evaluated here (the Alertmanager re-send set)."""
        return [alert for alerts in self._firing.values() for alert in alerts]


def _active(key: str, state: AlertState) -> dict[str, Any]:
    alertname, feature, window = key.split("/", 2)
    return {
        "alertname": alertname,
        "severity": state.severity,
        "feature": None if feature == "-" else feature,
        "window": window,
        "value": state.value if math.isfinite(state.value) else None,
        "threshold": state.threshold,
        "since": iso_time(state.firing_since or state.condition_since),
    }


def read_states(client: redis.Redis, keys: Keys, model: str | None = None) -> dict[str, Any]:
    """State documents from Redis: one model's, or {model: doc} for every tracked model."""
    try:
        if model is not None:
            raw = client.get(keys.state(model))
            return msgspec.json.decode(raw) if raw else {}
        names = sorted(
            m.decode() if isinstance(m, bytes) else m for m in client.smembers(keys.models)
        )
        docs = client.mget([keys.state(m) for m in names]) if names else []
    except REDIS_ERRORS as exc:
        raise RedisUnavailable(f"redis: {exc}") from exc
    return {m: msgspec.json.decode(d) for m, d in zip(names, docs, strict=True) if d}


def _triples(replies: Sequence[Any]) -> list[tuple[Any, Any, Any]]:
    return [(replies[i], replies[i + 1], replies[i + 2]) for i in range(0, len(replies), 3)]
