"""Settings: the SPEC §8 example, environment overrides, secret files, clear errors."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.logs import configure_logging
from monitor.settings import Rules, load_settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "driftmon.yaml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("DRIFTMON_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DRIFTMON_SECRETS_DIR", str(tmp_path / "no-secrets"))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "driftmon.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_spec_example_loads_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    settings = load_settings(EXAMPLE)
    assert settings.kafka.bootstrap_servers == "localhost:9092"
    assert settings.kafka.topics == ["inference-events"]
    assert settings.kafka.dead_letter_topic is None
    assert settings.redis.key_prefix == "driftmon"
    assert settings.http.port == 9475
    assert settings.windows.size_seconds() == {"15m": 900, "1h": 3600}
    assert settings.evaluation.interval_seconds == 10
    assert settings.alerting.pagerduty is None
    assert settings.models["fraud"].latency_slo_ms == 250
    assert settings.models["fraud"].baseline.is_file()
    assert settings.rules_for("fraud") == Rules()


def test_env_overrides_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTMON_KAFKA__BOOTSTRAP_SERVERS", "kafka-0:9092,kafka-1:9092")
    monkeypatch.setenv("DRIFTMON_HTTP__PORT", "9999")
    settings = load_settings(EXAMPLE)
    assert settings.kafka.bootstrap_servers == "kafka-0:9092,kafka-1:9092"
    assert settings.kafka.group_id == "driftmon"  # the rest of the section still from YAML
    assert settings.http.port == 9999


def test_secret_files_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "redis__password").write_text("s3cret\n", encoding="utf-8")
    monkeypatch.setenv("DRIFTMON_SECRETS_DIR", str(secrets))
    settings = load_settings(EXAMPLE)
    assert settings.redis.password is not None
    assert settings.redis.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.redis.url == "redis://localhost:6379/0"


def test_env_beats_secret_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "redis__password").write_text("from-file", encoding="utf-8")
    monkeypatch.setenv("DRIFTMON_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("DRIFTMON_REDIS__PASSWORD", "from-env")
    settings = load_settings(EXAMPLE)
    assert settings.redis.password is not None
    assert settings.redis.password.get_secret_value() == "from-env"


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("http:\n  port: 70000\n", "http.port"),
        ("windows:\n  sizes: ['15x']\n", "windows.sizes"),
        ("kafka:\n  topics: []\n", "kafka.topics"),
        ("redis:\n  key_prefix: 'has space'\n", "redis.key_prefix"),
        ("evaluation:\n  interval_seconds: -1\n", "evaluation.interval_seconds"),
        ("bogus: 1\n", "bogus"),
        ("kafka:\n  options: {auto.offset.reset: oldest}\n", "kafka.options"),
    ],
)
def test_bad_value_names_the_field(tmp_path: Path, yaml_text: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as info:
        load_settings(_write(tmp_path, yaml_text))
    assert "\n" not in str(info.value)


def test_bad_env_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTMON_HTTP__PORT", "not-a-port")
    with pytest.raises(ConfigError, match=r"http\.port"):
        load_settings(EXAMPLE)


def test_model_rule_overrides(tmp_path: Path) -> None:
    text = (
        "models:\n  fraud:\n    baseline: b.json\n    rules:\n"
        "      psi: {info: 0.05, warning: 0.1, critical: 0.25}\n      min_samples_per_bin: 5\n"
    )
    settings = load_settings(_write(tmp_path, text))
    rules = settings.rules_for("fraud")
    assert (rules.psi.info, rules.psi.warning, rules.psi.critical) == (0.05, 0.1, 0.25)
    assert rules.min_samples_per_bin == 5
    assert rules.js_distance == Rules().js_distance
    assert settings.rules_for("other") == Rules()


def test_bad_model_rule_names_model_and_field(tmp_path: Path) -> None:
    text = (
        "models:\n  fraud:\n    baseline: b.json\n    rules:\n"
        "      psi: {info: 0.3, warning: 0.2, critical: 0.1}\n"
    )
    with pytest.raises(ConfigError, match=r"models\.fraud\.rules"):
        load_settings(_write(tmp_path, text))


def test_bad_model_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model name"):
        load_settings(_write(tmp_path, "models:\n  'bad name':\n    baseline: b.json\n"))


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 2"):
        load_settings(_write(tmp_path, "kafka:\n\tgroup_id: x\n"))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.yaml")


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, ""))
    assert settings.kafka.bootstrap_servers == "localhost:9092"
    assert settings.models == {}


def test_request_urls_with_tokens_are_not_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.INFO)  # as basicConfig sets it in production
    monkeypatch.setattr(logging.getLogger("httpx"), "level", logging.NOTSET)
    configure_logging("info", "json")
    # httpx logs 'HTTP Request: POST <full url>' at INFO; webhook URLs carry tokens.
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
