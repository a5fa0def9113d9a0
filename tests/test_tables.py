"""Batch readers: CSV, JSON Lines (events and flat rows) and Parquet into columns."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor.errors import InputError
from monitor.tables import PREDICTION, column_from_values, read_table


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_types_and_missing(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "in.csv",
        'amount,country,flag,code\n1.5,DE,true,7\n,"FR, Paris",false,\n-2e3,,true,x\n',
    )
    table = read_table(path)
    assert table.rows == 3
    assert table.models is None
    amount = table.columns["amount"]
    assert amount.numbers is not None
    np.testing.assert_array_equal(amount.numbers, [1.5, np.nan, -2000.0])
    assert amount.raw == ["1.5", None, "-2e3"]
    assert table.columns["country"].numbers is None
    assert table.columns["country"].raw == ["DE", "FR, Paris", None]
    assert table.columns["flag"].numbers is None
    assert table.columns["code"].numbers is None  # "x" is not a number
    assert table.columns["code"].raw == ["7", None, "x"]


def test_csv_non_finite_cell_makes_column_text(tmp_path: Path) -> None:
    table = read_table(_write(tmp_path / "in.csv", "a\n1\ninf\n"))
    assert table.columns["a"].numbers is None


def test_csv_ragged_row_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "in.csv", "a,b\n1,2\n3\n4,5\n")
    with pytest.raises(InputError, match=r"line 3: expected 2 fields, found 1"):
        read_table(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "is empty"), ("a,b\n", "has no rows"), ("a,a\n1,2\n", "unique")],
)
def test_csv_empty_or_bad_header(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_table(_write(tmp_path / "in.csv", text))


def test_csv_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"a\n\xff\xfe\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_table(path)


def test_jsonl_events(tmp_path: Path) -> None:
    lines = [
        '{"model": "fraud", "features": {"amount": 12.5, "country": "DE", "age": null},'
        ' "prediction": 0.83, "latency_ms": 12.3}',
        "",
        '{"model": "fraud", "features": {"amount": 3, "country": 7}, "prediction": 0.1}',
        '{"model": "other", "features": {"amount": 1.0, "country": true, "extra": [1]}}',
    ]
    table = read_table(_write(tmp_path / "in.jsonl", "\n".join(lines) + "\n"))
    assert table.rows == 3
    assert table.models is not None
    assert table.models == ["fraud", "fraud", "other"]
    assert set(table.columns) == {"amount", "country", "age", "extra", PREDICTION, "latency_ms"}
    amount = table.columns["amount"].numbers
    assert amount is not None
    np.testing.assert_array_equal(amount, [12.5, 3.0, 1.0])
    assert table.columns["country"].raw == ["DE", 7, True]
    assert table.columns["age"].raw == [None, None, None]
    assert table.columns["extra"].raw == [None, None, [1]]
    prediction = table.columns[PREDICTION].numbers
    assert prediction is not None
    np.testing.assert_array_equal(prediction, [0.83, 0.1, np.nan])


def test_jsonl_flat_rows(tmp_path: Path) -> None:
    text = '{"a": 1, "b": "x"}\n{"a": 2.5, "c": false}\n'
    table = read_table(_write(tmp_path / "in.ndjson", text))
    assert table.rows == 2
    assert table.models is None
    a = table.columns["a"].numbers
    assert a is not None
    np.testing.assert_array_equal(a, [1.0, 2.5])
    assert table.columns["b"].raw == ["x", None]
    assert table.columns["c"].numbers is None  # booleans are not numbers


def test_jsonl_bad_line_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "in.jsonl", '{"a": 1}\n\n{"a": 2\n{"a": 3}\n')
    with pytest.raises(InputError, match=r"line 3: not valid JSON") as info:
        read_table(path)
    assert "\n" not in str(info.value)


def test_jsonl_non_object_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"line 2: expected a JSON object"):
        read_table(_write(tmp_path / "in.jsonl", '{"a": 1}\n[1, 2]\n'))


def test_jsonl_event_without_features(tmp_path: Path) -> None:
    text = '{"model": "m", "features": {"a": 1}}\n{"model": "m", "features": 3}\n'
    with pytest.raises(InputError, match=r"line 2: event has no 'features' object"):
        read_table(_write(tmp_path / "in.jsonl", text))


def test_jsonl_blank_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty"):
        read_table(_write(tmp_path / "in.jsonl", "\n  \n"))


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(
        pa.table(
            {
                "x": pa.array([1.0, None, float("nan"), 4.0]),
                "n": pa.array([1, 2, None, 4], type=pa.int64()),
                "s": pa.array(["a", None, "b", "a"]),
                "flag": pa.array([True, False, None, True]),
                "bad": pa.array([1.0, float("inf"), 2.0, 3.0]),
            }
        ),
        path,
    )
    table = read_table(path)
    assert table.rows == 4
    x = table.columns["x"]
    assert x.numbers is not None
    np.testing.assert_array_equal(x.numbers, [1.0, np.nan, np.nan, 4.0])
    assert x.raw == [1.0, None, None, 4.0]
    n = table.columns["n"].numbers
    assert n is not None
    np.testing.assert_array_equal(n, [1.0, 2.0, np.nan, 4.0])
    assert table.columns["s"].raw == ["a", None, "b", "a"]
    assert table.columns["flag"].numbers is None
    assert table.columns["bad"].numbers is None  # inf: invalid for a numeric feature later
    assert math.isinf(table.columns["bad"].raw[1])


def test_parquet_without_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"x": [1.0]}), path)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(InputError, match=r"needs pyarrow: pip install 'driftmon\[parquet\]'"):
        read_table(path)


def test_parquet_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="cannot read Parquet file"):
        read_table(path)


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="unknown input format"):
        read_table(_write(tmp_path / "in.txt", "a\n1\n"))


def test_directory_is_unreadable(tmp_path: Path) -> None:
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    with pytest.raises(InputError, match="cannot read input file"):
        read_table(folder)


def test_column_from_values_numeric_rules() -> None:
    assert column_from_values([1, 2.5, None]).numbers is not None
    assert column_from_values([1, True]).numbers is None
    assert column_from_values([1, "2"]).numbers is None
    assert column_from_values([1.0, math.inf]).numbers is None
    assert column_from_values([10**400]).numbers is None
    nested = column_from_values([[1, 2], [3, 4]])
    assert len(nested.raw) == 2
