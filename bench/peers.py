"""Peers on the same data: whylogs profiling and Evidently PSI drift beside driftmon

An optional extra (``pip install -e '.[peers]'``; `make bench` installs it): without it this
section has one row saying so. Every tool gets the same seeded synthetic rows, PERF.md's
shape: 20 numeric features ``f00``-``f19`` (standard normal; ``f00``-``f04`` shifted by
0.2 and ``f05``-``f09`` scaled by 1.2 in the current batch), a prediction (a logistic
score) and a latency (lognormal, median 20 ms); a reference of 100 k rows and a current
batch of 1 M rows (50 k with ``--quick``). Each tool's input is built before the clock
starts, in the form it takes: pandas DataFrames for the peers, a `monitor.tables.Table` of
float64 columns for `driftmon compare` (what `read_table` returns for a Parquet file),
and ~410-byte JSON messages for the stream path. Every repeat runs every tool once, one
after the other, and each ratio is taken within a repeat, so the shared machine's noise
hits both sides alike. Rates are current-batch rows per second of wall time.

Who is compared with whom, and why that is fair:
- whylogs ``why.log(DataFrame)`` (a profile of the 22 columns, no reference) vs
  ``compare()`` with a stored baseline (bins 21 columns against the baseline, PSI, JS,
  quality ratios, latency p50/p95/p99, severities: the report `driftmon compare` prints).
  Both make one batch pass over the in-memory current rows into the summary their tool
  monitors drift from; neither touches the reference. whylogs' profile is more general
  (KLL quantile sketches, HLL cardinality, type counts) and ours also computes the
  drift; that is the point of the comparison, not a handicap on either side.
- Evidently ``Report([DataDriftPreset(method="psi")])`` on the 20 features vs
  ``build_baseline`` on the same 100 k reference plus ``compare()``, both timed:
  Evidently bins the reference on every run, so our time includes fitting the
  reference too. It bins ~21 (Sturges) bins per feature, we 20; we also cover the
  prediction and the latency, which it does not.
- Context rows, no target: the stream path without Kafka and Redis (`TypedDecoder` +
  `TypedColumns` + `Accumulator` over the current batch as JSON messages in batches of
  5000, as one ``consume(5000)`` hands them to `Stream.process`) and, as its streaming
  peer, whylogs tracking one row at a time into one ``DatasetProfile`` (on the first
  20 k rows; 2 k with ``--quick``). The stream path parses JSON; whylogs gets dicts.
As checks that every tool did the work: whylogs must count every row, Evidently must
report a PSI for each of the 20 features, and the stream path's counts must equal
``compare()``'s bin for bin.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from bench.core import Config, Row, Target, measure
from monitor.baseline import Baseline, baseline_from_document, build_baseline
from monitor.compare import compare
from monitor.decode import ModelSchema
from monitor.settings import WindowSettings
from monitor.tables import LATENCY, PREDICTION, Column, Table
from monitor.typed_decode import TypedColumns, TypedDecoder
from monitor.window.accumulate import Accumulator
from monitor.window.buckets import late_cutoff

MODEL = "bench"
N_FEATURES = 20
FEATURES = [f"f{j:02d}" for j in range(N_FEATURES)]
COLUMNS = [*FEATURES, PREDICTION, LATENCY]
N_REFERENCE = 100_000
BINS = 20  # Evidently's Sturges rule gives ~21 bins for 1.1 M rows
BATCH = 5000  # messages per Stream.process call, as one consume(5000)
PEERS = ("whylogs", "evidently")
NOT_INSTALLED = "peers not installed: pip install -e '.[peers]'"

FloatArray = npt.NDArray[np.float64]


def run(config: Config) -> list[Row]:
    # No usage statistics sent from a benchmark (whylogs posts them from a thread).
    os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    try:
        for name in (*PEERS, "pandas"):
            importlib.import_module(name)
    except ImportError:  # not installed, or an incompatible pandas (see pyproject.toml)
        return [Row(NOT_INSTALLED, math.nan, "ratio", Target(">=", 5))]
    n = 50_000 if config.quick else 1_000_000
    n_events = 2_000 if config.quick else 20_000
    repeat = 2 if config.quick else min(config.repeat, 3)
    rng = np.random.default_rng(20260611)
    reference, current = _data(rng, N_REFERENCE), _data(rng, n, drift=True)
    now = 1_800_000_000.0
    tools = _Tools(reference, current, n_events, now)
    tools.warm_up()
    samples: dict[str, list[float]] = {key: [] for key in _Tools.KEYS}
    one = Config(repeat=1, min_run_s=config.min_run_s)
    for _ in range(repeat):
        for key, fn in tools.timed().items():
            rows = n_events if key == "whylogs_track" else n
            samples[key].append(rows / measure(fn, one, warmup=0)[0])
    tools.check()
    ratio = _ratios(samples)
    wl, ev = (f"{name} {version(name)}" for name in PEERS)
    return [
        Row.from_samples(f"{wl} why.log(DataFrame), 22 columns", samples["whylogs"], "rows/s"),
        Row.from_samples(
            f"{ev} DataDriftPreset(method='psi'), 20 features, 100 k reference",
            samples["evidently"],
            "rows/s",
        ),
        Row.from_samples("driftmon compare(), stored baseline", samples["compare"], "rows/s"),
        Row.from_samples(
            "driftmon build_baseline(100 k reference) + compare()", samples["fit"], "rows/s"
        ),
        Row.from_samples(
            "driftmon compare / whylogs DataFrame (same run)",
            ratio("compare", "whylogs"),
            "ratio",
            Target(">=", 5),
        ),
        Row.from_samples(
            "driftmon baseline + compare / Evidently (same run)",
            ratio("fit", "evidently"),
            "ratio",
            Target(">=", 5),
        ),
        Row.from_samples(
            "driftmon stream path, JSON -> typed decode -> accumulate (no Kafka, no Redis)",
            samples["stream"],
            "rows/s",
        ),
        Row.from_samples(
            f"{wl} DatasetProfile.track(row), one event at a time",
            samples["whylogs_track"],
            "rows/s",
        ),
        Row.from_samples(
            "driftmon stream path / whylogs per event (same run)",
            ratio("stream", "whylogs_track"),
            "ratio",
        ),
    ]


def _ratios(samples: dict[str, list[float]]) -> Callable[[str, str], list[float]]:
    def ratio(ours: str, theirs: str) -> list[float]:
        return [a / b for a, b in zip(samples[ours], samples[theirs], strict=True)]

    return ratio


def _data(rng: np.random.Generator, n: int, *, drift: bool = False) -> dict[str, FloatArray]:
    """Columns of n rows, rounded as a model server would log them (JSON-exact)."""
    x = rng.standard_normal((n, N_FEATURES))
    if drift:
        x[:, 0:5] += 0.2
        x[:, 5:10] *= 1.2
    weights = np.linspace(-1.0, 1.0, N_FEATURES)
    score = 1.0 / (1.0 + np.exp(-(x @ weights)))
    columns = {name: x[:, j].round(4) for j, name in enumerate(FEATURES)}
    columns[PREDICTION] = score.round(4)
    columns[LATENCY] = rng.lognormal(np.log(20.0), 0.5, n).round(2)
    return columns


def _table(columns: dict[str, FloatArray], source: str) -> Table:
    """What `read_table` gives for a Parquet file of these float64 columns."""
    n = len(columns[LATENCY])
    return Table(source, n, {k: Column(v.tolist(), v) for k, v in columns.items()})


def _messages(columns: dict[str, FloatArray], now: float) -> list[bytes]:
    """One SPEC §1 inference event per message, as the stream reads them."""
    features = np.column_stack([columns[name] for name in FEATURES]).tolist()
    encode = msgspec.json.Encoder().encode
    return [
        encode(
            {
                "model": MODEL,
                "model_version": "v1",
                "ts": now,
                "request_id": f"r-{i}",
                "features": dict(zip(FEATURES, row, strict=True)),
                "prediction": prediction,
                "latency_ms": latency,
            }
        )
        for i, (row, prediction, latency) in enumerate(
            zip(features, columns[PREDICTION].tolist(), columns[LATENCY].tolist(), strict=True)
        )
    ]


class _Tools:
    """Each tool's prepared input and one timed call per tool; `check` verifies results."""

    KEYS = ("whylogs", "evidently", "compare", "fit", "stream", "whylogs_track")

    def __init__(
        self,
        reference: dict[str, FloatArray],
        current: dict[str, FloatArray],
        n_events: int,
        now: float,
    ) -> None:
        import pandas as pd  # noqa: PLC0415 - the optional peers extra

        self.reference_frame = pd.DataFrame(reference)
        self.current_frame = pd.DataFrame(current)
        self.reference_table = _table(reference, "reference")
        self.current_table = _table(current, "current")
        self.baseline = _fit(self.reference_table)
        self.schema = ModelSchema.from_baseline(self.baseline)
        self.messages = _messages(current, now)
        self.event_rows = self.current_frame.head(n_events).to_dict("records")
        self.now = now
        self.results: dict[str, Any] = {}

    def timed(self) -> dict[str, Callable[[], object]]:
        features = self.reference_frame[FEATURES], self.current_frame[FEATURES]
        return {
            "whylogs": lambda: self._keep("whylogs", _whylogs(self.current_frame)),
            "evidently": lambda: self._keep("evidently", _evidently(*features)),
            "compare": lambda: self._keep("compare", compare(self.baseline, self.current_table)),
            "fit": lambda: compare(_fit(self.reference_table), self.current_table),
            "stream": lambda: self._keep("stream", self._stream(self.messages)),
            "whylogs_track": lambda: _whylogs_track(self.event_rows),
        }

    def warm_up(self) -> None:
        """Imports, numba JIT and first-call caches of every tool, on a few rows."""
        small = self.current_frame.head(1000)
        _whylogs(small)
        _evidently(self.reference_frame[FEATURES].head(1000), small[FEATURES])
        compare(self.baseline, self.current_table)
        self._stream(self.messages[: 2 * BATCH])
        _whylogs_track(self.event_rows[:100])

    def _keep(self, key: str, result: object) -> object:
        self.results[key] = result
        return result

    def _stream(self, messages: list[bytes]) -> Accumulator:
        schema = self.schema
        decode = TypedDecoder({MODEL: schema}).decode
        typed_columns = TypedColumns(schema)
        windows = WindowSettings()
        longest = max(windows.size_seconds().values())
        cutoff = late_cutoff(self.now, longest, windows.bucket_seconds, windows.grace_seconds)
        acc = Accumulator(windows.bucket_seconds)
        now = self.now
        for start in range(0, len(messages), BATCH):
            events = list(map(decode, messages[start : start + BATCH]))
            cols, bad = typed_columns.columns(events, _constant([now] * len(events)))
            if bad:
                raise RuntimeError(f"stream path: {len(bad)} invalid events")
            acc.add_columns(schema, cols, cutoff, now, windows.grace_seconds)
        return acc

    def check(self) -> None:
        """Every tool saw every row; the stream path and compare() agree bin for bin."""
        n = self.current_table.rows
        view = self.results["whylogs"].view()
        for name in COLUMNS:
            counted = view.get_column(name).get_metric("counts").n.value
            if counted != n:
                raise RuntimeError(f"whylogs counted {counted} rows of {name}, not {n}")
        psi = _evidently_psi(self.results["evidently"])
        if sorted(psi) != FEATURES or not all(math.isfinite(v) for v in psi.values()):
            raise RuntimeError(f"Evidently reported PSI for {sorted(psi)}, not the 20 features")
        report = self.results["compare"]
        buckets = [
            b for per_model in self.results["stream"].buckets.values() for b in per_model.values()
        ]
        if sum(b.events for b in buckets) != n or report["valid_rows"] != n:
            raise RuntimeError("stream path or compare() did not count every row")
        for j, profile in enumerate(self.schema.numeric):
            streamed = sum(b.numeric[j, : profile.nbins] for b in buckets)
            if streamed.tolist() != report["features"][profile.name]["current_counts"]:
                raise RuntimeError(f"stream path and compare() disagree on {profile.name}")


def _constant(times: list[float]) -> Callable[[], list[float]]:
    """Message times for events without `ts` (every event here has one)."""
    return lambda: times


def _fit(reference: Table) -> Baseline:
    return baseline_from_document(build_baseline(MODEL, reference, bins=BINS))


def _whylogs(frame: Any) -> Any:
    import whylogs as why  # noqa: PLC0415 - the optional peers extra

    return why.log(frame)


def _whylogs_track(rows: list[dict[str, float]]) -> Any:
    from whylogs.core import DatasetProfile  # noqa: PLC0415 - the optional peers extra

    profile = DatasetProfile()
    for row in rows:
        profile.track(row=row)
    return profile


def _evidently(reference: Any, current: Any) -> Any:
    from evidently import Report  # noqa: PLC0415 - the optional peers extra
    from evidently.presets import DataDriftPreset  # noqa: PLC0415

    return Report([DataDriftPreset(method="psi")]).run(
        reference_data=reference, current_data=current
    )


def _evidently_psi(snapshot: Any) -> dict[str, float]:
    """Per-column PSI from an Evidently snapshot's ValueDrift metrics."""
    out: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift") and config.get("method") == "psi":
            out[config["column"]] = float(metric["value"])
    return out
