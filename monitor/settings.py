"""The one settings tree. The only module that reads YAML, environment and secret files.

Sources, highest priority first:
1. environment: ``DRIFTMON_`` prefix, ``__`` between levels (``DRIFTMON_REDIS__URL``);
2. secret files: one file per value in ``$DRIFTMON_SECRETS_DIR`` (default
   ``/run/secrets/driftmon``), named like the env var without the prefix, lower case
   (``redis__password``, ``alerting__pagerduty__routing_key``) — a Kubernetes Secret mount;
3. the YAML file (``--config``, default ``config/driftmon.yaml`` when it exists);
4. the defaults below (SPEC §5, §8).

Settings are built once by the CLI (`load_settings`) and are frozen; each component
receives its own section.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from monitor.errors import ConfigError

DEFAULT_CONFIG = Path("config/driftmon.yaml")
DEFAULT_SECRETS_DIR = Path("/run/secrets/driftmon")
ENV_PREFIX = "DRIFTMON_"

Severity = Literal["ok", "info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("ok", "info", "warning", "critical")

# librdkafka's names for auto.offset.reset (driftmon applies the policy itself)
OFFSET_RESET_POLICIES = ("earliest", "smallest", "beginning", "latest", "largest", "end", "error")

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'90s', '15m', '1h', '2d' or a bare number of seconds -> seconds."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"not a positive duration like '15m' or '1h': {text!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Thresholds(_Section):
    """Ordered thresholds of one rule, its `for` duration and hysteresis."""

    info: float
    warning: float
    critical: float
    for_seconds: float = Field(default=60.0, ge=0)
    resolve_ratio: float = Field(default=0.8, gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if not (self.info <= self.warning <= self.critical):
            raise ValueError("thresholds must be ordered: info <= warning <= critical")
        return self

    def classify(self, value: float) -> Severity:
        """The highest level whose threshold `value` reaches (NaN is `ok`)."""
        if value >= self.critical:
            return "critical"
        if value >= self.warning:
            return "warning"
        if value >= self.info:
            return "info"
        return "ok"


class Chi2Threshold(_Section):
    """Sample-size-aware PSI bar: chi2_{1-a,K-1}·(1/C + 1/R) + floor (see kernels.guard)."""

    significance: float = Field(default=0.01, gt=0, lt=1)
    floor: float = Field(default=0.0, ge=0)


class Rules(_Section):
    """Drift and data-quality rules (SPEC §5 defaults)."""

    psi: Thresholds = Thresholds(info=0.1, warning=0.2, critical=0.3)
    js_distance: Thresholds = Thresholds(info=0.1, warning=0.2, critical=0.3)
    js_metric: Literal["js_distance", "js_divergence"] = "js_distance"
    missing: Thresholds = Thresholds(info=0.05, warning=0.2, critical=0.5)
    out_of_range: Thresholds = Thresholds(info=0.01, warning=0.05, critical=0.2)
    unseen: Thresholds = Thresholds(info=0.01, warning=0.05, critical=0.2)
    invalid: Thresholds = Thresholds(info=0.01, warning=0.05, critical=0.2)
    no_traffic_seconds: float = Field(default=300.0, gt=0)
    lag_seconds: float = Field(default=120.0, gt=0)  # MonitorLagging: behind real time
    lag_for_seconds: float = Field(default=60.0, ge=0)
    latency_for_seconds: float = Field(default=60.0, ge=0)
    pseudocount: float = Field(default=0.5, ge=0)
    min_samples_per_bin: float = Field(default=10.0, ge=0)
    psi_chi2: Chi2Threshold | None = None


class KafkaSettings(_Section):
    bootstrap_servers: str = "localhost:9092"
    topics: list[str] = Field(default_factory=lambda: ["inference-events"], min_length=1)
    group_id: str = "driftmon"
    dead_letter_topic: str | None = None
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)
    sasl_password: SecretStr | None = None
    batch_size: int = Field(default=5000, ge=1)
    poll_timeout_seconds: float = Field(default=0.2, gt=0)
    max_message_bytes: int = Field(default=1_000_000, ge=1)

    @field_validator("options")
    @classmethod
    def _reset_policy(
        cls, options: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        policy = options.get("auto.offset.reset")
        if policy is not None and str(policy) not in OFFSET_RESET_POLICIES:
            known = ", ".join(OFFSET_RESET_POLICIES)
            raise ValueError(f"auto.offset.reset must be one of {known}, not {policy!r}")
        return options

    @property
    def start_policy(self) -> str:
        """Where a partition with no watermark and no committed offset starts."""
        return str(self.options.get("auto.offset.reset", "latest"))


class RedisSettings(_Section):
    url: str = "redis://localhost:6379/0"
    key_prefix: str = Field(default="driftmon", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    username: str | None = None
    password: SecretStr | None = None
    socket_timeout_seconds: float = Field(default=5.0, gt=0)


class HttpSettings(_Section):
    host: str = "0.0.0.0"  # noqa: S104 - a sidecar is scraped over the pod network
    port: int = Field(default=9475, ge=0, le=65535)


class WindowSettings(_Section):
    bucket_seconds: int = Field(default=60, ge=1)
    sizes: list[str] = Field(default_factory=lambda: ["15m", "1h"], min_length=1)
    grace_seconds: int = Field(default=120, ge=0)
    flush_interval_ms: int = Field(default=250, ge=1)
    flush_max_events: int = Field(default=50_000, ge=1)

    @field_validator("sizes")
    @classmethod
    def _durations(cls, sizes: list[str]) -> list[str]:
        for size in sizes:
            parse_duration(size)
        return sizes

    def size_seconds(self) -> dict[str, int]:
        return {size: parse_duration(size) for size in self.sizes}


class EvaluationSettings(_Section):
    interval_seconds: float = Field(default=10.0, gt=0)
    lease_seconds: float = Field(default=30.0, gt=0)


class PagerDutySettings(_Section):
    routing_key: SecretStr
    min_severity: Severity = "critical"
    url: str = "https://events.pagerduty.com/v2/enqueue"


class WebhookSettings(_Section):
    url: str
    min_severity: Severity = "warning"


class AlertingSettings(_Section):
    runbook_base_url: str = "https://example.org/driftmon/docs/runbooks/"
    alertmanager_urls: list[str] = Field(default_factory=list)
    pagerduty: PagerDutySettings | None = None
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    resend_seconds: float = Field(default=45.0, ge=1)


class ModelSettings(_Section):
    baseline: Path
    latency_slo_ms: float | None = Field(default=None, gt=0)
    windows: list[str] | None = None
    rules: dict[str, Any] = Field(default_factory=dict)


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Settings(BaseSettings):
    """The whole configuration (SPEC §8)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    http: HttpSettings = HttpSettings()
    windows: WindowSettings = WindowSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    alerting: AlertingSettings = AlertingSettings()
    rules: Rules = Rules()
    models: dict[str, ModelSettings] = Field(default_factory=dict)
    log: LogSettings = LogSettings()

    @field_validator("models")
    @classmethod
    def _model_names(cls, models: dict[str, ModelSettings]) -> dict[str, ModelSettings]:
        for name in models:
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
                raise ValueError(f"model name {name!r} must be 1-64 chars of [A-Za-z0-9_.-]")
        return models

    @model_validator(mode="after")
    def _model_rules(self) -> Settings:
        for name in self.models:
            self.rules_for(name)  # raises ValueError naming the model on a bad override
        return self

    def rules_for(self, model: str) -> Rules:
        """The default rules with the model's overrides merged in."""
        overrides = self.models[model].rules if model in self.models else {}
        if not overrides:
            return self.rules
        merged = _deep_merge(self.rules.model_dump(), overrides)
        try:
            return Rules.model_validate(merged)
        except ValidationError as exc:
            raise ValueError(f"models.{model}.rules: {_first_error(exc)}") from None

    def windows_for(self, model: str) -> dict[str, int]:
        """Window name -> length in seconds for `model`."""
        sizes = self.models[model].windows if model in self.models else None
        return {size: parse_duration(size) for size in (sizes or self.windows.sizes)}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # YAML content arrives as init kwargs; env and secret files override it.
        return (env_settings, _SecretFiles(settings_cls), init_settings)


class _SecretFiles(PydanticBaseSettingsSource):
    """Values from files named `section__field` in the secrets directory."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ builds the nested dict at once

    def __call__(self) -> dict[str, Any]:
        directory = Path(os.environ.get(f"{ENV_PREFIX}SECRETS_DIR", DEFAULT_SECRETS_DIR))
        if not directory.is_dir():
            return {}
        values: dict[str, Any] = {}
        for path in sorted(directory.iterdir()):
            if not path.is_file() or path.name.startswith("."):
                continue
            parts = path.name.lower().split("__")
            node = values
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = path.read_text(encoding="utf-8").strip()
        return values


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path}{where}: not valid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping")
    return data


def load_settings(config_file: Path | None = None) -> Settings:
    """Build the settings once. A missing default config file means built-in defaults."""
    path = config_file
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    data = _read_yaml(path) if path is not None else {}
    source = f"{path} or {ENV_PREFIX}* environment" if path else f"{ENV_PREFIX}* environment"
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid setting {_first_error(exc)} (from {source})") from None
    except ValueError as exc:
        raise ConfigError(f"invalid setting: {exc} (from {source})") from None
    if path is not None:
        settings = _resolve_baselines(settings, path)
    return settings


def _resolve_baselines(settings: Settings, config_file: Path) -> Settings:
    """Relative baseline paths are relative to the working directory, then the config's."""
    models = {}
    for name, model in settings.models.items():
        baseline = model.baseline
        if not baseline.is_absolute() and not baseline.exists():
            candidate = config_file.parent / baseline
            if candidate.exists():
                baseline = candidate
        models[name] = model.model_copy(update={"baseline": baseline})
    return settings.model_copy(update={"models": models})
