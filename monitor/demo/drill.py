"""Fire-drill traffic: events that look like a model's baseline except one drifted feature.

Pipeline position: beside the source, like `monitor.simulate`, but driven by a *baseline*
(the one in force in Redis) instead of a built-in profile, so a drill works against any
deployed model. Every feature is drawn from its reference bins (bin by reference count,
uniform inside the bin between the neighbouring edges or the reference min/max; missing at
the reference ratio; categories by count), except the drilled one:
- numeric: values above the reference maximum (out of range, all in the top bin);
- categorical: a category never seen in the reference (``__drill__``).
Events carry ``model_version: "drill"`` and ``request_id: "drill-..."``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from monitor.baseline import Baseline, CategoricalProfile, NumericProfile
from monitor.errors import InputError
from monitor.tables import PREDICTION

DRILL_CATEGORY = "__drill__"


def pick_feature(baseline: Baseline, feature: str | None) -> str:
    """The feature to drill: the one asked for, else the first numeric input feature."""
    if feature is not None:
        if feature not in baseline.features:
            names = ", ".join(sorted(baseline.features))
            raise InputError(f"--feature: model {baseline.model} has no {feature!r} ({names})")
        return feature
    inputs = [name for name in baseline.features if name != PREDICTION]
    numeric = [n for n in inputs if isinstance(baseline.features[n], NumericProfile)]
    if not (numeric or inputs):
        raise InputError(f"model {baseline.model}: its baseline has no input feature to drill")
    return (numeric or inputs)[0]


class DrillEvents:
    """An event factory (`monitor.demo.traffic.EventFactory`) for one drilled feature."""

    def __init__(self, baseline: Baseline, feature: str, seed: int = 0) -> None:
        self.baseline = baseline
        self.feature = feature
        self._rng = np.random.default_rng(seed)
        self._sent = 0
        latency = baseline.latency or {}
        self._latency = latency.get("p50")
        profile = baseline.features[feature]
        self._numeric = isinstance(profile, NumericProfile)
        self._high = self._span = 0.0
        if isinstance(profile, NumericProfile):
            low, high = _finite(profile.min, 0.0), _finite(profile.max, 1.0)
            self._high, self._span = high, max(high - low, abs(high), 1.0)
            self.injected = f"> {high:g} (reference max)"
        else:
            self.injected = f"{DRILL_CATEGORY} (a category never seen)"

    def _drifted(self, n: int) -> list[Any]:
        if not self._numeric:
            return [DRILL_CATEGORY] * n
        return [self._high + self._span * (0.5 + u) for u in self._rng.random(n).tolist()]

    def __call__(self, _elapsed: float, n: int, now: float) -> list[dict[str, Any]]:
        columns = {
            name: self._drifted(n) if name == self.feature else self._reference(profile, n)
            for name, profile in self.baseline.features.items()
        }
        prediction = columns.pop(PREDICTION, [None] * n)
        events = []
        for i in range(n):
            event: dict[str, Any] = {
                "model": self.baseline.model,
                "model_version": "drill",
                "ts": now,
                "request_id": f"drill-{self._sent + i}",
                "features": {name: values[i] for name, values in columns.items()},
            }
            if prediction[i] is not None:
                event["prediction"] = prediction[i]
            if self._latency is not None:
                event["latency_ms"] = self._latency
            events.append(event)
        self._sent += n
        return events

    def _reference(self, profile: NumericProfile | CategoricalProfile, n: int) -> list[Any]:
        rng = self._rng
        counts = profile.counts.astype(float)
        if counts.sum() <= 0:
            return [None] * n
        bins = rng.choice(len(counts), n, p=counts / counts.sum())
        values: list[Any]
        if isinstance(profile, NumericProfile):
            low, high = _finite(profile.min, 0.0), _finite(profile.max, 1.0)
            lower = np.concatenate([[low], profile.edges])
            upper = np.concatenate([profile.edges, [high]])
            values = (lower[bins] + (upper[bins] - lower[bins]) * rng.random(n)).tolist()
        else:
            others = sorted(profile.other_seen) or list(profile.categories[:1])
            values = [
                profile.categories[b] if b < len(profile.categories) else others[b % len(others)]
                for b in bins.tolist()
            ]
        missing = profile.missing_ratio
        if missing > 0:
            for i in np.flatnonzero(rng.random(n) < missing).tolist():
                values[i] = None
        return values


def _finite(value: float, default: float) -> float:
    return value if math.isfinite(value) else default
