"""The state document's `features` entries, from a batch's arrays (pure).

`monitor.verdicts.evaluate_features` computes the metrics and severities of every
(model, window, feature) row of a batch at once; `DocumentColumns` holds those numbers
and renders any window's entries, as dicts (`documents`) or straight to JSON
(`documents_json`, the evaluator's path: ~10,000 entries per round for 100 models).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from monitor.settings import SEVERITIES
from monitor.verdict_rows import Reference

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _nums(values: FloatArray) -> list[float | None]:
    """As JSON numbers: None where not finite."""
    out: list[float | None] = list(values.tolist())
    for j in np.flatnonzero(~np.isfinite(values)).tolist():
        out[j] = None
    return out


_SEVERITY_NAMES = np.array(SEVERITIES, dtype=object)


class _Entry(msgspec.Struct, gc=False):
    """A `features` entry of the state document, as msgspec encodes it: the keys of
    `_documents`, in its order; NaN and inf encode as null, like the None there."""

    events: int
    psi: float | None
    js_distance: float | None
    js_divergence: float | None
    missing_ratio: float | None
    out_of_range_ratio: float | None
    unseen_ratio: float | None
    severity: str


@dataclass(frozen=True, eq=False)
class DocumentColumns:
    """A batch's numbers for the state documents' `features` entries, one row per (model,
    window, feature); every `FeatureTable` of the batch reads its rows from here.

    The state documents of 100 models hold 10,000 feature entries per round: a dict per
    entry, then encoding them, cost as much as the rest of the evaluation. `documents_json`
    makes them msgspec structs instead, created in one C loop (`map`) and encoded with
    their keys known in advance, to the same bytes. `documents` builds the dicts, for
    callers that read them.
    """

    events: IntArray  # (n,) the window's valid events
    values: FloatArray  # (n, 5) psi, js_distance, js_divergence, missing, flagged ratio
    levels: IntArray  # (n,) severity levels
    numeric: BoolArray  # (n,) the flagged ratio is out-of-range (else unseen)

    @cached_property
    def _numbers(self) -> list[list[float | None]]:
        return [_nums(self.values[:, c]) for c in range(self.values.shape[1])]

    def documents(self, ref: Reference, lo: int, hi: int) -> dict[str, dict[str, Any]]:
        """The `features` entries of rows lo..hi, whose features are `ref`'s."""
        events = int(self.events[lo]) if hi > lo else 0
        columns = [c[lo:hi] for c in self._numbers]
        return _documents(ref, events, columns, self.levels[lo:hi].tolist())

    @cached_property
    def _entries(self) -> list[_Entry]:
        v, flagged = self.values, self.values[:, 4]
        return list(
            map(
                _Entry,
                self.events.tolist(),
                *(v[:, c].tolist() for c in range(4)),
                np.where(self.numeric, flagged, math.nan).tolist(),
                np.where(self.numeric, math.nan, flagged).tolist(),
                _SEVERITY_NAMES[self.levels].tolist(),
            )
        )

    def documents_json(self, ref: Reference, lo: int, hi: int) -> bytes:
        """`msgspec.json.encode(self.documents(ref, lo, hi))`, without the dicts."""
        return msgspec.json.encode(dict(zip(ref.names, self._entries[lo:hi], strict=True)))


def _documents(
    ref: Reference, events: int, columns: list[list[float | None]], levels: list[int]
) -> dict[str, dict[str, Any]]:
    """The state document's `features` entries of one window.

    `columns`: psi, js_distance, js_divergence, missing ratio, flagged ratio (JSON
    numbers) per feature; `levels` the features' severity levels.
    """
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
        for name, is_num, p, d, v, m, f, s in zip(
            ref.names, ref.numeric, *columns, levels, strict=True
        )
    }
