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
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.decode import ModelSchema
from monitor.feature_documents import DocumentColumns
from monitor.kernels import divergence_rows, quality_ratios
from monitor.settings import SEVERITIES, Rules, Severity
from monitor.verdict_rows import Reference, Rows, reference_of, rows_of
from monitor.window.counts import Counts, layout_of

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
class FindingArrays:
    """Findings as (F, 3) arrays, columns DRIFT, MISSING, FLAGGED, one row per feature;
    `present` is False where a finding does not exist (a ratio that is undefined in this
    window)."""

    level: npt.NDArray[np.int8]
    value: FloatArray
    threshold: FloatArray
    clear: BoolArray
    for_seconds: FloatArray
    known: BoolArray
    present: BoolArray

    def rows(self, lo: int, hi: int) -> dict[str, Any]:
        """Rows lo..hi, as keyword arguments of a `FeatureTable`."""
        return {
            "level": self.level[lo:hi],
            "value": self.value[lo:hi],
            "threshold": self.threshold[lo:hi],
            "clear": self.clear[lo:hi],
            "for_seconds": self.for_seconds[lo:hi],
            "known": self.known[lo:hi],
            "present": self.present[lo:hi],
        }


@dataclass(frozen=True, eq=False)
class FeatureTable(FindingArrays):
    """One window's per-feature state-document entries and findings: rows lo..hi of a
    batch (`evaluate_features`)."""

    window: str
    reference: Reference
    severity: Severity
    batch: DocumentColumns
    lo: int
    hi: int
    active: bool  # some finding has a verdict above ok

    @cached_property
    def documents(self) -> dict[str, dict[str, Any]]:
        """The state document's `features` entries (built on first use)."""
        return self.batch.documents(self.reference, self.lo, self.hi)

    def documents_json(self) -> bytes:
        """`documents` as JSON, byte for byte what msgspec makes of it."""
        return self._json

    @cached_property
    def _json(self) -> bytes:  # kept: an evaluation may be written again (`ModelEvaluation.at`)
        return self.batch.documents_json(self.reference, self.lo, self.hi)

    def findings(self, keys: Collection[str] | None = None) -> list[Finding]:
        """Every finding, feature by feature; with `keys`, only the active ones and those."""
        if keys is None:
            mask = self.present
        else:
            held = [p for p in map(self._position, keys) if p is not None]
            if not held and not self.active:
                return []  # the common case, without a numpy call
            mask = self.present & self.known & (self.level > 0)
            for position in held:
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
    items: Sequence[tuple[ModelSchema, Rules, Sequence[tuple[str, Counts]]]],
) -> list[list[FeatureTable]]:
    """Metrics, severities and findings of every feature, per model and window.

    `items` holds, per model, its schema, rules and (window name, summed counts); all
    are computed together (`monitor.verdict_rows`), one row per (model, window, feature).
    """
    shape = [
        (
            reference_of(schema, totals[0][1].layout if totals else layout_of(schema)),
            rules,
            len(totals),
        )
        for schema, rules, totals in items
    ]
    rows = rows_of(shape)
    parts = [t.flat for _, _, totals in items for _, t in totals]
    flat = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    m = _metrics(rows, flat)
    findings, feature_level = _verdicts(rows, m)
    batch = DocumentColumns(
        events=np.repeat(flat[rows.events_from], rows.segment),
        values=np.stack([m.psi, m.jsdist, m.jsd, m.missing_ratio, m.flagged_ratio], axis=1),
        levels=feature_level,
        numeric=rows.numeric,
    )
    levels: list[int] = feature_level.tolist()
    # Rows with a finding above ok, counted cumulatively: a table's count is a subtraction.
    active = findings.present & findings.known & (findings.level > 0)
    n_active: list[int] = [0, *np.cumsum(active.any(axis=1)).tolist()]
    out: list[list[FeatureTable]] = []
    for block, (_, _, totals) in zip(rows.blocks, items, strict=True):
        tables = []
        for w, (window, _) in enumerate(totals):
            lo = block.start + w * block.features
            hi = lo + block.features
            tables.append(
                FeatureTable(
                    window=window,
                    reference=block.reference,
                    severity=SEVERITIES[max(levels[lo:hi], default=0)],
                    batch=batch,
                    lo=lo,
                    hi=hi,
                    active=n_active[hi] > n_active[lo],
                    **findings.rows(lo, hi),
                )
            )
        out.append(tables)
    return out


@dataclass(frozen=True, slots=True)
class _Metrics:
    psi: FloatArray
    jsd: FloatArray
    jsdist: FloatArray
    events: FloatArray
    missing_ratio: FloatArray
    flagged_ratio: FloatArray
    binned: FloatArray  # values in the row's own bins


def _metrics(rows: Rows, flat: IntArray) -> _Metrics:
    n, k = rows.n, rows.k
    cur = np.zeros(n * k)
    cur[rows.bins_to] = flat[rows.bins_from]
    matrix = cur.reshape(n, k)
    psi, jsd = np.empty(n), np.empty(n)
    for alpha, subset in rows.alphas:
        if subset is None:
            psi[:], jsd[:], _ = divergence_rows(rows.ref, matrix, rows.nbins, alpha)
        else:
            psi[subset], jsd[subset], _ = divergence_rows(
                rows.ref[subset], matrix[subset], rows.nbins[subset], alpha
            )
    events = np.repeat(flat[rows.events_from].astype(np.float64), rows.segment)
    missing = flat[rows.missing_from].astype(np.float64)
    flagged = flat[rows.flagged_from].astype(np.float64)
    flagged = np.minimum(flagged, np.maximum(events - missing, 0))
    missing = np.minimum(missing, events)
    missing_ratio, flagged_ratio = quality_ratios(events, missing, flagged)
    binned = (matrix * rows.valid).sum(axis=1)
    return _Metrics(psi, jsd, np.sqrt(jsd), events, missing_ratio, flagged_ratio, binned)


def _verdicts(rows: Rows, m: _Metrics) -> tuple[FindingArrays, IntArray]:
    """The checks of `classify_feature` as columns PSI, JS, MISSING_RATIO, FLAGGED_RATIO;
    the findings; and each feature's severity level."""
    n = rows.n
    enough = m.binned >= rows.min_samples * rows.nbins
    values = np.empty((n, 4))
    values[:, 0] = m.psi
    values[:, 1] = np.where(rows.js_divergence, m.jsd, m.jsdist)
    values[:, 2] = m.missing_ratio
    values[:, 3] = m.flagged_ratio  # NaN where undefined: that check does not exist
    values[~np.isfinite(values)] = math.nan
    values[~enough, :2] = math.nan  # the sample-size guard
    values[:, 2] -= rows.ref_missing
    rule = _raise_psi(rows, m.binned)  # (n, 4, 5): info, warning, critical, bound, for
    info, warning, critical = rule[:, :, 0], rule[:, :, 1], rule[:, :, 2]
    levels = (values >= info).astype(np.int8) + (values >= warning) + (values >= critical)
    thresholds = np.where(levels == 3, critical, np.where(levels == 2, warning, info))
    clear = ~(values >= rule[:, :, 3])
    # Drift takes JS when its severity is higher (PSI on ties); both must be clear.
    pick = np.empty((n, 3), dtype=np.intp)
    pick[:, 0] = levels[:, 1] > levels[:, 0]
    pick[:, 1:] = (2, 3)
    value = np.take_along_axis(values, pick, axis=1)
    finite = np.isfinite(value)
    known = np.empty((n, 3), dtype=bool)
    known[:, 0] = enough
    known[:, 1:] = (m.events >= rows.min_samples * 10)[:, None]
    finding_clear = np.take_along_axis(clear, pick, axis=1)
    finding_clear[:, 0] = clear[:, 0] & clear[:, 1]
    present = np.ones((n, 3), dtype=bool)
    present[:, 2] = np.isfinite(m.flagged_ratio)
    findings = FindingArrays(
        level=np.take_along_axis(levels, pick, axis=1),
        value=np.where(finite, value, 0.0),
        threshold=np.take_along_axis(thresholds, pick, axis=1),
        clear=finding_clear,
        for_seconds=np.take_along_axis(rule[:, :, 4], pick, axis=1),
        known=known & finite,
        present=present,
    )
    return findings, levels.max(axis=1, initial=0).astype(np.int64)


def _raise_psi(rows: Rows, binned: FloatArray) -> FloatArray:
    """The rule matrix, PSI thresholds raised to the chi² bar where that is higher
    (`monitor.kernels.psi_chi2_threshold`: chi2_{1-a,K-1}·(1/C + 1/R) + floor, infinite
    for K < 2 or an empty window)."""
    if rows.chi2 is None:
        return rows.rule
    n = binned.size
    inv_c = np.divide(1.0, binned, out=np.full(n, math.inf), where=binned > 0)
    inv_r = np.divide(1.0, rows.ref_count, out=np.full(n, math.inf), where=rows.ref_count > 0)
    defined = rows.chi2 & np.isfinite(rows.chi2_ppf) & (binned > 0)
    bar = np.full(n, math.inf)
    np.add(rows.chi2_ppf * (inv_c + inv_r), rows.chi2_floor, out=bar, where=defined)
    rule = rows.rule.copy()
    psi = rule[:, 0, :]
    raised = rows.chi2 & (bar > psi[:, 0])
    for col in range(3):
        psi[:, col] = np.where(raised, np.maximum(psi[:, col], bar), psi[:, col])
    psi[:, 3] = np.where(raised, rows.psi_resolve * psi[:, 0], psi[:, 3])
    return rule
