"""Synthetic inference traffic: model profiles, feature distributions, a drift schedule.

Pipeline position: *before* the source. Nothing in the daemon imports this module; it
feeds `driftmon simulate`, `driftmon demo` and `driftmon drill` (which put its events on
a Kafka topic, `monitor.demo.traffic`) and their tests. Pure apart from the seeded numpy
generator: every function takes the time it needs as an argument.

- `MODELS`: built-in models (``fraud``, ``churn``, ``reco``) with numeric features
  (lognormal, normal, exponential, poisson), categorical features, a prediction and a
  latency distribution, and the latency SLO the demo configures for them.
- `training_columns`: reference data drawn from the same distributions, for
  `monitor.baseline.build_baseline`.
- `Incident`: one scheduled change, ``start``..``end`` seconds after traffic starts:
  ``shift`` (a numeric feature moves by `magnitude` standard deviations), ``new_categories``
  (a fraction `magnitude` of a categorical feature's values become never-seen
  categories), ``nulls`` (the missing ratio rises linearly to `magnitude` over `ramp`
  seconds), ``latency`` (latency multiplied by `magnitude`), ``silence`` (the model
  sends nothing). Each names the alert it should raise (`expected_alert`).
- `Simulator.batch(elapsed, n, now)`: the next `n` events (SPEC §1 dicts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from monitor.errors import InputError
from monitor.tables import LATENCY, PREDICTION

Dist = Literal["lognormal", "normal", "exponential", "poisson"]
Kind = Literal["shift", "new_categories", "nulls", "latency", "silence"]
KINDS: tuple[Kind, ...] = ("shift", "new_categories", "nulls", "latency", "silence")
EXPECTED_ALERT: dict[Kind, str] = {
    "shift": "FeatureDrift",
    "new_categories": "DataQualityUnseenCategory",
    "nulls": "DataQualityMissing",
    "latency": "LatencyHigh",
    "silence": "NoTraffic",
}


@dataclass(frozen=True)
class NumericFeature:
    """`dist` with parameters `a`, `b`: lognormal(mu, sigma), normal(mu, sigma),
    exponential(scale, -), poisson(lam, -); values are clipped at `low`."""

    dist: Dist
    a: float
    b: float = 0.0
    missing: float = 0.0
    low: float | None = None
    integer: bool = False

    def sample(self, rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
        """`n` values, the distribution moved by `shift` standard deviations."""
        if self.dist == "lognormal":
            values = rng.lognormal(self.a + shift * self.b, self.b, n)
        elif self.dist == "normal":
            values = rng.normal(self.a + shift * self.b, self.b, n)
        elif self.dist == "exponential":
            values = rng.exponential(self.a * (1.0 + shift), n)
        else:
            lam = self.a + shift * np.sqrt(self.a)
            values = rng.poisson(max(lam, 0.1), n).astype(float)
        if self.low is not None:
            values = np.maximum(values, self.low)
        return np.round(values) if self.integer else np.round(values, 3)


@dataclass(frozen=True)
class CategoricalFeature:
    categories: tuple[str, ...]
    weights: tuple[float, ...]
    missing: float = 0.0

    def sample(self, rng: np.random.Generator, n: int) -> list[str]:
        p = np.asarray(self.weights, dtype=float)
        picks = rng.choice(len(self.categories), n, p=p / p.sum())
        return [self.categories[i] for i in picks]


Feature = NumericFeature | CategoricalFeature


@dataclass(frozen=True)
class ModelProfile:
    """One simulated model: its features, prediction, latency (lognormal, ms) and SLO."""

    name: str
    version: str
    weight: float  # share of the traffic
    features: Mapping[str, Feature]
    prediction: Feature
    latency_mu: float
    latency_sigma: float
    latency_slo_ms: float


MODELS: dict[str, ModelProfile] = {
    "fraud": ModelProfile(
        name="fraud",
        version="v7",
        weight=0.45,
        features={
            "amount": NumericFeature("lognormal", 3.5, 0.9),
            "age": NumericFeature("normal", 42, 12, missing=0.02, low=18, integer=True),
            "country": CategoricalFeature(("DE", "FR", "US", "GB", "ES"), (30, 20, 25, 15, 10)),
            "channel": CategoricalFeature(("web", "app", "pos"), (50, 40, 10)),
        },
        prediction=NumericFeature("normal", 0.25, 0.1, low=0.0),
        latency_mu=float(np.log(12.0)),
        latency_sigma=0.35,
        latency_slo_ms=80.0,
    ),
    "churn": ModelProfile(
        name="churn",
        version="2024-11",
        weight=0.35,
        features={
            "tenure": NumericFeature("exponential", 18.0),
            "plan": CategoricalFeature(("free", "pro", "team"), (60, 30, 10)),
            "monthly_spend": NumericFeature("normal", 45, 15, low=0.0),
        },
        prediction=NumericFeature("normal", 0.2, 0.08, low=0.0),
        latency_mu=float(np.log(25.0)),
        latency_sigma=0.3,
        latency_slo_ms=120.0,
    ),
    "reco": ModelProfile(
        name="reco",
        version="v2",
        weight=0.20,
        features={
            "items_viewed": NumericFeature("poisson", 6.0),
            "segment": CategoricalFeature(("a", "b", "c", "d"), (40, 30, 20, 10)),
        },
        prediction=CategoricalFeature(("sports", "news", "music"), (50, 30, 20)),
        latency_mu=float(np.log(8.0)),
        latency_sigma=0.3,
        latency_slo_ms=50.0,
    ),
}


def pick_models(names: Sequence[str]) -> list[ModelProfile]:
    """The built-in models named (InputError naming the unknown one)."""
    out = []
    for name in names:
        if name not in MODELS:
            raise InputError(f"--models: unknown model {name!r}; built in: {', '.join(MODELS)}")
        out.append(MODELS[name])
    if not out:
        raise InputError("--models: name at least one model")
    return out


@dataclass(frozen=True)
class Incident:
    """One scheduled change of the traffic (see the module docstring)."""

    kind: Kind
    model: str
    start: float
    end: float | None = None
    feature: str | None = None
    magnitude: float = 1.0
    ramp: float = 0.0
    name: str = ""

    @property
    def expected_alert(self) -> str:
        if self.kind == "shift" and self.feature == PREDICTION:
            return "PredictionDrift"
        return EXPECTED_ALERT[self.kind]

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        target = f"{self.model}.{self.feature}" if self.feature else self.model
        return f"{self.kind} {target}"

    def active(self, elapsed: float) -> bool:
        return elapsed >= self.start and (self.end is None or elapsed < self.end)

    def level(self, elapsed: float) -> float:
        """The magnitude in force at `elapsed` (ramps linearly over `ramp` seconds)."""
        if not self.active(elapsed):
            return 0.0
        if self.ramp <= 0:
            return self.magnitude
        return self.magnitude * min(1.0, (elapsed - self.start) / self.ramp)


def builtin_schedule(duration: float) -> list[Incident]:
    """One incident of each kind, spread so all are detected and alerted before `duration`.

    Traffic is stationary for a warm-up (the window fills with baseline-like events),
    then an incident starts every few seconds; each lasts 40 s, so the live view shows
    them resolving too. The last one starts at least 30 s before the end.
    """
    warmup = min(25.0, max(8.0, 0.15 * duration))
    spacing = min(8.0, max(2.0, (duration - 30.0 - warmup) / 4))
    plan: list[tuple[Kind, str, str | None, float, float]] = [
        ("latency", "churn", None, 8.0, 0.0),
        ("shift", "fraud", "amount", 1.5, 0.0),
        ("new_categories", "fraud", "country", 0.3, 0.0),
        ("nulls", "churn", "tenure", 0.6, 10.0),
        ("silence", "reco", None, 1.0, 0.0),
    ]
    incidents = []
    for i, (kind, model, feature, magnitude, ramp) in enumerate(plan):
        start = round(warmup + i * spacing, 1)
        incidents.append(Incident(kind, model, start, start + 40.0, feature, magnitude, ramp))
    return incidents


def load_schedule(path: Path, models: Mapping[str, ModelProfile]) -> list[Incident]:
    """Incidents from a YAML or JSON file: a list (or ``{incidents: [...]}``) of mappings
    with kind, model, start and optionally end, feature, magnitude, ramp, name."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read schedule {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise InputError(f"schedule {path}: not valid YAML or JSON") from None
    items = data.get("incidents") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InputError(f"schedule {path}: expected a list of incidents")
    incidents = []
    for i, item in enumerate(items):
        try:
            incident = Incident(**item)
        except TypeError as exc:
            raise InputError(f"schedule {path}: incident {i}: {exc}") from None
        check_incident(incident, models, f"schedule {path}: incident {i}")
        incidents.append(incident)
    return incidents


def check_incident(incident: Incident, models: Mapping[str, ModelProfile], where: str) -> None:
    """InputError unless the incident fits the simulated models."""
    if incident.kind not in KINDS:
        raise InputError(f"{where}: kind must be one of {', '.join(KINDS)}")
    profile = models.get(incident.model)
    if profile is None:
        raise InputError(f"{where}: model {incident.model!r} is not simulated")
    if incident.kind in ("latency", "silence"):
        return
    feature = _feature(profile, incident.feature)
    if feature is None:
        raise InputError(f"{where}: model {incident.model} has no feature {incident.feature!r}")
    wants = CategoricalFeature if incident.kind == "new_categories" else NumericFeature
    if incident.kind != "nulls" and not isinstance(feature, wants):
        raise InputError(f"{where}: {incident.kind} needs a {wants.__name__}")


def _feature(profile: ModelProfile, name: str | None) -> Feature | None:
    if name == PREDICTION:
        return profile.prediction
    return profile.features.get(name or "")


def training_columns(profile: ModelProfile, rows: int, seed: int = 1) -> dict[str, list[Any]]:
    """Reference data for `build_baseline`: features, ``__prediction__``, ``latency_ms``."""
    rng = np.random.default_rng(seed)
    columns = {
        name: _values(rng, feature, rows, 0.0, feature.missing)
        for name, feature in profile.features.items()
    }
    columns[PREDICTION] = _values(rng, profile.prediction, rows, 0.0, 0.0)
    columns[LATENCY] = np.round(
        rng.lognormal(profile.latency_mu, profile.latency_sigma, rows), 2
    ).tolist()
    return columns


def _values(
    rng: np.random.Generator, feature: Feature, n: int, shift: float, missing: float
) -> list[Any]:
    values: list[Any]
    if isinstance(feature, NumericFeature):
        raw = feature.sample(rng, n, shift)
        values = [int(v) for v in raw] if feature.integer else raw.tolist()
    else:
        values = list[Any](feature.sample(rng, n))
    if missing > 0:
        for i in np.flatnonzero(rng.random(n) < missing).tolist():
            values[i] = None
    return values


@dataclass
class Simulator:
    """Seeded event generator for some models under a schedule of incidents."""

    models: Sequence[ModelProfile]
    schedule: Sequence[Incident] = ()
    seed: int = 42
    silenced: int = 0  # events not sent because their model was silent
    _rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        by_name = {m.name: m for m in self.models}
        for i, incident in enumerate(self.schedule):
            check_incident(incident, by_name, f"incident {i} ({incident.label})")

    def batch(self, elapsed: float, n: int, now: float) -> list[dict[str, Any]]:
        """The next `n` events, `elapsed` seconds after the start, stamped `now`."""
        weights = np.array([m.weight for m in self.models])
        counts = np.bincount(
            self._rng.choice(len(self.models), n, p=weights / weights.sum()),
            minlength=len(self.models),
        )
        events: list[dict[str, Any]] = []
        for profile, count in zip(self.models, counts, strict=True):
            if count == 0:
                continue
            active = [i for i in self.schedule if i.model == profile.name and i.active(elapsed)]
            if any(i.kind == "silence" for i in active):
                self.silenced += int(count)
                continue
            events += self._events(profile, int(count), elapsed, now, active)
        return events

    def _events(
        self,
        profile: ModelProfile,
        n: int,
        elapsed: float,
        now: float,
        active: list[Incident],
    ) -> list[dict[str, Any]]:
        rng = self._rng
        columns: dict[str, list[Any]] = {}
        for name, feature in [*profile.features.items(), (PREDICTION, profile.prediction)]:
            shift, missing, novel = 0.0, feature.missing, 0.0
            for incident in active:
                if incident.feature != name:
                    continue
                if incident.kind == "shift":
                    shift += incident.level(elapsed)
                elif incident.kind == "nulls":
                    missing = max(missing, incident.level(elapsed))
                elif incident.kind == "new_categories":
                    novel = max(novel, incident.level(elapsed))
            values = _values(rng, feature, n, shift, missing)
            if novel > 0:
                for i in np.flatnonzero(rng.random(n) < novel):
                    if values[i] is not None:
                        values[i] = f"NEW-{int(rng.integers(1, 6))}"
            columns[name] = values
        slow = max([i.magnitude for i in active if i.kind == "latency"], default=1.0)
        latency = np.round(rng.lognormal(profile.latency_mu, profile.latency_sigma, n) * slow, 2)
        predictions = columns.pop(PREDICTION)
        names = list(columns)
        rows = zip(*(columns[c] for c in names), strict=True)
        base = int(now * 1000)
        return [
            {
                "model": profile.name,
                "model_version": profile.version,
                "ts": now,
                "request_id": f"{profile.name}-{base}-{i}",
                "features": dict(zip(names, row, strict=True)),
                "prediction": predictions[i],
                "latency_ms": float(latency[i]),
            }
            for i, row in enumerate(rows)
        ]
