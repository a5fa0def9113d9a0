"""Watches Redis for injected incidents: when each was detected and when it alerted.

Reads only what any client can read plus the alert state machine's key:
- detected: the first poll after injection where the incident's feature has a non-ok
  severity in the model's state document (`<prefix>:{<model>}:state`), or its alert is
  pending or firing in `<prefix>:{<model>}:alertstate`;
- alerted: the first ``firing`` entry for the model, alert name and feature in the audit
  stream `<prefix>:alerts:log` written after injection (the entry id's time).
Used by `driftmon demo` (one `Watch` per scheduled incident) and `driftmon drill`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import redis

from monitor.errors import RedisUnavailable
from monitor.window.keys import Keys
from monitor.window.store import REDIS_ERRORS


@dataclass
class Watch:
    """One incident to follow. `alertname` None: any alert on the feature counts."""

    label: str
    model: str
    alertname: str | None
    feature: str | None
    injected_at: float | None = None  # wall clock
    detected_at: float | None = None
    alerted_at: float | None = None
    alert: str | None = None  # the alert that fired, "Name severity"

    @property
    def time_to_detect(self) -> float | None:
        return _delta(self.injected_at, self.detected_at)

    @property
    def time_to_alert(self) -> float | None:
        return _delta(self.injected_at, self.alerted_at)


def _delta(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else max(0.0, end - start)


def parse_time(text: str | None) -> float | None:
    """An RFC 3339 UTC time from a state document as epoch seconds."""
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


class Tracker:
    """Polls state documents, alert states and the alert log for a list of watches."""

    def __init__(self, client: redis.Redis, keys: Keys, watches: list[Watch]) -> None:
        self._redis = client
        self._keys = keys
        self.watches = watches
        self.states: dict[str, dict[str, Any]] = {}
        self._log_from = "0-0"

    def start_log_at(self, epoch: float) -> None:
        """Ignore alert log entries written before `epoch` (an earlier run's)."""
        self._log_from = f"{int(epoch * 1000)}-0"

    def poll(self, now: float) -> list[str]:
        """Read Redis once; returns one line per new detection or alert."""
        try:
            names = {w.model for w in self.watches}
            self.states = self._read_states(sorted(names))
            pending = self._read_alert_states(sorted(names))
            entries = self._read_log()
        except REDIS_ERRORS as exc:
            raise RedisUnavailable(f"redis: {exc}") from exc
        news: list[str] = []
        for entry_time, fields in entries:
            for w in self.watches:
                if w.alerted_at is None and _matches_log(w, fields, entry_time):
                    w.alerted_at = entry_time
                    w.alert = f"{fields.get('alertname')} {fields.get('severity')}"
                    news.append(f"alerted   {w.label}: {w.alert}")
        for w in self.watches:
            if w.injected_at is None or w.detected_at is not None:
                continue
            state = self.states.get(w.model, {})
            if _feature_flagged(w, state) or _pending(w, pending.get(w.model, {})):
                w.detected_at = now
            elif w.alerted_at is not None:
                w.detected_at = w.alerted_at
            if w.detected_at is not None:
                if w.alerted_at is not None:
                    w.detected_at = min(w.detected_at, w.alerted_at)
                news.append(f"detected  {w.label} after {w.time_to_detect:.1f}s")
        return news

    def _read_states(self, models: list[str]) -> dict[str, dict[str, Any]]:
        raw = self._redis.mget([self._keys.state(m) for m in models]) if models else []
        return {m: msgspec.json.decode(r) for m, r in zip(models, raw, strict=True) if r}

    def _read_alert_states(self, models: list[str]) -> dict[str, dict[str, Any]]:
        raw = self._redis.mget([self._keys.alert_states(m) for m in models]) if models else []
        return {m: msgspec.json.decode(r) for m, r in zip(models, raw, strict=True) if r}

    def _read_log(self) -> list[tuple[float, dict[str, str]]]:
        out = []
        while True:
            batch = self._redis.xrange(self._keys.alerts_log, min=self._log_from, count=500) or []
            for entry_id, fields in batch:
                if entry_id is None or fields is None:
                    continue
                text_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                ms, _, seq = text_id.partition("-")
                self._log_from = f"{ms}-{int(seq) + 1}"
                decoded = {_text(k): _text(v) for k, v in fields.items()}
                out.append((int(ms) / 1000.0, decoded))
            if len(batch) < 500:
                return out

    def done(self) -> bool:
        return all(w.detected_at is not None and w.alerted_at is not None for w in self.watches)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _matches_log(w: Watch, fields: dict[str, str], when: float) -> bool:
    return (
        w.injected_at is not None
        and when >= w.injected_at
        and fields.get("event") == "firing"
        and fields.get("model") == w.model
        and (w.alertname is None or fields.get("alertname") == w.alertname)
        and (w.feature is None or fields.get("feature") == w.feature)
    )


def _feature_flagged(w: Watch, state: dict[str, Any]) -> bool:
    if w.feature is None or w.injected_at is None:
        return False
    evaluated = parse_time(state.get("evaluated_at"))
    if evaluated is None or evaluated + 1 < w.injected_at:
        return False
    for window in state.get("windows", {}).values():
        feature = window.get("features", {}).get(w.feature)
        if feature and feature.get("severity", "ok") != "ok":
            return True
    return False


def _pending(w: Watch, states: dict[str, Any]) -> bool:
    """The watched alert is pending or firing in the state machine."""
    for key in states:
        alertname, _, rest = key.partition("/")
        feature = rest.split("/", 1)[0]
        if (w.alertname is None or alertname == w.alertname) and (
            w.feature is None or feature == w.feature
        ):
            return True
    return False
