"""The rows of a verdict batch: what baselines and rules contribute, computed once (pure).

`monitor.verdicts` evaluates every feature of every window of every model in one pass
over rows (model, window, feature). Whatever about a row does not depend on the counts
(reference bins, thresholds, the chi² quantile, where each count sits in the flat
vectors) is gathered here once per batch shape, i.e. per set of (baseline, rules,
number of windows): the evaluator's batch is the same round after round.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy.stats import chi2

from monitor.baseline import CategoricalProfile, NumericProfile
from monitor.decode import PREDICTION, ModelSchema
from monitor.settings import Rules, Thresholds
from monitor.window.counts import EVENTS, Layout

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
IndexArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class Reference:
    """What a schema's baseline brings to every window, computed once per schema."""

    names: tuple[str, ...]  # numeric features, then categorical ones
    numeric: tuple[bool, ...]
    nbins: tuple[int, ...]
    counts: tuple[IntArray, ...]
    ref_missing: tuple[float, ...]  # reference missing ratio, 0 where undefined
    alertnames: tuple[tuple[str, str, str], ...]  # per feature: drift, missing, flagged
    index: dict[str, int]
    size: int  # of the flat count vectors
    width: int  # bins per row, numeric rows included (they may hold bins past their own)
    bins_from: IndexArray  # flat slots of the bin counts...
    bins_feature: IndexArray  # ...their feature...
    bins_column: IndexArray  # ...and bin
    missing_from: IndexArray  # flat slot of each feature's missing count
    flagged_from: IndexArray  # ... and out-of-range (numeric) or unseen (categorical) count


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
    bins_from = [
        layout.numeric_at + j * layout.k + i for j in range(n_num) for i in range(layout.k)
    ]
    bins_feature = [j for j in range(n_num) for _ in range(layout.k)]
    bins_column = [i for _ in range(n_num) for i in range(layout.k)]
    for c, size in enumerate(layout.categorical_sizes):
        bins_from += range(layout.categorical_offsets[c], layout.categorical_offsets[c] + size)
        bins_feature += [n_num + c] * size
        bins_column += range(size)
    n_cat = len(categorical)
    return Reference(
        names=tuple(p.name for p in profiles),
        numeric=tuple(j < n_num for j in range(len(profiles))),
        nbins=tuple(p.nbins for p in profiles),
        counts=tuple(p.counts for p in profiles),
        ref_missing=tuple(
            p.missing_ratio if math.isfinite(p.missing_ratio) else 0.0 for p in profiles
        ),
        alertnames=tuple(
            (
                "PredictionDrift" if p.name == PREDICTION else "FeatureDrift",
                "DataQualityMissing",
                "DataQualityOutOfRange" if j < n_num else "DataQualityUnseenCategory",
            )
            for j, p in enumerate(profiles)
        ),
        index={p.name: j for j, p in enumerate(profiles)},
        size=layout.size,
        width=max([layout.k, *layout.categorical_sizes]),
        bins_from=np.array(bins_from, dtype=np.intp),
        bins_feature=np.array(bins_feature, dtype=np.intp),
        bins_column=np.array(bins_column, dtype=np.intp),
        missing_from=np.array(
            [
                *range(layout.numeric_missing_at, layout.numeric_missing_at + n_num),
                *range(layout.categorical_missing_at, layout.categorical_missing_at + n_cat),
            ],
            dtype=np.intp,
        ),
        flagged_from=np.array(
            [
                *range(layout.numeric_oor_at, layout.numeric_oor_at + n_num),
                *range(layout.unseen_at, layout.unseen_at + n_cat),
            ],
            dtype=np.intp,
        ),
    )


@dataclass(frozen=True, eq=False)
class Block:
    """One model's rows: window by window, feature by feature, from row `start`."""

    reference: Reference
    windows: int
    start: int

    @property
    def features(self) -> int:
        return len(self.reference.names)


@dataclass(frozen=True, eq=False)
class Rows:
    """Per row of a batch, everything that does not depend on the counts.

    The counts arrive as one vector: every model's windows' flat counts, concatenated
    model by model, window by window; the `*_from` arrays index into it.
    """

    blocks: tuple[Block, ...]
    k: int  # bins per row (the widest feature of the batch)
    ref: FloatArray  # (n, k) reference counts, zero-padded
    valid: FloatArray  # (n, k) 1 for the row's own bins
    nbins: IntArray
    ref_missing: FloatArray
    ref_count: FloatArray
    numeric: BoolArray  # a numeric feature's row (else categorical)
    rule: FloatArray  # (n, 4, 5): PSI, JS, missing, flagged x info, warning, critical, bound, for
    min_samples: FloatArray  # rules.min_samples_per_bin
    js_divergence: BoolArray  # rules.js_metric == "js_divergence"
    alphas: tuple[tuple[float, IndexArray | None], ...]  # pseudocount -> rows (None: all)
    chi2: BoolArray | None  # rows whose rules have psi_chi2 (None: no row has)
    chi2_ppf: FloatArray  # chi2_{1-a,K-1} there (NaN where K < 2: the bar is infinite)
    chi2_floor: FloatArray
    psi_resolve: FloatArray  # rules.psi.resolve_ratio
    bins_from: IndexArray  # counts -> the raveled (n, k) matrix at bins_to
    bins_to: IndexArray
    missing_from: IndexArray  # (n,)
    flagged_from: IndexArray  # (n,)
    events_from: IndexArray  # per (model, window): its `n` slot
    segment: IntArray  # per (model, window): its number of rows

    @property
    def n(self) -> int:
        return int(self.ref.shape[0])


def rows_of(shape: Sequence[tuple[Reference, Rules, int]]) -> Rows:
    """The rows of a batch of (reference, rules, number of windows), in that order."""
    return _rows(tuple(shape))


@lru_cache(maxsize=16)
def _rows(shape: tuple[tuple[Reference, Rules, int], ...]) -> Rows:
    k = max((ref.width for ref, _, _ in shape), default=1)
    blocks, start = [], 0
    for ref, _, windows in shape:
        blocks.append(Block(ref, windows, start))
        start += windows * len(ref.names)
    n = start
    ref_m, valid = np.zeros((n, k)), np.zeros((n, k))
    nbins, ref_missing, ref_count = np.zeros(n, np.int64), np.zeros(n), np.zeros(n)
    rule, min_samples = np.zeros((n, 4, 5)), np.zeros(n)
    js_div, alpha = np.zeros(n, bool), np.zeros(n)
    has_chi2, ppf, floor = np.zeros(n, bool), np.full(n, math.nan), np.zeros(n)
    psi_resolve = np.zeros(n)
    numeric = np.zeros(n, bool)
    bins_from: list[IndexArray] = []
    bins_to: list[IndexArray] = []
    missing_from: list[IndexArray] = []
    flagged_from: list[IndexArray] = []
    events_from: list[int] = []
    segment: list[int] = []
    offset = 0  # into the concatenated counts
    for block, (ref, rules, windows) in zip(blocks, shape, strict=True):
        f = block.features
        table = [
            [_row(rules.psi), _row(rules.js_distance), _row(rules.missing), _row(flagged)]
            for flagged in (rules.unseen, rules.out_of_range)
        ]
        per_feature = np.array(table)[np.array(ref.numeric, dtype=np.intp)]
        quantile = _chi2_ppf(rules.psi_chi2.significance, ref.nbins) if rules.psi_chi2 else None
        for w in range(windows):
            rows = slice(block.start + w * f, block.start + (w + 1) * f)
            for j, counts in enumerate(ref.counts):
                ref_m[rows.start + j, : ref.nbins[j]] = counts
                valid[rows.start + j, : ref.nbins[j]] = 1.0
            nbins[rows] = ref.nbins
            ref_missing[rows] = ref.ref_missing
            ref_count[rows] = [float(c.sum()) for c in ref.counts]
            numeric[rows] = ref.numeric
            rule[rows] = per_feature
            min_samples[rows] = rules.min_samples_per_bin
            js_div[rows] = rules.js_metric == "js_divergence"
            alpha[rows] = rules.pseudocount
            psi_resolve[rows] = rules.psi.resolve_ratio
            if rules.psi_chi2 is not None and quantile is not None:
                has_chi2[rows] = True
                ppf[rows] = quantile
                floor[rows] = rules.psi_chi2.floor
            bins_from.append(offset + ref.bins_from)
            bins_to.append((rows.start + ref.bins_feature) * k + ref.bins_column)
            missing_from.append(offset + ref.missing_from)
            flagged_from.append(offset + ref.flagged_from)
            events_from.append(offset + EVENTS)
            segment.append(f)
            offset += ref.size
    alphas = tuple(
        (float(a), None if (alpha == a).all() else np.flatnonzero(alpha == a))
        for a in np.unique(alpha)
    )
    return Rows(
        blocks=tuple(blocks),
        k=k,
        ref=ref_m,
        valid=valid,
        nbins=nbins,
        ref_missing=ref_missing,
        ref_count=ref_count,
        numeric=numeric,
        rule=rule,
        min_samples=min_samples,
        js_divergence=js_div,
        alphas=alphas,
        chi2=has_chi2 if has_chi2.any() else None,
        chi2_ppf=ppf,
        chi2_floor=floor,
        psi_resolve=psi_resolve,
        bins_from=_cat(bins_from),
        bins_to=_cat(bins_to),
        missing_from=_cat(missing_from),
        flagged_from=_cat(flagged_from),
        events_from=np.array(events_from, dtype=np.intp),
        segment=np.array(segment, dtype=np.int64),
    )


def _cat(parts: list[IndexArray]) -> IndexArray:
    return np.concatenate(parts).astype(np.intp) if parts else np.zeros(0, dtype=np.intp)


def _row(rule: Thresholds) -> tuple[float, ...]:
    return (
        rule.info,
        rule.warning,
        rule.critical,
        rule.resolve_ratio * rule.info,
        rule.for_seconds,
    )


def _chi2_ppf(significance: float, nbins: tuple[int, ...]) -> FloatArray:
    """chi2_{1-a, K-1} per feature (NaN where K < 2: no bar)."""
    return np.array(
        [float(chi2.ppf(1.0 - significance, k - 1)) if k >= 2 else math.nan for k in nbins]
    )
