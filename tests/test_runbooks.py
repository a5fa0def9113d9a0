"""Runbooks (docs/runbooks): one per alert, the six sections, only SPEC §6 metric names.

Every alert driftmon raises links to `<runbook_base_url>/<alertname>.md` (SPEC §5), and
the PrometheusRule of the Helm chart adds self-monitoring alerts that link the same way.
A runbook that is missing, lacks a section, or tells on-call to query a metric that does
not exist is a broken link at the worst possible moment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.alerts.model import ALERT_NAMES, runbook_url

RUNBOOKS = Path(__file__).resolve().parent.parent / "docs" / "runbooks"

SELF_MONITORING_ALERTS = (
    "DriftmonDown",
    "DriftmonConsumerLag",
    "DriftmonMessagesLost",
    "DriftmonInvalidEventRate",
    "DriftmonNotificationFailures",
)
ALL_ALERTS = (*ALERT_NAMES, *SELF_MONITORING_ALERTS)

SECTIONS = ("Detect", "Triage", "Contain", "Diagnose", "Fix / resolve", "Follow-up")

_HISTOGRAM_SERIES = ("", "_bucket", "_sum", "_count")

# SPEC §6 and driftmon's additions, as exposed: counters with the `_total` suffix,
# histograms with their series.
SPEC_METRICS = frozenset(
    {
        "driftmon_feature_psi",
        "driftmon_feature_js_distance",
        "driftmon_feature_js_divergence",  # SPEC §3: "Both are exported"
        "driftmon_feature_missing_ratio",
        "driftmon_feature_out_of_range_ratio",
        "driftmon_feature_unseen_ratio",
        "driftmon_latency_seconds",
        "driftmon_window_events",
        "driftmon_drift_severity",
        "driftmon_events_total",
        "driftmon_events_invalid_total",
        "driftmon_events_late_total",
        "driftmon_alerts_firing",
        "driftmon_notifications_total",
        "driftmon_consumer_lag_messages",
        "driftmon_build_info",
        "driftmon_messages_lost_total",  # driftmon's own addition, in the README's table
        *(f"driftmon_flush_duration_seconds{s}" for s in _HISTOGRAM_SERIES),
        *(f"driftmon_evaluation_duration_seconds{s}" for s in _HISTOGRAM_SERIES),
    }
)

METRIC_NAME = re.compile(r"driftmon_[a-z_]+")
PLACEHOLDER = re.compile(r"\bTODO\b|\bTBD\b|\bFIXME\b|\bXXX\b|<[a-z_]+>")


def _runbook(alertname: str) -> Path:
    return RUNBOOKS / f"{alertname}.md"


def _headings(text: str) -> list[str]:
    return [line[3:].strip() for line in text.splitlines() if line.startswith("## ")]


@pytest.mark.parametrize("alertname", ALL_ALERTS)
def test_runbook_exists_with_all_sections(alertname: str) -> None:
    path = _runbook(alertname)
    assert path.is_file(), f"missing runbook {path}"
    text = path.read_text(encoding="utf-8")
    assert text.startswith(f"# {alertname}\n")
    headings = _headings(text)
    missing = [section for section in SECTIONS if section not in headings]
    assert not missing, f"{path.name} lacks sections {missing}"
    order = [headings.index(section) for section in SECTIONS]
    assert order == sorted(order), f"{path.name}: sections out of order"


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_runbook_url_names_an_existing_file(alertname: str) -> None:
    url = runbook_url("https://example.org/driftmon/docs/runbooks/", alertname)
    assert (RUNBOOKS / url.rsplit("/", 1)[1]).is_file()


@pytest.mark.parametrize("alertname", ALL_ALERTS)
def test_runbook_has_no_placeholders(alertname: str) -> None:
    text = _runbook(alertname).read_text(encoding="utf-8")
    found = sorted(set(PLACEHOLDER.findall(text)))
    assert not found, f"{alertname}.md has placeholders {found}"


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_runbook_has_the_triage_commands(alertname: str) -> None:
    text = _runbook(alertname).read_text(encoding="utf-8")
    assert "driftmon status --model " in text
    assert "--json" in text
    assert "redis-cli XREVRANGE 'driftmon:alerts:log' + - COUNT 20" in text
    assert "amtool " in text and "silence add" in text


def test_redis_keys_with_hash_tags_are_quoted() -> None:
    """Unquoted `{model}` braces are mangled by some shells (zsh, fish) and by copy-paste."""
    for path in sorted(RUNBOOKS.glob("*.md")):
        for line in path.read_text(encoding="utf-8").splitlines():
            for match in re.finditer(r"driftmon:\{[^}]*\}:[a-z]+", line):
                before = line[: match.start()]
                assert before.endswith(("'", '"')), f"{path.name}: unquoted key in {line!r}"


def test_runbooks_name_only_spec_metrics() -> None:
    unknown: dict[str, set[str]] = {}
    for path in sorted(RUNBOOKS.glob("*.md")):
        names = set(METRIC_NAME.findall(path.read_text(encoding="utf-8")))
        if bad := names - SPEC_METRICS:
            unknown[path.name] = bad
    assert not unknown, f"metric names not in SPEC §6: {unknown}"


def test_readme_indexes_every_runbook() -> None:
    readme = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    links = set(re.findall(r"\]\(([^)]+\.md)\)", readme))
    files = {path.name for path in RUNBOOKS.glob("*.md") if path.name != "README.md"}
    assert files == {f"{name}.md" for name in ALL_ALERTS}
    assert files <= links, f"README does not link {sorted(files - links)}"
    assert links <= files, f"README links missing files {sorted(links - files)}"
    for name in ALL_ALERTS:
        row = next((line for line in readme.splitlines() if line.startswith(f"| {name} |")), None)
        assert row is not None, f"README has no index row for {name}"
        assert re.search(r"critical|warning|info|as configured", row), row
