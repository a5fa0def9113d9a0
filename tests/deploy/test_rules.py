"""Alerts about driftmon itself: valid for promtool, identical in the chart's PrometheusRule
and the plain rule file, firing on the documented conditions, linked to their runbooks."""

from __future__ import annotations

import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.deploy.promql import RULES_FILE, RUNBOOKS, promtool, rule_groups
from tests.deploy.render import CHART, render

ALERTS = {
    "DriftmonDown",
    "DriftmonConsumerLag",
    "DriftmonMessagesLost",
    "DriftmonInvalidEventRate",
    "DriftmonNotificationFailures",
}
RUNBOOK_BASE = "https://example.org/driftmon/docs/runbooks/"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, check=False, timeout=60
    )


def test_promtool_checks_the_rule_file() -> None:
    proc = _run("check", "rules", str(RULES_FILE))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_chart_prometheus_rule_equals_the_rule_file() -> None:
    docs = render(CHART, {"prometheusRule": {"enabled": True}})
    rule = next(doc for doc in docs if doc["kind"] == "PrometheusRule")
    assert rule["spec"]["groups"] == rule_groups()


def test_chart_rules_follow_their_values() -> None:
    values = {
        "prometheusRule": {
            "enabled": True,
            "runbookBaseUrl": "https://wiki.example.org/rb/",
            "consumerLag": {"threshold": 5000000, "for": "30m"},
            "messagesLost": {"window": "1h"},
        }
    }
    docs = render(CHART, values)
    rules = next(doc for doc in docs if doc["kind"] == "PrometheusRule")["spec"]["groups"][0][
        "rules"
    ]
    lag = next(r for r in rules if r["alert"] == "DriftmonConsumerLag")
    assert lag["expr"].endswith("> 5000000") and lag["for"] == "30m"
    lost = next(r for r in rules if r["alert"] == "DriftmonMessagesLost")
    assert "[1h]" in lost["expr"]
    assert all(
        r["annotations"]["runbook_url"].startswith("https://wiki.example.org/rb/") for r in rules
    )


def test_every_alert_links_its_runbook_and_the_runbook_shows_the_rule() -> None:
    rules = [rule for group in rule_groups() for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} == ALERTS
    for rule in rules:
        name = rule["alert"]
        assert rule["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}{name}.md"
        assert rule["labels"]["service"] == "driftmon"
        runbook = (RUNBOOKS / f"{name}.md").read_text(encoding="utf-8")
        detect = runbook.split("## Detect", 1)[1].split("\n## ", 1)[0]
        assert _squash(rule["expr"]) in _squash(detect), f"{name}.md Detect lacks {rule['expr']!r}"


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


UNIT_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{{job="driftmon", instance="a:9475"}}'
        values: '0x10'
      - series: 'driftmon_consumer_lag_messages{{instance="a", topic="t", partition="0"}}'
        values: '200000x20'
      - series: 'driftmon_consumer_lag_messages{{instance="b", topic="t", partition="0"}}'
        values: '200000x20'
      - series: 'driftmon_messages_lost_total{{instance="a", topic="t", partition="0"}}'
        values: '0x5 1200x20'
      - series: 'driftmon_messages_lost_total{{instance="a", topic="t", partition="1"}}'
        values: '0x5 300x20'
      - series: 'driftmon_events_total{{job="driftmon", model="fraud"}}'
        values: '0+600x20'
      - series: 'driftmon_events_invalid_total{{job="driftmon", reason="bad_json"}}'
        values: '0+60x20'
      - series: 'driftmon_notifications_total{{sink="alertmanager", outcome="retry"}}'
        values: '0+1x20'
      - series: 'driftmon_notifications_total{{sink="webhook", outcome="filtered"}}'
        values: '0+5x20'
    alert_rule_test:
      - eval_time: 6m
        alertname: DriftmonDown
        exp_alerts:
          - exp_labels: {{severity: critical, service: driftmon, job: driftmon, instance: "a:9475"}}
            exp_annotations:
              summary: driftmon is down or not scraped
              description: >-
                Prometheus has not scraped driftmon target a:9475 for 5m: while this lasts
                no model is monitored by it and no drift alert comes from it.
              runbook_url: {base}DriftmonDown.md
      - eval_time: 15m
        alertname: DriftmonConsumerLag
        exp_alerts:
          - exp_labels: {{severity: warning, service: driftmon, topic: t}}
            exp_annotations:
              summary: driftmon is 200k messages behind on t
              description: >-
                The driftmon consumer group has been more than 100000 messages behind
                the high watermark of topic t for 10m: drift is detected late.
              runbook_url: {base}DriftmonConsumerLag.md
      - eval_time: 5m
        alertname: DriftmonConsumerLag
        exp_alerts: []
      - eval_time: 4m
        alertname: DriftmonMessagesLost
        exp_alerts: []
      - eval_time: 8m
        alertname: DriftmonMessagesLost
        exp_alerts:
          - exp_labels: {{severity: warning, service: driftmon, topic: t}}
            exp_annotations:
              summary: Kafka deleted 1.5k messages on t before driftmon read them
              description: >-
                driftmon fell behind topic t by more than its retention: the broker
                deleted messages before they were read, so their events are missing
                from the windows. driftmon resumed at the earliest retained message.
              runbook_url: {base}DriftmonMessagesLost.md
      - eval_time: 25m
        alertname: DriftmonMessagesLost
        exp_alerts: []
      - eval_time: 19m
        alertname: DriftmonNotificationFailures
        exp_alerts:
          - exp_labels:
              {{severity: warning, service: driftmon, failure: retrying, sink: alertmanager}}
            exp_annotations:
              summary: driftmon keeps failing to deliver to sink alertmanager
              description: >-
                Deliveries to alertmanager have failed and been retried for 15m;
                notifications wait in the Redis queue and reach people late.
              runbook_url: {base}DriftmonNotificationFailures.md
"""


def test_alerts_fire_on_the_documented_conditions(tmp_path: Path) -> None:
    """promtool unit tests: down fires, lag dedups replicas (200k, not 400k), retries alert,
    filtered notifications do not; 9% invalid events (60 of 660 a minute) alert."""
    tests = tmp_path / "tests.yaml"
    tests.write_text(textwrap.dedent(UNIT_TESTS).format(rules=RULES_FILE, base=RUNBOOK_BASE))
    invalid = """
      - eval_time: 15m
        alertname: DriftmonInvalidEventRate
        exp_alerts:
          - exp_labels: {severity: warning, service: driftmon}
            exp_annotations:
              summary: '9.091% of the messages driftmon reads are invalid'
              description: >-
                The share of invalid messages (bad JSON, unknown model, wrong shapes) has
                been above 0.05 for 10m; see driftmon_events_invalid_total by reason.
              runbook_url: https://example.org/driftmon/docs/runbooks/DriftmonInvalidEventRate.md
"""
    tests.write_text(tests.read_text() + invalid)
    proc = _run("test", "rules", str(tests))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("alertname", sorted(ALERTS))
def test_runbook_points_at_the_rule_file(alertname: str) -> None:
    text = (RUNBOOKS / f"{alertname}.md").read_text(encoding="utf-8")
    assert "deploy/prometheus/driftmon-rules.yaml" in text
