"""The Helm chart: renders in both modes, passes `kubernetes-validate --strict`, and its
schema rejects bad values before anything reaches a cluster (SPEC §10)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from monitor.settings import Settings
from tests.deploy.render import (
    CHART,
    Manifest,
    ValuesRejected,
    host_chart,
    lint,
    render,
    sidecar_values,
)

# The chart says kubeVersion >= 1.25; validate against the oldest and newest schemas.
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
# Prometheus Operator CRDs: kubernetes-validate has no schemas for them (it only warns);
# PrometheusRule content is checked with promtool in test_rules.py.
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
SECRET_FILES = {"redis__password", "kafka__sasl_password", "alerting__pagerduty__routing_key"}
ALL_ON = {
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "baselines": {"files": {"fraud.json": '{"schema_version": 1}'}},
    "secrets": {
        "redisPassword": {"existingSecret": "redis", "key": "password"},
        "kafkaSaslPassword": {"existingSecret": "kafka", "key": "password"},
        "pagerdutyRoutingKey": {"existingSecret": "pd", "key": "key"},
    },
}


def validate_strict(docs: list[Manifest]) -> None:
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(
                    f"{doc['kind']}/{doc['metadata']['name']} ({version}): {path}: {exc.message}"
                )


def by_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[Manifest], kind: str) -> Manifest:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def container(pod_spec: dict[str, Any], name: str = "driftmon") -> dict[str, Any]:
    return next(c for c in pod_spec["containers"] if c["name"] == name)


def assert_restricted(pod_spec: dict[str, Any]) -> None:
    """The restricted Pod Security Standard, as far as driftmon's container goes."""
    c = container(pod_spec)
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "/tmp must be writable: an emptyDir"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["NUMBA_CACHE_DIR"].startswith("/tmp/"), "the numba cache must be writable"
    for probe, path in (
        ("startupProbe", "/livez"),
        ("livenessProbe", "/livez"),
        ("readinessProbe", "/readyz"),
    ):
        assert c[probe]["httpGet"]["path"] == path
        assert c[probe]["httpGet"]["port"] == "driftmon-http"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


def rendered_config(docs: list[Manifest]) -> dict[str, Any]:
    config_map = next(d for d in by_kind(docs, "ConfigMap") if "driftmon.yaml" in d["data"])
    config: dict[str, Any] = yaml.safe_load(config_map["data"]["driftmon.yaml"])
    return config


def test_default_values_render_a_valid_standalone_deployment() -> None:
    docs = render(CHART)
    validate_strict(docs)
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"]
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert_restricted(pod)
    c = container(pod)
    assert c["args"] == ["run", "--config", "/etc/driftmon/config/driftmon.yaml"]
    assert c["ports"][0]["containerPort"] == 9475
    service = one(docs, "Service")
    assert service["spec"]["ports"][0]["port"] == 9475
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def test_rendered_config_is_accepted_by_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap's driftmon.yaml is the SPEC §8 shape and, with the secret files the pod
    mounts, passes monitor.settings (the PagerDuty routing key comes only from the file)."""
    for name in SECRET_FILES:
        (tmp_path / name).write_text(f"{name}-value\n", encoding="utf-8")
    monkeypatch.setenv("DRIFTMON_SECRETS_DIR", str(tmp_path))
    for docs in (render(CHART), render(CHART, sidecar_values())):
        settings = Settings(**rendered_config(docs))
        assert settings.http.port == 9475
        assert settings.models
        assert settings.redis.password is not None
        assert settings.redis.password.get_secret_value() == "redis__password-value"
    pagerduty = settings.alerting.pagerduty
    assert pagerduty is not None
    assert pagerduty.routing_key.get_secret_value() == "alerting__pagerduty__routing_key-value"


def test_every_switch_on_renders_valid_manifests_with_secret_files() -> None:
    docs = render(CHART, ALL_ON)
    validate_strict(docs)
    assert {"ServiceMonitor", "PrometheusRule"} <= {doc["kind"] for doc in docs}
    monitor = one(docs, "ServiceMonitor")
    assert (
        monitor["spec"]["endpoints"][0]["port"] == one(docs, "Service")["spec"]["ports"][0]["name"]
    )
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    c = container(pod)
    secrets = next(v for v in pod["volumes"] if v["name"] == "driftmon-secrets")
    paths = {
        item["path"] for src in secrets["projected"]["sources"] for item in src["secret"]["items"]
    }
    assert paths == SECRET_FILES
    assert {m["mountPath"] for m in c["volumeMounts"]} >= {
        "/run/secrets/driftmon",
        "/etc/driftmon/baselines",
    }
    assert not [e for e in c["env"] if "valueFrom" in e]
    baselines = next(d for d in by_kind(docs, "ConfigMap") if "fraud.json" in d["data"])
    assert baselines["metadata"]["name"] == "driftmon-baselines"


def test_secrets_as_env_vars() -> None:
    values = copy.deepcopy(ALL_ON)
    values["secrets"]["mountAs"] = "env"
    docs = render(CHART, values)
    validate_strict(docs)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    env = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(pod)["env"] if "valueFrom" in e
    }
    assert env == {
        "DRIFTMON_REDIS__PASSWORD": {"name": "redis", "key": "password"},
        "DRIFTMON_KAFKA__SASL_PASSWORD": {"name": "kafka", "key": "password"},
        "DRIFTMON_ALERTING__PAGERDUTY__ROUTING_KEY": {"name": "pd", "key": "key"},
    }
    assert not [v for v in pod["volumes"] if v["name"] == "driftmon-secrets"]


def test_sidecar_values_render_shared_pieces_only() -> None:
    docs = render(CHART, sidecar_values(), name="fraud", ns="ml")
    validate_strict(docs)
    assert sorted(doc["kind"] for doc in docs) == ["ConfigMap", "PodMonitor", "PrometheusRule"]
    monitor = one(docs, "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "fraud-model"}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "driftmon-http"


def test_host_chart_includes_the_sidecar(tmp_path: Path) -> None:
    """The documented host-chart usage: `include "driftmon.sidecar"` in a model server's pod."""
    docs = render(host_chart(tmp_path), {"driftmon": sidecar_values()}, name="fraud", ns="ml")
    validate_strict(docs)
    deployment = one(docs, "Deployment")
    assert deployment["metadata"]["name"] == "fraud-fraud-model"
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["model", "driftmon"]
    assert_restricted(pod)
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_map = next(d for d in by_kind(docs, "ConfigMap") if "driftmon.yaml" in d["data"])
    assert volumes["driftmon-config"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert volumes["driftmon-baselines"]["configMap"]["name"] == "fraud-baselines"
    sources = volumes["driftmon-secrets"]["projected"]["sources"]
    assert {item["path"] for s in sources for item in s["secret"]["items"]} == SECRET_FILES
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/driftmon-config" in annotations


@pytest.mark.parametrize("values", [{}, ALL_ON], ids=["defaults", "all-on"])
def test_helm_lint_strict(values: dict[str, Any]) -> None:
    assert lint(CHART, values) == []
    assert lint(CHART, sidecar_values()) == []


BAD_VALUES = {
    "unknown top-level key": {"replicas": 3},
    "bad mode": {"mode": "daemonset"},
    "replicaCount not an integer": {"replicaCount": "two"},
    "port as a string": {"config": {"http": {"port": "9475"}}},
    "topics not a list": {"config": {"kafka": {"topics": "inference-events"}}},
    "unknown config section": {"config": {"kafak": {}}},
    "secret inline in the ConfigMap": {"config": {"redis": {"password": "hunter2"}}},
    "routing key inline": {"config": {"alerting": {"pagerduty": {"routing_key": "abc"}}}},
    "bad secret mount": {"secrets": {"mountAs": "volume"}},
    "bad severity": {
        "config": {"alerting": {"webhooks": [{"url": "http://x", "min_severity": "high"}]}}
    },
    "runbook base URL without slash": {"prometheusRule": {"runbookBaseUrl": "https://x/runbooks"}},
    "bad duration": {"prometheusRule": {"down": {"for": "five minutes"}}},
}


@pytest.mark.parametrize("values", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_rejects_bad_values(values: dict[str, Any]) -> None:
    with pytest.raises(ValuesRejected):
        render(CHART, values)


def test_schema_config_sections_mirror_the_settings_tree() -> None:
    """values.schema.json's `config` knows exactly the sections monitor.settings.Settings has."""
    import json  # noqa: PLC0415

    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    config = schema["properties"]["config"]
    assert config["additionalProperties"] is False
    assert set(config["properties"]) == set(Settings.model_fields)
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert set(values) <= set(schema["properties"])
