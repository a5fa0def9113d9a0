"""The state documents (SPEC §4): built here for the evaluator to write; read here by
`driftmon status`, `driftmon drill`, the `/state` endpoint and the metrics exporter."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import redis

from monitor.alerts.rules import AlertState
from monitor.errors import RedisUnavailable
from monitor.evaluate import ModelEvaluation, iso_time
from monitor.window.keys import Keys
from monitor.window.store import REDIS_ERRORS


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


def state_document(
    model: str,
    evaluated_at: str,
    baseline_id: str,
    result: ModelEvaluation,
    firing: dict[str, AlertState],
) -> bytes:
    """A model's state document, as JSON: `firing` are its alerts firing, by key."""
    return msgspec.json.encode(
        {
            "model": model,
            "evaluated_at": evaluated_at,
            "baseline_id": baseline_id,
            "severity": result.severity,
            "windows": result.windows_json(),
            "alerts": [_active(k, s) for k, s in sorted(firing.items())],
        }
    )


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
