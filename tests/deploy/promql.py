"""What the deploy artefacts query: PromQL expressions of the rules and the dashboard."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.render import REPO

RULES_FILE = REPO / "deploy" / "prometheus" / "driftmon-rules.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "driftmon.json"
RUNBOOKS = REPO / "docs" / "runbooks"

METRIC = re.compile(r"\bdriftmon_[a-z0-9_]+\b")
# Dashboard variables replaced by sample values so promtool can parse the expressions.
VARIABLES = {"$model": "fraud", "$window": "15m"}


def promtool() -> str:
    """The promtool binary; missing is a failure (CI installs Debian's `prometheus`)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: apt-get install prometheus (see .ci/run)")
    return path


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    return groups


def rule_exprs() -> list[str]:
    return [rule["expr"] for group in rule_groups() for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def dashboard_exprs() -> list[str]:
    """Every target expression of every panel (rows included), with variables filled in."""
    exprs = []
    panels = list(dashboard()["panels"])
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))
        exprs.extend(target["expr"] for target in panel.get("targets", []))
    return [_fill(expr) for expr in exprs]


def dashboard_variable_queries() -> list[str]:
    return [v["query"]["query"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]


def metric_names(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in METRIC.findall(expr)}


def _fill(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def as_recording_rules(exprs: list[str], path: Path) -> Path:
    """A rule file recording each expression: `promtool check rules` then parses them all."""
    rules = [{"record": f"driftmon_dashboard:expr{i}", "expr": e} for i, e in enumerate(exprs)]
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return path
