"""Reference-vs-current histogram overlays of a compare report, one PNG per drifted feature.

Pipeline position: a sink after `monitor.compare` (``driftmon compare --plot DIR``). It
reads only the JSON-ready report (bins, counts, metrics, severity), so it plots exactly
the numbers the report states. matplotlib is an optional extra (``driftmon[plot]``):
this module imports it at the top and the CLI imports this module only for ``--plot``.

Figures are `matplotlib.figure.Figure` objects drawn on an explicit Agg canvas; pyplot
is never imported, so no global figure registry, backend switch or rcParams change
leaks into the caller. Text from the data (feature and category names) is drawn
literally: mathtext is off (a ``$`` in a name is a dollar sign) and characters the
font lacks become ``?`` instead of a missing-glyph warning.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, findfont, get_font

from monitor.settings import SEVERITIES, Severity
from monitor.severity import at_least

REFERENCE_COLOR = "#4C72B0"
CURRENT_COLOR = "#DD8452"
_LABEL_CHARS = 24  # longer category names are cut with an ellipsis under the bars
_SLUG_CHARS = 48


def write_overlays(
    report: dict[str, Any], directory: Path, *, min_severity: Severity = "warning"
) -> list[Path]:
    """Write one PNG per feature of `report` whose severity reaches `min_severity`.

    Each figure shows reference and current *proportions* per bin side by side, the
    bins labelled from the numeric edges (``≤ a``, ``(a, b]``, ``> b``) or the
    categories, and a title with the feature name, PSI, JS distance and severity.
    `directory` is created when missing. Returns the written paths in report order;
    ``[]`` (and nothing written) when no feature reaches `min_severity`.
    Raises `ValueError` for an unknown severity and `OSError` when writing fails.
    """
    if min_severity not in SEVERITIES:
        raise ValueError(f"min_severity must be one of {', '.join(SEVERITIES)}")
    chosen = {
        name: feature
        for name, feature in report["features"].items()
        if at_least(feature["severity"], min_severity)
    }
    if not chosen:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, feature in chosen.items():
        path = directory / plot_filename(name)
        _draw(name, feature, report).savefig(path, format="png")
        written.append(path)
    return written


def plot_filename(feature: str) -> str:
    """A file name safe on any file system, distinct for distinct feature names.

    An ASCII slug keeps it recognisable; a hash of the exact name tells apart names
    that slug alike (``a b`` and ``a/b``, or two names only in non-Latin script).
    """
    ascii_name = unicodedata.normalize("NFKD", feature).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", ascii_name).strip(".-")[:_SLUG_CHARS].strip(".-")
    digest = hashlib.sha256(feature.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{slug or 'feature'}-{digest}.png"


def bin_labels(feature: dict[str, Any]) -> list[str]:
    """Labels of a report feature's bins: categories, or intervals from the inner edges.

    Numeric bins are right-closed: ``≤ e0``, ``(e0, e1]``, ..., ``> e_last``.
    """
    if feature["type"] != "numeric":
        return [str(c) for c in feature["categories"]]
    edges = [_edge(e) for e in feature["edges"]]
    if not edges:
        return ["all values"]
    inner = [f"({lo}, {hi}]" for lo, hi in pairwise(edges)]
    return [f"≤ {edges[0]}", *inner, f"> {edges[-1]}"]


def _draw(name: str, feature: dict[str, Any], report: dict[str, Any]) -> Figure:
    reference = np.asarray(feature["reference_counts"], dtype=np.float64)
    current = np.asarray(feature["current_counts"], dtype=np.float64)
    labels = bin_labels(feature)
    if len(labels) != reference.size:  # defensive: a hand-edited report
        labels = [f"bin {i}" for i in range(reference.size)]
    labels = [_printable(_shorten(label)) for label in labels]
    k = reference.size
    fig = Figure(figsize=(min(max(6.4, 0.45 * k + 2.5), 20.0), 4.8), dpi=100, layout="tight")
    FigureCanvasAgg(fig)  # Agg chosen here, per figure; no global backend switch
    ax = fig.add_subplot()
    x = np.arange(k)
    width = 0.4
    ax.bar(
        x - width / 2,
        _proportions(reference),
        width,
        color=REFERENCE_COLOR,
        label=f"reference (n={int(reference.sum()):,})",
    )
    ax.bar(
        x + width / 2,
        _proportions(current),
        width,
        color=CURRENT_COLOR,
        label=f"current (n={int(current.sum()):,})",
    )
    rotate = k > 6 or max(map(len, labels), default=0) > 12
    ax.set_xticks(
        x,
        labels,
        rotation=45 if rotate else 0,
        ha="right" if rotate else "center",
        parse_math=False,
    )
    ax.set_xlabel("bin" if feature["type"] == "numeric" else "category")
    ax.set_ylabel("proportion of binned values")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="best", frameon=False)
    few = "" if feature.get("enough_samples", True) else " (few samples)"
    ax.set_title(
        _printable(
            f"{name}\nPSI {_metric(feature.get('psi'))} · "
            f"JS distance {_metric(feature.get('js_distance'))} · "
            f"severity {feature['severity']}{few}"
        ),
        parse_math=False,
    )
    fig.text(
        0.01,
        0.01,
        _printable(f"model {report.get('model', '?')}  baseline {report.get('baseline_id', '?')}"),
        fontsize=7,
        color="gray",
        parse_math=False,
    )
    return fig


def _proportions(counts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts)


def _edge(value: float) -> str:
    return f"{value:.4g}"


def _metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _shorten(text: str) -> str:
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def _printable(text: str) -> str:
    """`text` with characters the default font cannot draw replaced by ``?``."""
    charmap = _font_charmap()
    return "".join(c if c in "\n\t" or ord(c) in charmap else "?" for c in text)


@cache
def _font_charmap() -> frozenset[int]:
    return frozenset(get_font(findfont(FontProperties())).get_charmap())
