"""Render Helm charts offline: the `helm` binary when on PATH, else the helm SDK wheel.

Both paths validate values against values.schema.json while rendering; a schema
violation raises `ValuesRejected`. No renderer at all is a test failure, not a skip
(`pip install -e '.[dev]'` brings the SDK).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "driftmon"
HOST_CHART = CHART / "examples" / "model-server"
SIDECAR_VALUES = CHART / "examples" / "sidecar-values.yaml"

Manifest = dict[str, Any]


class ValuesRejected(Exception):
    """The chart refused the values (schema or template `fail`)."""


def renderer() -> str:
    """'helm' (binary) or 'sdk'; fails the test when neither is installed."""
    if shutil.which("helm"):
        return "helm"
    try:
        import helm_python  # noqa: F401, PLC0415 - optional: only needed without the binary
    except ImportError:
        pytest.fail("no Helm renderer: install the helm binary or `pip install helm-python-sdk`")
    return "sdk"


def render(
    chart: Path,
    values: dict[str, Any] | None = None,
    *,
    name: str = "driftmon",
    ns: str = "monitoring",
) -> list[Manifest]:
    """The chart's manifests (NOTES.txt excluded), parsed."""
    texts = (
        _render_helm(chart, values, name, ns)
        if renderer() == "helm"
        else _render_sdk(chart, values, name, ns)
    )
    docs: list[Manifest] = []
    for text in texts:
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def _render_sdk(chart: Path, values: dict[str, Any] | None, name: str, ns: str) -> list[str]:
    import helm_python as helm  # noqa: PLC0415 - see renderer()

    with helm.Chart.load(str(chart)) as loaded:
        try:
            out = loaded.render(values or {}, name=name, namespace=ns, is_install=True)
        except (helm.HelmValuesError, helm.HelmRenderError) as exc:
            raise ValuesRejected(str(exc)) from exc
    return [text for path, text in sorted(out.items()) if not path.endswith("NOTES.txt")]


def _render_helm(chart: Path, values: dict[str, Any] | None, name: str, ns: str) -> list[str]:
    cmd = ["helm", "template", name, str(chart), "--namespace", ns, "--values", "-"]
    proc = subprocess.run(
        cmd, input=json.dumps(values or {}), capture_output=True, text=True, check=False, timeout=60
    )
    if proc.returncode != 0:
        raise ValuesRejected(proc.stderr)
    return [proc.stdout]


def host_chart(tmp: Path) -> Path:
    """The example host chart with driftmon vendored into charts/ (what `helm dep build` does)."""
    host = tmp / "model-server"
    shutil.copytree(HOST_CHART, host)
    shutil.copytree(CHART, host / "charts" / "driftmon", ignore=shutil.ignore_patterns("examples"))
    return host


def sidecar_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(SIDECAR_VALUES.read_text(encoding="utf-8"))
    return values


def lint(chart: Path, values: dict[str, Any] | None = None) -> list[str]:
    """`helm lint --strict` findings of warning level and above (info, like 'icon is
    recommended', is ignored)."""
    if renderer() == "helm":
        proc = subprocess.run(
            ["helm", "lint", "--strict", str(chart), "--values", "-"],
            input=json.dumps(values or {}),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        return [] if proc.returncode == 0 else [proc.stdout + proc.stderr]
    import helm_python as helm  # noqa: PLC0415 - see renderer()

    report = helm.lint(str(chart), values, strict=True)
    problems = [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]
    return problems + list(report.get("errors") or [])
