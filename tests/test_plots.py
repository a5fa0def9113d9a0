"""`driftmon compare --plot DIR` and `monitor.plots`: which features get a PNG, that the
PNGs are real images, that stdout stays JSON, and the one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pytest
from PIL import Image

from monitor.cli import main
from monitor.plots import bin_labels, plot_filename, write_overlays

DRIFTMON = Path(sys.executable).parent / "driftmon"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WEIRD = "device ($x$ / 温度)"  # mathtext, a path separator and glyphs DejaVu Sans lacks
SHIFTED = {"amount", WEIRD}
STEADY = {"age", "country"}


def _write_csv(path: Path, rng: np.random.Generator, n: int, *, shift: bool) -> None:
    amount = rng.normal(10.0 + (3.0 if shift else 0.0), 2.0, n)
    age = rng.normal(40.0, 8.0, n)
    country = rng.choice(["DE", "FR", "US"], n, p=[0.5, 0.3, 0.2])
    device = rng.choice(
        ["ios", "android", "web"], n, p=[0.1, 0.2, 0.7] if shift else [0.5, 0.3, 0.2]
    )
    header = ",".join(["amount", "age", "country", f'"{WEIRD}"'])
    rows = (
        f"{a:.4f},{b:.4f},{c},{d}" for a, b, c, d in zip(amount, age, country, device, strict=True)
    )
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("DRIFTMON_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DRIFTMON_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(7)
    _write_csv(tmp_path / "ref.csv", rng, 5000, shift=False)
    _write_csv(tmp_path / "cur.csv", rng, 5000, shift=True)
    _write_csv(tmp_path / "same.csv", rng, 5000, shift=False)
    build = ["baseline", "build", "--model", "m", "--input", "ref.csv", "--output", "b.json"]
    assert main(build) == 0
    return tmp_path


def _compare(*extra: str) -> list[str]:
    return ["compare", "--baseline", "b.json", "--input", "cur.csv", *extra]


def _check_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert 500 <= width <= 2500
    assert 300 <= height <= 800


def test_console_script_plots_drifted_features_and_keeps_json_stdout(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTMON_")}
    env["MPLCONFIGDIR"] = str(workdir / "mplconfig")  # font cache out of $HOME
    plots = workdir / "out" / "plots"  # missing parents are created
    result = subprocess.run(
        [str(DRIFTMON), *_compare("--plot", str(plots), "--format", "json")],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # the paths went to stderr, not here
    severities = {name: f["severity"] for name, f in report["features"].items()}
    assert {severities[n] for n in SHIFTED} <= {"warning", "critical"}
    assert {severities[n] for n in STEADY} <= {"ok", "info"}

    expected = {plots / plot_filename(n) for n in SHIFTED}
    assert set(plots.iterdir()) == expected
    for path in expected:
        _check_png(path)
    printed = {Path(line.removeprefix("plot: ")) for line in result.stderr.splitlines()}
    assert printed == expected


def test_table_format_prints_paths_on_stdout_and_gate_is_unchanged(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_compare("--plot", "plots", "--fail-on", "warning")) == 1
    out, err = capsys.readouterr()
    assert "gate failed" in err
    written = sorted(Path("plots").iterdir())
    assert len(written) == len(SHIFTED)
    assert all(f"plot: {path}" in out for path in written)

    assert main(_compare("--plot", "plots", "--fail-on", "critical")) in {0, 1}
    assert main(_compare("--fail-on", "warning")) == 1  # same verdict without --plot


def test_no_drift_writes_nothing(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["compare", "--baseline", "b.json", "--input", "same.csv", "--format", "json"]
    assert main([*args, "--plot", "quiet"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["severity"] in {"ok", "info"}
    assert "nothing written" in err
    assert list((workdir / "quiet").iterdir()) == []


def test_unwritable_directory_is_one_line_exit_2(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "taken").write_text("a file, not a directory", encoding="utf-8")
    assert main(_compare("--plot", "taken/plots")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("driftmon: error: --plot taken/plots: cannot create directory")


def test_missing_matplotlib_is_one_line_exit_2(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delitem(sys.modules, "monitor.plots")
    for name in [m for m in sys.modules if m.partition(".")[0] == "matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # importing now fails as if absent
    assert main(_compare("--plot", "plots")) == 2
    assert capsys.readouterr().err == (
        "driftmon: error: --plot needs matplotlib: pip install 'driftmon[plot]'\n"
    )
    assert not (workdir / "plots").exists()


# --- monitor.plots directly ------------------------------------------------------------------


def _report(severity: str) -> dict[str, Any]:
    return {
        "model": "m",
        "baseline_id": "b-1",
        "features": {
            "x": {
                "type": "numeric",
                "edges": [5.6123, 8.7, 11.96],
                "reference_counts": [10, 20, 30, 40],
                "current_counts": [0, 0, 0, 0],  # nothing binned: zero proportions
                "psi": None,
                "js_distance": 0.25,
                "severity": severity,
                "enough_samples": False,
            }
        },
    }


def test_write_overlays_threshold_and_no_global_state(tmp_path: Path) -> None:
    params = dict(mpl.rcParams)
    assert write_overlays(_report("info"), tmp_path / "none") == []
    assert not (tmp_path / "none").exists()
    assert write_overlays(_report("info"), tmp_path / "low", min_severity="info") == [
        tmp_path / "low" / plot_filename("x")
    ]
    (path,) = write_overlays(_report("critical"), tmp_path / "high")
    _check_png(path)
    assert dict(mpl.rcParams) == params
    with pytest.raises(ValueError, match="min_severity"):
        write_overlays(_report("critical"), tmp_path, min_severity="bad")  # type: ignore[arg-type]


def test_bin_labels() -> None:
    numeric = {"type": "numeric", "edges": [5.6123, 8.7, 11.96]}
    assert bin_labels(numeric) == ["≤ 5.612", "(5.612, 8.7]", "(8.7, 11.96]", "> 11.96"]
    assert bin_labels({"type": "numeric", "edges": []}) == ["all values"]
    categorical = {"type": "categorical", "categories": ["DE", "FR", "__other__"]}
    assert bin_labels(categorical) == ["DE", "FR", "__other__"]


def test_plot_filenames_are_safe_and_distinct() -> None:
    names = ["a b", "a/b", "a\\b", "温度", "湿度", "..", "", "-x-", "x" * 300, "CON", WEIRD]
    files = [plot_filename(n) for n in names]
    assert len(set(files)) == len(names)
    for file in files:
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,47}-[0-9a-f]{8}\.png", file), file
    assert plot_filename("amount").startswith("amount-")
    assert plot_filename("amount") == plot_filename("amount")
