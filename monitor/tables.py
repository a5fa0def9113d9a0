"""Batch file readers: CSV, JSON Lines and Parquet -> columns.

Pipeline position: the batch edge. `driftmon baseline build` and `driftmon compare` read
a file here and hand the columns to `monitor.baseline` (fit bins) or `monitor.compare`
(count against a baseline). Nothing downstream knows which format a column came from.

A `Column` keeps every value as read (`raw`, `None` = missing) and, when every present
value is a finite number (not a boolean), also a float64 view (`numbers`, NaN = missing)
so numeric features are binned without a Python loop. What a value *means* for a
feature (numeric, category string or invalid) is decided later against the baseline.

Format rules:
- CSV (stdlib `csv`, header row required): an empty cell is missing; cells are text,
  and a column is numeric when every non-empty cell parses as a finite float.
- JSON Lines (msgspec): either SPEC §1 inference events (`features` object, `prediction`
  becomes the column ``__prediction__``, `latency_ms`, `model`) or flat objects, one
  per line; blank lines are skipped; `null` and absent keys are missing.
- Parquet (optional `pyarrow`, ``pip install 'driftmon[parquet]'``): nulls are missing,
  and so is NaN in a float column (the pandas convention).
Every problem with the file itself is an `InputError` with a one-line message.
"""

from __future__ import annotations

import csv
import gc
import io
import operator
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import compress, repeat
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from monitor.errors import InputError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

PREDICTION = "__prediction__"
LATENCY = "latency_ms"
FORMATS = ("csv", "jsonl", "parquet")
_SUFFIXES = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_NUMBER_TYPES = frozenset({int, float, type(None)})


@dataclass(frozen=True, eq=False)
class Column:
    """One column as read. `raw[i]` is the value of row i (None = missing)."""

    raw: list[Any]
    numbers: FloatArray | None  # set when every present value is a finite non-bool number

    def __len__(self) -> int:
        return len(self.raw)

    def take(self, mask: BoolArray) -> Column:
        """The rows where `mask` is true."""
        numbers = None if self.numbers is None else self.numbers[mask]
        return Column(list(compress(self.raw, mask)), numbers)


@dataclass(frozen=True, eq=False)
class Table:
    """Columns of one batch file. `models` holds each event's `model` (event files only)."""

    source: str
    rows: int
    columns: dict[str, Column]
    models: list[Any] | None = None

    def take(self, mask: BoolArray) -> Table:
        """The rows where `mask` is true."""
        columns = {name: col.take(mask) for name, col in self.columns.items()}
        models = None if self.models is None else list(compress(self.models, mask))
        return Table(self.source, int(mask.sum()), columns, models)


def column_from_values(values: Iterable[Any]) -> Column:
    """A column from Python values (None = missing), e.g. decoded JSON."""
    raw = values if isinstance(values, list) else list(values)
    return Column(raw, _numbers_of(raw))


def _numbers_of(raw: list[Any]) -> FloatArray | None:
    """float64 view when every present value is a finite int/float (not bool), else None.

    A float NaN (only possible from Python callers; JSON has none) counts as missing.
    """
    if not set(map(type, raw)) <= _NUMBER_TYPES:
        return None
    try:
        numbers = np.array(raw, dtype=np.float64)  # None -> NaN
    except (OverflowError, ValueError, TypeError):  # an int beyond float64
        return None
    if np.isinf(numbers).any():
        return None
    return numbers


def _text_column(cells: Sequence[str]) -> Column:
    """A CSV column: empty cell = missing; numeric when every other cell is a finite float."""
    n_empty = cells.count("")
    raw: list[Any] = [cell or None for cell in cells] if n_empty else list(cells)
    numbers: FloatArray | None = None
    if n_empty < len(cells):
        source = [cell or "nan" for cell in cells] if n_empty else cells
        try:
            parsed = np.fromiter(map(float, source), dtype=np.float64, count=len(cells))
        except ValueError:
            parsed = None
        if parsed is not None:
            filled = np.fromiter(map(operator.truth, cells), dtype=bool, count=len(cells))
            present = parsed[filled] if n_empty else parsed
            if np.isfinite(present).all():
                numbers = parsed
    return Column(raw, numbers)


def detect_format(path: Path) -> str:
    """csv, jsonl or parquet from the file name (InputError for an unknown suffix)."""
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(_SUFFIXES))
        raise InputError(f"{path}: unknown input format (file name must end in one of {known})")
    return fmt


def read_table(path: Path | str, fmt: str | None = None) -> Table:
    """Read a CSV, JSON Lines or Parquet file into columns (format from the suffix)."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown input format {fmt!r} (expected one of {', '.join(FORMATS)})")
    if not path.exists():
        raise InputError(f"input file {path} does not exist")
    with _gc_paused():
        if fmt == "parquet":
            table = _read_parquet(path)
        else:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read input file {path}: {exc.strerror}") from None
            table = _read_csv(path, data) if fmt == "csv" else _read_jsonl(path, data)
    if table.rows == 0:
        raise InputError(f"input file {path} has no rows")
    return table


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Millions of new, acyclic objects make the cyclic GC rescan the heap over and
    over (3x slower reads); they hold no cycles, so pause it while reading."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_csv(path: Path, data: bytes) -> Table:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise InputError(f"{path}: not valid CSV: {exc}") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise InputError(f"input file {path} is empty (a CSV file needs a header row)")
    header, body = rows[0], [row for row in rows[1:] if row]
    names = [name.strip() for name in header]
    if len(set(names)) != len(names) or "" in names:
        raise InputError(f"{path} line 1: column names must be unique and non-empty")
    widths = set(map(len, body))
    if widths - {len(names)}:
        bad = next(i for i, row in enumerate(rows[1:], start=2) if row and len(row) != len(names))
        raise InputError(
            f"{path} line {bad}: expected {len(names)} fields, found {len(rows[bad - 1])}"
        )
    cells = list(zip(*body, strict=True)) if body else [() for _ in names]
    columns = {name: _text_column(col) for name, col in zip(names, cells, strict=True)}
    return Table(str(path), len(body), columns)


def _read_jsonl(path: Path, data: bytes) -> Table:
    lines = data.split(b"\n")
    kept = [line for line in lines if line.strip()]
    if not kept:
        raise InputError(f"input file {path} is empty")
    try:  # one decode call for the whole file; per line only to locate an error
        records = msgspec.json.decode(b"[" + b",".join(kept) + b"]")
    except msgspec.DecodeError:
        _raise_bad_line(path, lines)
        raise  # unreachable: _raise_bad_line always raises
    if not all(type(record) is dict for record in records):
        index = next(i for i, rec in enumerate(records) if type(rec) is not dict)
        raise InputError(f"{path} line {_line_number(lines, index)}: expected a JSON object")
    if isinstance(records[0].get("features"), dict):
        return _events_table(path, lines, records)
    return _flat_table(path, records)


def _raise_bad_line(path: Path, lines: list[bytes]) -> None:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            raise InputError(f"{path} line {number}: not valid JSON ({exc})") from None
    raise InputError(f"{path}: not valid JSON Lines")


def _line_number(lines: list[bytes], record_index: int) -> int:
    seen = -1
    for number, line in enumerate(lines, start=1):
        if line.strip():
            seen += 1
            if seen == record_index:
                return number
    return len(lines)


def _flat_table(path: Path, records: list[dict[str, Any]]) -> Table:
    names = sorted(set().union(*records))
    columns = {name: column_from_values(_pluck(records, name)) for name in names}
    return Table(str(path), len(records), columns)


def _events_table(path: Path, lines: list[bytes], records: list[dict[str, Any]]) -> Table:
    features: list[Any] = [rec.get("features") for rec in records]
    if not all(type(item) is dict for item in features):
        index = next(i for i, item in enumerate(features) if type(item) is not dict)
        raise InputError(
            f"{path} line {_line_number(lines, index)}: event has no 'features' object"
        )
    names = sorted(set().union(*features))
    columns = {name: column_from_values(_pluck(features, name)) for name in names}
    for key, name in (("prediction", PREDICTION), ("latency_ms", LATENCY)):
        values = _pluck(records, key)
        if values.count(None) < len(values):
            columns[name] = column_from_values(values)
    models = _pluck(records, "model")
    return Table(str(path), len(records), columns, models)


def _pluck(records: list[dict[str, Any]], key: str) -> list[Any]:
    """records[i].get(key) for every i, without a Python-level loop."""
    return list(map(dict.get, records, repeat(key)))


def _read_parquet(path: Path) -> Table:
    try:
        import pyarrow as pa  # noqa: PLC0415 - optional extra, imported only for Parquet
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError:
        raise InputError("reading Parquet needs pyarrow: pip install 'driftmon[parquet]'") from None
    try:
        arrow = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read Parquet file {path}: {_first_line(exc)}") from None
    columns: dict[str, Column] = {}
    for name, chunked in zip(arrow.column_names, arrow.columns, strict=True):
        kind = chunked.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            as_float = chunked.cast(pa.float64(), safe=False)
            numbers = np.asarray(as_float.to_numpy(zero_copy_only=False), dtype=np.float64)
            missing = np.isnan(numbers)  # null or NaN
            raw = [None if gone else x for x, gone in zip(numbers.tolist(), missing, strict=True)]
            finite = bool(np.isfinite(numbers[~missing]).all())
            columns[name] = Column(raw, numbers if finite else None)
        else:
            columns[name] = column_from_values(chunked.to_pylist())
    return Table(str(path), arrow.num_rows, columns)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
