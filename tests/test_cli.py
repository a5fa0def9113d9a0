"""The `driftmon` command: the acceptance scenario through the real console script,
plus in-process checks of every command's exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from scipy.spatial.distance import jensenshannon

from monitor import __version__
from monitor.cli import main

ROOT = Path(__file__).resolve().parents[1]
DRIFTMON = Path(sys.executable).parent / "driftmon"
NUMERIC = ["f0", "f1", "f2", "f3", "f4"]
CATEGORIES = {"c0": ["DE", "FR", "US", "GB", "IT"], "c1": ["ios", "android", "web"]}


def _frame(rng: np.random.Generator, n: int, shift: float) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for j, name in enumerate(NUMERIC):
        columns[name] = rng.normal(10.0 * j, 1.0 + j, n) + (shift * (1.0 + j) if j == 0 else 0)
    columns["c0"] = rng.choice(CATEGORIES["c0"], n, p=[0.4, 0.2, 0.2, 0.1, 0.1])
    columns["c1"] = rng.choice(CATEGORIES["c1"], n, p=[0.5, 0.3, 0.2])
    return columns


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 100 k-row reference and a 1 M-row file with f0 shifted by one sigma."""
    folder = tmp_path_factory.mktemp("acceptance")
    rng = np.random.default_rng(2026)
    ref, cur = _frame(rng, 100_000, 0.0), _frame(rng, 1_000_000, 1.0)
    pacsv.write_csv(pa.table(ref), folder / "reference.csv")
    pacsv.write_csv(pa.table(cur), folder / "current.csv")
    return {"dir": folder, "ref": ref, "cur": cur}


def _expected(ref: dict[str, Any], cur: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per-feature numbers computed here with numpy/scipy from the generated arrays."""
    out: dict[str, dict[str, float]] = {}
    for name in NUMERIC:
        edges = np.unique(np.quantile(ref[name], np.arange(1, 10) / 10))
        r = np.bincount(np.searchsorted(edges, ref[name], side="left"), minlength=10)
        c = np.bincount(np.searchsorted(edges, cur[name], side="left"), minlength=10)
        outside = np.mean((cur[name] < ref[name].min()) | (cur[name] > ref[name].max()))
        out[name] = {**_divergences(r, c), "out_of_range_ratio": float(outside)}
    for name, cats in CATEGORIES.items():
        r = np.array([np.sum(ref[name] == v) for v in cats] + [0])
        c = np.array([np.sum(cur[name] == v) for v in cats] + [0])
        order = np.lexsort((np.array(cats), -r[:-1]))  # top-k: count desc, then name
        r = np.append(r[:-1][order], 0)
        c = np.append(c[:-1][order], 0)
        out[name] = {**_divergences(r, c), "unseen_ratio": 0.0}
    return out


def _divergences(r: np.ndarray, c: np.ndarray) -> dict[str, float]:
    p = (r + 0.5) / (r.sum() + r.size * 0.5)
    q = (c + 0.5) / (c.sum() + c.size * 0.5)
    js = float(jensenshannon(r, c, base=2))
    return {"psi": float(np.sum((q - p) * np.log(q / p))), "js_distance": js}


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTMON_")}
    return subprocess.run(
        [str(DRIFTMON), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_acceptance_compare_one_million_rows(scenario: dict[str, Any]) -> None:
    folder: Path = scenario["dir"]
    built = _run(
        "baseline", "build", "--model", "fraud", "--input", "reference.csv",
        "--output", "baseline.json", cwd=folder,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert "sha256:" in built.stdout
    expected = _expected(scenario["ref"], scenario["cur"])

    table = _run(
        "compare", "--baseline", "baseline.json", "--input", "current.csv",
        "--fail-on", "warning", cwd=folder,
    )  # fmt: skip
    assert table.returncode == 1, table.stderr
    assert table.stderr.strip().splitlines() == [
        "driftmon: gate failed: severity critical reaches warning"
    ]
    rows = {line.split("│")[1].strip(): line for line in table.stdout.splitlines() if "│" in line}
    for name, numbers in expected.items():
        cells = [cell.strip() for cell in rows[name].split("│")[1:-1]]
        assert cells[2] == f"{numbers['psi']:.4f}", name
        assert cells[3] == f"{numbers['js_distance']:.4f}", name
        assert cells[4] == "0.0000", name
        assert cells[7] == ("critical" if name == "f0" else "ok"), name
    assert re.search(r"rows 1000000\s+invalid 0\s+severity critical", table.stdout)

    as_json = _run(
        "compare", "--baseline", "baseline.json", "--input", "current.csv",
        "--format", "json", cwd=folder,
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["rows"] == 1_000_000
    assert report["severity"] == "critical"
    assert report["baseline_id"] == json.loads((folder / "baseline.json").read_text())["id"]
    for name, numbers in expected.items():
        feat = report["features"][name]
        for key, value in numbers.items():
            assert feat[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (name, key)
        assert feat["missing_ratio"] == 0.0
    assert report["features"]["f0"]["psi"] > 0.3
    assert report["features"]["c0"]["categories"][-1] == "__other__"


def test_missing_input_is_one_line_exit_2(scenario: dict[str, Any]) -> None:
    folder: Path = scenario["dir"]
    result = _run(
        "compare", "--baseline", ROOT / "config/baselines/fraud.json", "--input", "nope.csv",
        cwd=folder,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["driftmon: error: input file nope.csv does not exist"]
    assert result.stdout == ""


def test_malformed_input_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "events.jsonl"
    bad.write_text('{"model": "fraud", "features": {"amount": 1}}\n{"model": \n', encoding="utf-8")
    result = _run(
        "compare", "--baseline", ROOT / "config/baselines/fraud.json", "--input", bad,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"driftmon: error: {bad} line 2: not valid JSON")
    assert "Traceback" not in result.stderr


# --- in process --------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("DRIFTMON_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DRIFTMON_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(5)
    n = 2000
    lines = [
        json.dumps(
            {
                "model": "fraud",
                "features": {"amount": float(rng.lognormal(3, 1)), "country": str(c)},
                "prediction": float(rng.random()),
                "latency_ms": float(rng.gamma(2, 5)),
            }
        )
        for c in rng.choice(["DE", "FR", "US"], n)
    ]
    (tmp_path / "ref.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"driftmon {__version__}"


def test_no_command_and_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["compare", "--baseline", "x.json"]) == 2  # --input missing
    assert main(["compare", "--baseline", "b", "--input", "i", "--fail-on", "never"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_build_show_compare_round_trip(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["baseline", "build", "--model", "fraud", "--input", "ref.jsonl", "--output", "b.json"]
    assert main([*args, "--bins", "5", "--top-k", "2"]) == 0
    doc = json.loads((workdir / "b.json").read_text())
    assert set(doc["features"]) == {"amount", "country", "__prediction__"}
    assert len(doc["features"]["amount"]["counts"]) == 5
    assert len(doc["features"]["country"]["categories"]) == 2
    assert doc["latency_ms"] is not None
    capsys.readouterr()

    assert main(["baseline", "show", "b.json"]) == 0
    shown = capsys.readouterr().out
    assert doc["id"] in shown
    assert "amount" in shown
    assert "latency_ms" in shown
    assert main(["baseline", "show", "b.json", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == doc

    assert (
        main(["compare", "--baseline", "b.json", "--input", "ref.jsonl", "--format", "json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["severity"] == "ok"
    assert report["latency_ms"]["current"] == pytest.approx(doc["latency_ms"])
    gate = ["compare", "--baseline", "b.json", "--input", "ref.jsonl", "--fail-on", "info"]
    assert main(gate) == 0


def test_compare_uses_model_rules_from_config(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            ["baseline", "build", "--model", "fraud", "--input", "ref.jsonl", "--output", "b.json"]
        )
        == 0
    )
    shifted = workdir / "shifted.csv"
    rng = np.random.default_rng(9)
    amounts = rng.lognormal(3.3, 1, 3000)
    shifted.write_text("amount,country\n" + "".join(f"{a},DE\n" for a in amounts), encoding="utf-8")
    config = workdir / "strict.yaml"
    config.write_text(
        "models:\n  fraud:\n    baseline: b.json\n    rules:\n"
        "      missing: {info: 2, warning: 2, critical: 2}\n"  # __prediction__ absent: ignore
        "      psi: {info: 100, warning: 100, critical: 100}\n"
        "      js_distance: {info: 100, warning: 100, critical: 100}\n"
        "      out_of_range: {info: 2, warning: 2, critical: 2}\n",
        encoding="utf-8",
    )
    base = ["compare", "--baseline", "b.json", "--input", str(shifted), "--fail-on", "warning"]
    assert main(base) == 1
    capsys.readouterr()
    assert main([*base, "--config", str(config)]) == 0


def test_config_check(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--config", str(ROOT / "config/driftmon.yaml")]) == 2
    assert "models.fraud.baseline" in capsys.readouterr().err  # relative path, other cwd
    (workdir / "ok.yaml").write_text(
        f"models:\n  fraud:\n    baseline: {ROOT / 'config/baselines/fraud.json'}\n",
        encoding="utf-8",
    )
    assert main(["config", "check", "--config", "ok.yaml"]) == 0
    assert "configuration OK: 1 model(s)" in capsys.readouterr().out
    (workdir / "bad.yaml").write_text("http:\n  port: -5\n", encoding="utf-8")
    assert main(["config", "check", "--config", "bad.yaml"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("driftmon: error: invalid setting http.port")


def test_spec_example_config_checks_from_repo_root(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["config", "check", "--config", "config/driftmon.yaml"]) == 0
    assert "model fraud: baseline sha256:" in capsys.readouterr().out


def test_unwritable_output_is_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["baseline", "build", "--model", "fraud", "--input", "ref.jsonl"]
    assert main([*args, "--output", str(workdir / "no-such-dir" / "b.json")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("driftmon: error: cannot write")
    assert "no-such-dir" in err[0]


def test_bad_baseline_is_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "b.json").write_text('{"schema_version": 9}', encoding="utf-8")
    assert main(["compare", "--baseline", "b.json", "--input", "ref.jsonl"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["driftmon: error: baseline b.json: schema_version must be 1, got 9"]


def test_keyboard_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*_: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("monitor.cli.cmd_baseline_show", interrupted)
    assert main(["baseline", "show", "x.json"]) == 130
    assert capsys.readouterr().err.strip() == "driftmon: interrupted"
