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
from monitor.settings import SEVERITIES, Chi2Threshold, Rules, Severity, Thresholds
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
    # Columns PSI, JS, MISSING_RATIO, FLAGGED_RATIO: the checks of classify_feature.
    values = np.empty((n, 4))
    values[:, 0] = psi
    values[:, 1] = jsdist if rules.js_metric == "js_distance" else jsd
    values[:, 2] = missing_ratio
    values[:, 3] = flagged_ratio  # NaN where undefined: that check does not exist
    values[~np.isfinite(values)] = math.nan
    values[~enough, :2] = math.nan  # the sample-size guard
    values[:, 2] -= ref.ref_missing
    rule = _rule_matrix(rules, ref, binned)  # (n, 4, 5): info, warning, critical, bound, for
    info, warning, critical = rule[:, :, 0], rule[:, :, 1], rule[:, :, 2]
    levels = (values >= info).astype(np.int8) + (values >= warning) + (values >= critical)
    thresholds = np.where(levels == 3, critical, np.where(levels == 2, warning, info))
    clear = ~(values >= rule[:, :, 3])

    # Findings: drift takes JS when its severity is higher (PSI on ties); both must be clear.
    pick = np.empty((n, 3), dtype=np.intp)
    pick[:, 0] = levels[:, 1] > levels[:, 0]
    pick[:, 1:] = (2, 3)
    value = np.take_along_axis(values, pick, axis=1)
    finite = np.isfinite(value)
    known = np.empty((n, 3), dtype=bool)
    known[:, 0] = enough
    known[:, 1:] = events_n >= rules.min_samples_per_bin * 10
    finding_clear = np.take_along_axis(clear, pick, axis=1)
    finding_clear[:, 0] = clear[:, 0] & clear[:, 1]
    present = np.ones((n, 3), dtype=bool)
    present[:, 2] = np.isfinite(flagged_ratio)
    feature_level = levels.max(axis=1, initial=0)
    return FeatureTable(
        window=window,
        reference=ref,
        documents=_documents(
            ref, events_n, psi, jsdist, jsd, missing_ratio, flagged_ratio, feature_level
        ),
        severity=SEVERITIES[int(feature_level.max(initial=0))],
        level=np.take_along_axis(levels, pick, axis=1),
        value=np.where(finite, value, 0.0),
        threshold=np.take_along_axis(thresholds, pick, axis=1),
        clear=finding_clear,
        for_seconds=np.take_along_axis(rule[:, :, 4], pick, axis=1),
        known=known & finite,
        present=present,
    )


def _rule_matrix(rules: Rules, ref: Reference, binned: FloatArray) -> FloatArray:
    """Per feature and check (PSI, JS, missing, flagged): info, warning, critical, the
    resolve bound (resolve_ratio x info) and `for`. PSI thresholds may be raised by the
    chi² bar; flagged is out-of-range for numeric features, unseen for categorical ones."""
    table = np.array(
        [
            [_row(rules.psi), _row(rules.js_distance), _row(rules.missing), _row(flagged)]
            for flagged in (rules.unseen, rules.out_of_range)
        ]
    )
    matrix = table[ref.numeric.astype(np.intp)]
    if rules.psi_chi2 is not None:
        bar = _chi2_bar(rules.psi_chi2, ref, binned)
        raised = bar > rules.psi.info
        for col in range(3):
            matrix[:, 0, col] = np.where(
                raised, np.maximum(matrix[:, 0, col], bar), matrix[:, 0, col]
            )
        matrix[:, 0, 3] = rules.psi.resolve_ratio * matrix[:, 0, 0]
    return matrix


def _row(rule: Thresholds) -> tuple[float, ...]:
    return (
        rule.info,
        rule.warning,
        rule.critical,
        rule.resolve_ratio * rule.info,
        rule.for_seconds,
    )


def _chi2_bar(cfg: Chi2Threshold, ref: Reference, binned: FloatArray) -> FloatArray:
    """`monitor.kernels.psi_chi2_threshold` per feature: chi2_{1-a,K-1}·(1/C + 1/R) + floor."""
    defined = (ref.nbins >= 2) & (binned > 0)
    inv_c = np.divide(1.0, binned, out=np.full(binned.size, math.inf), where=binned > 0)
    inv_r = np.divide(
        1.0, ref.ref_count, out=np.full(binned.size, math.inf), where=ref.ref_count > 0
    )
    ppf = _chi2_ppf(cfg.significance, tuple(ref.nbins.tolist()))
    return np.where(defined, ppf * (inv_c + inv_r) + cfg.floor, math.inf)


@lru_cache(maxsize=64)
def _chi2_ppf(significance: float, nbins: tuple[int, ...]) -> FloatArray:
    """chi2_{1-a, K-1} per feature (NaN where K < 2, masked by the caller)."""
    out = np.full(len(nbins), math.nan)
    for j, k in enumerate(nbins):
        if k >= 2:
            out[j] = float(chi2.ppf(1.0 - significance, k - 1))
    return out


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
