"""The evaluator: every `evaluation.interval_seconds`, for every model this replica holds
the lease of, merge the window's buckets, evaluate, advance the alert state machine,
replace the state document, and queue notifications. I/O edge around `monitor.evaluate`
and `monitor.alerts.rules`.

Several replicas: a model is evaluated by the holder of `<prefix>:{<model>}:lease` (SET NX
PX, renewed every round by its holder). A replica that dies stops renewing, and another
takes over within one lease period, continuing from the alert states stored in Redis.

Order of writes, so that no transition is lost or duplicated by a crash: notifications
are queued first (idempotent ids), then the state document and the alert states are
replaced together (MULTI; one hash slot).
"""

from __future__ import annotations

import math
import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
import redis
import structlog

from monitor.alerts.model import Alert
from monitor.alerts.outbox import Outbox, append_alert_log
from monitor.alerts.rules import AlertState, step, to_alert, to_notification
from monitor.clock import Clock
from monitor.decode import ModelSchema
from monitor.errors import RedisUnavailable
from monitor.evaluate import EvaluationInput, evaluate_model, iso_time
from monitor.metrics import Metrics
from monitor.settings import Settings
from monitor.window.buckets import window_buckets
from monitor.window.counts import Counts, parse_bucket
from monitor.window.keys import Keys
from monitor.window.store import REDIS_ERRORS, WindowStore

log = structlog.get_logger(__name__)

_STATES = msgspec.json.Decoder(dict[str, AlertState])

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


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
        self._firing: dict[str, list[Alert]] = {}
        self._held: set[str] = set()

    def run_once(self) -> list[str]:
        """One round over all models; returns the models evaluated here."""
        evaluated = []
        for model in self._schemas:
            try:
                if not self._hold_lease(model):
                    self._firing.pop(model, None)
                    continue
                started = time.perf_counter()
                self.evaluate(model)
                self._metrics.evaluation_duration.observe(time.perf_counter() - started)
                evaluated.append(model)
            except RedisUnavailable as exc:
                log.warning("evaluation_skipped_redis_unavailable", model=model, error=str(exc))
        return evaluated

    def _hold_lease(self, model: str) -> bool:
        ms = int(self._settings.evaluation.lease_seconds * 1000)
        try:
            held = bool(self._renew(keys=[self._keys.lease(model)], args=[self.replica, ms]))
        except REDIS_ERRORS as exc:
            raise RedisUnavailable(f"redis: {exc}") from exc
        if held and model not in self._held:
            log.info("lease_acquired", model=model, replica=self.replica)
        self._held = (self._held | {model}) if held else (self._held - {model})
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
        settings, schema = self._settings, self._schemas[model]
        now = self._clock.now()
        windows = settings.windows_for(model)
        bucket_seconds = settings.windows.bucket_seconds
        starts = window_buckets(now, max(windows.values()), bucket_seconds)
        rows = self._store.read_buckets(model, starts)
        buckets: Sequence[tuple[int, Counts]] = [
            (start, parse_bucket(schema, row)) for start, row in zip(starts, rows, strict=True)
        ]
        rules = settings.rules_for(model)
        spec = EvaluationInput(
            schema=schema,
            rules=rules,
            windows=windows,
            bucket_seconds=bucket_seconds,
            latency_slo_ms=settings.models[model].latency_slo_ms,
            no_traffic_seconds=rules.no_traffic_seconds,
            progress=self._store.read_progress(model),
            evaluation_interval=settings.evaluation.interval_seconds,
        )
        result = evaluate_model(spec, buckets, now)
        states = self._load_states(model)
        new_states, transitions = step(states, result.findings, now)
        base = settings.alerting.runbook_base_url
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
        firing = {k: s for k, s in new_states.items() if s.status == "firing"}
        self._firing[model] = [to_alert(model, k, s, now, base) for k, s in firing.items()]
        doc = {
            "model": model,
            "evaluated_at": iso_time(now),
            "baseline_id": schema.baseline.id,
            "severity": result.severity,
            "windows": result.windows,
            "alerts": [_active(k, s) for k, s in sorted(firing.items())],
        }
        self._save(model, doc, new_states)
        return doc

    def _load_states(self, model: str) -> dict[str, AlertState]:
        try:
            raw = self._redis.get(self._keys.alert_states(model))
        except REDIS_ERRORS as exc:
            raise RedisUnavailable(f"redis: {exc}") from exc
        if not raw:
            return {}
        try:
            return _STATES.decode(raw)
        except msgspec.DecodeError:
            log.exception("alert_states_unreadable_reset", model=model)
            return {}

    def _save(self, model: str, doc: dict[str, Any], states: dict[str, AlertState]) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._keys.state(model), msgspec.json.encode(doc))
        pipe.set(self._keys.alert_states(model), msgspec.json.encode(states))
        try:
            pipe.execute()
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
