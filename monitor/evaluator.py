"""The evaluator: every `evaluation.interval_seconds`, for every model this replica holds
the lease of, bring the window sums up to date, evaluate, advance the alert state machine,
replace the state document, and queue notifications. I/O edge around `monitor.evaluate`
and `monitor.alerts.rules`.

A round talks to Redis over one connection (`monitor.conversation`), for all models
together: renew the leases and read bucket versions, progress and alert states (one round
trip). Then CHUNK models at a time: send a read for every bucket of theirs that changed
(`monitor.window.cache`: in steady state only the current one), and as their buckets
arrive, parse, update the window sums, evaluate, and send the state documents. The reads
run AHEAD chunks in front of the evaluation: Redis reads the next models' buckets while
Python plans and evaluates, and a slow Redis has two chunks' time to catch up. Parsed
buckets and window sums stay in memory.

Several replicas: a model is evaluated by the holder of `<prefix>:{<model>}:lease` (SET NX
PX, renewed every round by its holder). A replica that dies stops renewing, and another
takes over within one lease period, continuing from the alert states stored in Redis.

Order of writes, so that no transition is lost or duplicated by a crash: notifications
are queued first (idempotent ids), then each model's state document and alert states
are replaced together (one MSET, atomic; one hash slot).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import deque
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
from monitor.conversation import Conversation, Packed, Ticket
from monitor.decode import ModelSchema
from monitor.errors import RedisUnavailable
from monitor.evaluate import (
    EvaluationInput,
    ModelEvaluation,
    WindowTotals,
    evaluate_totals,
    iso_time,
)
from monitor.metrics import Metrics
from monitor.resp import split_array
from monitor.settings import Rules, Settings
from monitor.states import state_document
from monitor.window.buckets import window_buckets
from monitor.window.cache import WindowCache
from monitor.window.counts import Layout, layout_of, parse_raw
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

CHUNK = 20  # models evaluated at once while Redis reads the next ones' buckets
AHEAD = 2  # chunks whose reads are sent before their evaluation starts


class _ScriptsMissingError(Exception):
    """Redis forgot the Lua scripts (restarted, or SCRIPT FLUSH): load them, try again."""


@dataclass(frozen=True, slots=True)
class _Model:
    """What the settings say about one model, resolved once."""

    schema: ModelSchema
    layout: Layout
    rules: Rules
    windows: dict[str, int]  # name -> seconds
    longest: int
    latency_slo_ms: float | None


@dataclass(frozen=True, slots=True)
class _Plan:
    """One model in this round: its reads, and the buckets to read again."""

    model: str
    config: _Model
    cache: WindowCache
    starts: list[int]
    versions: dict[int, bytes] | None
    stale: list[int]
    progress: tuple[float, float] | None
    states: dict[str, AlertState]


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
        self._scripts_loaded = False
        self._firing: dict[str, list[Alert]] = {}
        self._held: set[str] = set()
        self._models = {model: self._resolve(model, schema) for model, schema in schemas.items()}
        self._caches: dict[str, WindowCache] = {}
        # Per model: the evaluation of its cache's window sums, at the cache's generation.
        self._last: dict[str, tuple[WindowCache, int, ModelEvaluation]] = {}
        self._packed_head: tuple[tuple[tuple[str, ...], bool], Packed] | None = None

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
        try:
            held, _ = self._round(list(self._schemas), leases=True)
        except RedisUnavailable as exc:
            log.warning("evaluation_skipped_redis_unavailable", error=str(exc))
            return []
        if held:
            share = (time.perf_counter() - started) / len(held)  # the round trips are shared
            for _ in held:
                self._metrics.evaluation_duration.observe(share)
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

    def evaluate_models(self, models: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Evaluate the given models now (lease or not); returns their state documents."""
        docs = self._round(list(models), leases=False)[1]
        return {model: msgspec.json.decode(doc) for model, doc in docs.items()}

    def _round(self, models: list[str], *, leases: bool) -> tuple[list[str], dict[str, bytes]]:
        """The models evaluated, and their state documents as written (JSON)."""
        for _ in range(2):
            if not self._scripts_loaded:
                self._call(lambda: self._redis.script_load(_RENEW))
                self._store.load_scripts()
                self._scripts_loaded = True
            try:
                with Conversation(self._redis) as talk:
                    return self._talk(talk, models, leases=leases)
            except _ScriptsMissingError:
                self._scripts_loaded = False
        raise RedisUnavailable("redis: the evaluator's Lua scripts keep disappearing")

    def _talk(
        self, talk: Conversation, models: list[str], *, leases: bool
    ) -> tuple[list[str], dict[str, bytes]]:
        head = self._head(talk, models, leases=leases)
        replies = _checked(talk.replies(talk.send_packed(head)))
        held = self._held_now(models, replies[: len(models)]) if leases else models
        reads = replies[len(models) :] if leases else replies
        by_model = {m: reads[3 * i : 3 * i + 3] for i, m in enumerate(models)}
        now = self._clock.now()
        chunks = [held[i : i + CHUNK] for i in range(0, len(held), CHUNK)]
        planned: deque[tuple[list[_Plan], Ticket]] = deque()

        def plan(chunk: list[str]) -> None:  # and send its reads
            plans = self._plans(chunk, by_model, now)
            planned.append((plans, talk.send(self._reads(plans), raw=True)))

        for chunk in chunks[:AHEAD]:
            plan(chunk)
        docs: dict[str, bytes] = {}
        saves = []
        for i in range(len(chunks)):
            plans, ticket = planned.popleft()
            raw = _checked(talk.replies(ticket))
            if i + AHEAD < len(chunks):
                plan(chunks[i + AHEAD])
            saves.append(talk.send(self._evaluate_chunk(plans, raw, now, docs)))
        for ticket in saves:
            _checked(talk.replies(ticket))
        return held, docs

    def _head(self, talk: Conversation, models: list[str], *, leases: bool) -> Packed:
        """The round's first commands: renew the leases, read versions, progress and alert
        states. The same every round: packed once (400 commands for 100 models)."""
        key = (tuple(models), leases)
        if self._packed_head is not None and self._packed_head[0] == key:
            return self._packed_head[1]
        keys, ms = self._keys, int(self._settings.evaluation.lease_seconds * 1000)
        commands: list[tuple[Any, ...]] = []
        if leases:  # reads are wasted for models another replica holds: three small replies
            commands += [
                ("EVALSHA", self._renew.sha, 1, keys.lease(m), self.replica, ms) for m in models
            ]
        for m in models:
            commands += [
                ("HGETALL", keys.bucket_versions(m)),
                ("HGETALL", keys.progress(m)),
                ("GET", keys.alert_states(m)),
            ]
        packed = talk.pack(commands)
        self._packed_head = (key, packed)
        return packed

    def _reads(self, plans: list[_Plan]) -> list[tuple[Any, ...]]:
        """An HGETALL per stale bucket; one command for all of a model's without versions
        (idle). Their replies are read raw (`Conversation.send`)."""
        commands: list[tuple[Any, ...]] = []
        for p in plans:
            if p.versions is None:
                commands.append(self._store.bucket_reads(p.model, p.stale))
            else:
                commands += [("HGETALL", self._keys.bucket(p.model, s)) for s in p.stale]
        return commands

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
                self._last.pop(model, None)
        self._held = set(held)
        return held

    def _plans(self, models: list[str], reads: dict[str, list[Any]], now: float) -> list[_Plan]:
        bucket_seconds = self._settings.windows.bucket_seconds
        windows: dict[int, list[int]] = {}  # longest window -> its bucket starts
        plans = []
        for model in models:
            m = self._models[model]
            cache = self._caches.get(model)
            if cache is None:
                lengths = {name: s // bucket_seconds for name, s in m.windows.items()}
                cache = self._caches[model] = WindowCache(m.layout, lengths)
            starts = windows.get(m.longest) or windows.setdefault(
                m.longest, window_buckets(now, m.longest, bucket_seconds)
            )
            raw_versions, raw_progress, raw_states = reads[model]
            versions = parse_versions(raw_versions)
            plans.append(
                _Plan(
                    model=model,
                    config=m,
                    cache=cache,
                    starts=starts,
                    versions=versions,
                    stale=cache.stale(starts, versions),
                    progress=parse_progress(raw_progress),
                    states=self._decode_states(model, raw_states),
                )
            )
        return plans

    def _evaluate_chunk(
        self, plans: list[_Plan], raw: list[bytes], now: float, docs: dict[str, bytes]
    ) -> list[tuple[Any, ...]]:
        """Evaluate `plans` with their re-read buckets; returns the commands saving them.

        `raw` holds the replies of `_reads(plans)` as Redis sent them: per stale bucket
        its HGETALL reply, or for a model without versions the array of them."""
        bucket_seconds = self._settings.windows.bucket_seconds
        replies = iter(raw)
        specs = []
        for p in plans:
            hashes = (  # without versions, one reply: the array of the buckets' hashes
                split_array(next(replies))
                if p.versions is None
                else [next(replies) for _ in p.stale]
            )
            fetched = {
                start: parse_raw(p.config.layout, reply)
                for start, reply in zip(p.stale, hashes, strict=True)
            }
            p.cache.update(p.starts, p.versions, fetched)
            specs.append(
                EvaluationInput(
                    schema=p.config.schema,
                    rules=p.config.rules,
                    windows=p.config.windows,
                    bucket_seconds=bucket_seconds,
                    latency_slo_ms=p.config.latency_slo_ms,
                    no_traffic_seconds=p.config.rules.no_traffic_seconds,
                    progress=p.progress,
                    evaluation_interval=self._settings.evaluation.interval_seconds,
                )
            )
        base = self._settings.alerting.runbook_base_url
        evaluated_at = iso_time(now)
        saves: list[tuple[Any, ...]] = []
        for p, result in zip(plans, self._evaluations(plans, specs, now), strict=True):
            new_states, transitions = step(p.states, result.findings_for(p.states), now)
            self._notify(p.model, transitions, now)
            firing = {k: s for k, s in new_states.items() if s.status == "firing"}
            self._firing[p.model] = [to_alert(p.model, k, s, now, base) for k, s in firing.items()]
            doc = docs[p.model] = state_document(
                p.model, evaluated_at, p.config.schema.baseline.id, result, firing
            )
            # MSET replaces both at once, like a Lua script, without copying ~20 kB into Lua.
            saves.append(
                (
                    "MSET",
                    self._keys.state(p.model),
                    doc,
                    self._keys.alert_states(p.model),
                    msgspec.json.encode(new_states),
                )
            )
        return saves

    def _evaluations(
        self, plans: list[_Plan], specs: list[EvaluationInput], now: float
    ) -> list[ModelEvaluation]:
        """Evaluate the models whose window sums changed since their last evaluation; for
        the others (no traffic, nothing new this round) only what depends on the time."""
        results: dict[int, ModelEvaluation] = {}
        fresh: list[int] = []
        for i, (p, spec) in enumerate(zip(plans, specs, strict=True)):
            last = self._last.get(p.model)
            if last is not None and last[0] is p.cache and last[1] == p.cache.generation:
                results[i] = last[2].at(spec, p.cache.last_traffic(), now)
            else:
                fresh.append(i)
        inputs = [
            WindowTotals(specs[i], plans[i].cache.totals(), plans[i].cache.last_traffic())
            for i in fresh
        ]
        results.update(zip(fresh, evaluate_totals(inputs, now), strict=True))
        out = [results[i] for i in range(len(plans))]
        for p, result in zip(plans, out, strict=True):
            self._last[p.model] = (p.cache, p.cache.generation, result)
        return out

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


def _checked(replies: list[Any]) -> list[Any]:
    """The replies, unless one is an error: a missing script, or a bug to surface."""
    for reply in replies:
        if isinstance(reply, redis.exceptions.NoScriptError):
            raise _ScriptsMissingError
        if isinstance(reply, redis.ResponseError):
            raise reply
    return replies
