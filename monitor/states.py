"""Reading the state documents the evaluator writes (SPEC §4): `driftmon status`,
`driftmon drill`, the `/state` endpoint and the metrics exporter read them here."""

from __future__ import annotations

from typing import Any

import msgspec
import redis

from monitor.errors import RedisUnavailable
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
