"""Per-feature metrics, severities and findings of one window, all features at once (pure).

Pipeline position: kernels -> **verdicts** -> evaluate. The rules are those of
`monitor.severity.classify_feature` (which `driftmon compare` applies per feature) and
the evaluator's per-feature findings, computed on (F,) arrays so that a window of 50
features costs a handful of numpy calls instead of 50 rounds of Python:

- drift: PSI and the JS metric in force, only with enough binned values (the
  sample-size guard), PSI thresholds possibly raised by the chi² bar; the finding takes
  the metric of the higher severity (PSI on ties) and is clear only when both are below
  their resolve bound;
- missing: the excess over the reference's missing ratio; out-of-range (numeric) or
  unseen (categorical) ratio, only where it is defined; both need 10·min_samples events.

tests/evaluate/test_equivalence.py checks every field against the per-feature rules.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import chi2

from monitor.baseline import CategoricalProfile, NumericProfile
from monitor.decode import PREDICTION, ModelSchema
from monitor.kernels import divergence_rows, quality_ratios
from monitor.settings import SEVERITIES, Rules, Severity, Thresholds
from monitor.window.counts import Counts, Layout

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DRIFT, MISSING, FLAGGED = 0, 1, 2  # columns of a FeatureTable


@dataclass(frozen=True, slots=True)
class Finding:
    """One alert identity's condition at this evaluation."""

    alertname: str
    window: str
    feature: str | None
    severity: Severity  # "ok" when below every threshold
    value: float
    threshold: float  # of the severity reached, or the lowest one when "ok"
    clear: bool  # below the hysteresis bound: a firing alert may resolve if this holds
    for_seconds: float
    known: bool = True  # False: not enough data for a verdict; the alert state holds

    @property
    def key(self) -> str:
        """The alert's identity within its model."""
        return f"{self.alertname}/{self.feature or '-'}/{self.window}"


@dataclass(frozen=True, eq=False)
class Reference:
    """What a schema's baseline brings to every window, computed once per schema."""

    names: tuple[str, ...]  # numeric features, then categorical ones
    numeric: BoolArray
    nbins: IntArray
    ref: FloatArray  # (F, K_max) reference counts, zero-padded
    valid_bins: FloatArray  # (F, K_max) 1 for the first nbins columns
    ref_missing: FloatArray  # reference missing ratio, 0 where undefined
    ref_count: FloatArray
    alertnames: tuple[tuple[str, str, str], ...]  # per feature: drift, missing, flagged
    index: dict[str, int]
    bins_from: IntArray  # flat slots of the window counts...
    bins_to: IntArray  # ...and where they go in the (F, K_max) matrix, raveled
    missing_from: IntArray
    flagged_from: IntArray


def reference_of(schema: ModelSchema, layout: Layout) -> Reference:
    return _reference(schema.numeric, schema.categorical, layout)


@lru_cache(maxsize=256)
def _reference(
    numeric: tuple[NumericProfile, ...],
    categorical: tuple[CategoricalProfile, ...],
    layout: Layout,
) -> Reference:
    profiles: list[NumericProfile | CategoricalProfile] = [*numeric, *categorical]
    n_num = len(numeric)
    k_max = max([layout.k, *layout.categorical_sizes], default=1)
    ref = np.zeros((len(profiles), k_max))
    valid = np.zeros((len(profiles), k_max))
    for j, p in enumerate(profiles):
        ref[j, : p.nbins] = p.counts
        valid[j, : p.nbins] = 1.0
    bins_from = [
        layout.numeric_at + j * layout.k + i for j in range(n_num) for i in range(layout.k)
    ]
    bins_to = [j * k_max + i for j in range(n_num) for i in range(layout.k)]
    for c, size in enumerate(layout.categorical_sizes):
        bins_from += range(layout.categorical_offsets[c], layout.categorical_offsets[c] + size)
        bins_to += range((n_num + c) * k_max, (n_num + c) * k_max + size)
    ref_missing = np.array([p.missing_ratio for p in profiles], dtype=np.float64)
    n_cat = len(categorical)
    return Reference(
        names=tuple(p.name for p in profiles),
        numeric=np.arange(len(profiles)) < n_num,
        nbins=np.array([p.nbins for p in profiles], dtype=np.int64),
        ref=ref,
        valid_bins=valid,
        ref_missing=np.where(np.isfinite(ref_missing), ref_missing, 0.0),
        ref_count=np.array([float(p.counts.sum()) for p in profiles]),
        alertnames=tuple(
            (
                "PredictionDrift" if p.name == PREDICTION else "FeatureDrift",
                "DataQualityMissing",
                "DataQualityOutOfRange" if j < n_num else "DataQualityUnseenCategory",
            )
            for j, p in enumerate(profiles)
        ),
        index={p.name: j for j, p in enumerate(profiles)},
        bins_from=np.array(bins_from, dtype=np.intp),
        bins_to=np.array(bins_to, dtype=np.intp),
        missing_from=np.concatenate(
            [
                np.arange(layout.numeric_missing_at, layout.numeric_missing_at + n_num),
                np.arange(layout.categorical_missing_at, layout.categorical_missing_at + n_cat),
            ]
        ).astype(np.intp),
        flagged_from=np.concatenate(
            [
                np.arange(layout.numeric_oor_at, layout.numeric_oor_at + n_num),
                np.arange(layout.unseen_at, layout.unseen_at + n_cat),
            ]
        ).astype(np.intp),
    )


@dataclass(frozen=True, eq=False)
class FeatureTable:
    """One window's per-feature state-document entries and findings.

    Findings are (F, 3) arrays, columns DRIFT, MISSING, FLAGGED; `present` is False
    where a finding does not exist (a ratio that is undefined in this window).
    """

    window: str
    reference: Reference
    documents: dict[str, dict[str, Any]]
    severity: Severity
    level: npt.NDArray[np.int8]
    value: FloatArray
    threshold: FloatArray
    clear: BoolArray
    for_seconds: FloatArray
    known: BoolArray
    present: BoolArray

    def findings(self, keys: Collection[str] | None = None) -> list[Finding]:
        """Every finding, feature by feature; with `keys`, only the active ones and those."""
        if keys is None:
            mask = self.present
        else:
            mask = self.present & self.known & (self.level > 0)
            for key in keys:
                position = self._position(key)
                if position is not None:
                    mask[position] = self.present[position]
        rows, cols = np.nonzero(mask)
        names, alertnames = self.reference.names, self.reference.alertnames
        return [
            Finding(
                alertname=alertnames[j][c],
                window=self.window,
                feature=names[j],
                severity=SEVERITIES[level],
                value=value,
                threshold=threshold,
                clear=clear,
                for_seconds=for_seconds,
                known=known,
            )
            for j, c, level, value, threshold, clear, for_seconds, known in zip(
                rows.tolist(),
                cols.tolist(),
                self.level[rows, cols].tolist(),
                self.value[rows, cols].tolist(),
                self.threshold[rows, cols].tolist(),
                self.clear[rows, cols].tolist(),
                self.for_seconds[rows, cols].tolist(),
                self.known[rows, cols].tolist(),
                strict=True,
            )
        ]

    def _position(self, key: str) -> tuple[int, int] | None:
        alertname, feature, window = key.split("/", 2)
        j = self.reference.index.get(feature)
        if window != self.window or j is None:
            return None
        kinds = self.reference.alertnames[j]
        return (j, kinds.index(alertname)) if alertname in kinds else None


def evaluate_features(
    schema: ModelSchema, rules: Rules, window: str, total: Counts
) -> FeatureTable:
    """Metrics, severities and findings of every feature of `schema` in one window."""
    ref = reference_of(schema, total.layout)
    n, k_max = ref.ref.shape
    cur = np.zeros(n * k_max)
    cur[ref.bins_to] = total.flat[ref.bins_from]
    cur = cur.reshape(n, k_max)
    psi, jsd, jsdist = divergence_rows(ref.ref, cur, ref.nbins, rules.pseudocount)
    events_n = total.events
    events = np.full(n, float(events_n))
    missing = total.flat[ref.missing_from].astype(np.float64)
    flagged = total.flat[ref.flagged_from].astype(np.float64)
    flagged = np.minimum(flagged, np.maximum(events - missing, 0))
    missing = np.minimum(missing, events)
    missing_ratio, flagged_ratio = quality_ratios(events, missing, flagged)

    binned = (cur * ref.valid_bins).sum(axis=1)
    enough = binned >= rules.min_samples_per_bin * ref.nbins
    psi_rule = _psi_thresholds(rules, ref, binned)
    js_metric = jsdist if rules.js_metric == "js_distance" else jsd
    psi_v = np.where(enough & np.isfinite(psi), psi, math.nan)
    js_v = np.where(enough & np.isfinite(js_metric), js_metric, math.nan)
    psi_level = _level(psi_v, *psi_rule)
    js_level = _level(js_v, *_rule(rules.js_distance, n))
    use_js = js_level > psi_level
    drift_rule = tuple(
        np.where(use_js, b, a) for a, b in zip(psi_rule, _rule(rules.js_distance, n), strict=True)
    )
    drift_value = np.where(use_js, js_v, psi_v)
    drift_clear = ~(psi_v >= rules.psi.resolve_ratio * psi_rule[0]) & ~(
        js_v >= rules.js_distance.resolve_ratio * rules.js_distance.info
    )

    ratios_known = events_n >= rules.min_samples_per_bin * 10
    missing_v = np.where(np.isfinite(missing_ratio), missing_ratio, math.nan) - ref.ref_missing
    missing_rule = _rule(rules.missing, n)
    flag_present = np.isfinite(flagged_ratio)
    flag_rule = tuple(
        np.where(ref.numeric, a, b)
        for a, b in zip(_rule(rules.out_of_range, n), _rule(rules.unseen, n), strict=True)
    )
    flag_v = np.where(flag_present, flagged_ratio, math.nan)

    values = np.stack([drift_value, missing_v, flag_v], axis=1)
    info, warning, critical = (
        np.stack([d, m, f], axis=1)
        for d, m, f in zip(drift_rule[:3], missing_rule[:3], flag_rule[:3], strict=True)
    )
    level = np.stack(
        [
            np.where(use_js, js_level, psi_level),
            _level(missing_v, *missing_rule),
            _level(flag_v, *flag_rule),
        ],
        axis=1,
    ).astype(np.int8)
    feature_level = np.maximum(np.maximum(psi_level, js_level), level[:, MISSING])
    feature_level = np.maximum(feature_level, np.where(flag_present, level[:, FLAGGED], 0))
    finite = np.isfinite(values)
    return FeatureTable(
        window=window,
        reference=ref,
        documents=_documents(
            ref, events_n, psi, jsdist, jsd, missing_ratio, flagged_ratio, feature_level
        ),
        severity=SEVERITIES[int(feature_level.max(initial=0))],
        level=level,
        value=np.where(finite, values, 0.0),
        threshold=np.where(level == 3, critical, np.where(level == 2, warning, info)),
        clear=np.stack(
            [
                drift_clear,
                ~(missing_v >= missing_rule[3] * missing_rule[0]),
                ~(flag_v >= flag_rule[3] * flag_rule[0]),
            ],
            axis=1,
        ),
        for_seconds=np.stack([drift_rule[4], missing_rule[4], flag_rule[4]], axis=1),
        known=finite
        & np.stack([enough, np.full(n, ratios_known), np.full(n, ratios_known)], axis=1),
        present=np.stack([np.ones(n, dtype=bool), np.ones(n, dtype=bool), flag_present], axis=1),
    )


def _rule(rule: Thresholds, n: int) -> tuple[FloatArray, ...]:
    """(info, warning, critical, resolve_ratio, for_seconds) of one rule, per feature."""
    return tuple(
        np.full(n, v)
        for v in (rule.info, rule.warning, rule.critical, rule.resolve_ratio, rule.for_seconds)
    )


def _psi_thresholds(rules: Rules, ref: Reference, binned: FloatArray) -> tuple[FloatArray, ...]:
    """The PSI rule per feature, each threshold raised to the chi² bar when that is higher."""
    info, warning, critical, resolve, for_seconds = _rule(rules.psi, binned.size)
    if rules.psi_chi2 is None:
        return info, warning, critical, resolve, for_seconds
    cfg = rules.psi_chi2
    defined = (ref.nbins >= 2) & (binned > 0)
    inv_c = np.divide(1.0, binned, out=np.full(binned.size, math.inf), where=binned > 0)
    inv_r = np.divide(
        1.0, ref.ref_count, out=np.full(binned.size, math.inf), where=ref.ref_count > 0
    )
    ppf = _chi2_ppf(cfg.significance, tuple(ref.nbins.tolist()))
    bar = np.where(defined, ppf * (inv_c + inv_r) + cfg.floor, math.inf)
    raised = bar > info
    return (
        np.where(raised, np.maximum(info, bar), info),
        np.where(raised, np.maximum(warning, bar), warning),
        np.where(raised, np.maximum(critical, bar), critical),
        resolve,
        for_seconds,
    )


@lru_cache(maxsize=64)
def _chi2_ppf(significance: float, nbins: tuple[int, ...]) -> FloatArray:
    """chi2_{1-a, K-1} per feature (NaN where K < 2, masked by the caller)."""
    dfs = np.array(nbins, dtype=np.float64) - 1
    out = np.full(dfs.size, math.nan)
    for j, df in enumerate(dfs.tolist()):
        if df >= 1:
            out[j] = float(chi2.ppf(1.0 - significance, df))
    return out


def _level(
    value: FloatArray, info: FloatArray, warning: FloatArray, critical: FloatArray, *_: FloatArray
) -> IntArray:
    """0 ok, 1 info, 2 warning, 3 critical (thresholds are ordered; NaN is ok)."""
    return ((value >= info).astype(np.int64) + (value >= warning) + (value >= critical)).astype(
        np.int64
    )


def _nums(values: FloatArray) -> list[float | None]:
    """As JSON numbers: None where not finite."""
    out: list[float | None] = list(values.tolist())
    for j in np.flatnonzero(~np.isfinite(values)).tolist():
        out[j] = None
    return out


def _documents(
    ref: Reference,
    events: int,
    psi: FloatArray,
    jsdist: FloatArray,
    jsd: FloatArray,
    missing_ratio: FloatArray,
    flagged_ratio: FloatArray,
    level: IntArray,
) -> dict[str, dict[str, Any]]:
    """The state document's `features` entries of one window."""
    flagged = _nums(flagged_ratio)
    numeric = ref.numeric.tolist()
    return {
        name: {
            "events": events,
            "psi": p,
            "js_distance": d,
            "js_divergence": v,
            "missing_ratio": m,
            "out_of_range_ratio": f if is_num else None,
            "unseen_ratio": None if is_num else f,
            "severity": SEVERITIES[s],
        }
        for name, p, d, v, m, f, is_num, s in zip(
            ref.names,
            _nums(psi),
            _nums(jsdist),
            _nums(jsd),
            _nums(missing_ratio),
            flagged,
            numeric,
            level.tolist(),
            strict=True,
        )
    }
