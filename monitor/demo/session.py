"""`driftmon demo` wiring: embedded services, baselines, the daemon, traffic, a tracker.

    EmbeddedRedis  EmbeddedKafka <- Traffic (monitor.simulate, scheduled incidents)
          ^              |
          +---- monitor.app.run (thread): stream -> windows -> evaluator -> log sink
          |
       Tracker (state documents, alert states, alert log) -> view / summary

The daemon runs with short windows so incidents are seen within the demo: 1 s buckets,
one 30 s window, evaluation every second, `for` 3 s, NoTraffic after 8 s of silence.
Its settings are also written as YAML (`config_path`), so `driftmon status` and
`driftmon drill` can be pointed at the running demo from another terminal.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO, TypeVar

import httpx
import redis
import structlog
import yaml
from pydantic import TypeAdapter

from monitor.app import run
from monitor.baseline import build_baseline, write_baseline
from monitor.clock import Clock
from monitor.demo.services import EmbeddedKafka, EmbeddedRedis, free_port
from monitor.demo.tracker import Tracker, Watch
from monitor.demo.traffic import Traffic
from monitor.errors import ConfigError, ServiceError
from monitor.logs import configure_logging
from monitor.settings import AlertingSettings, Settings
from monitor.simulate import MODELS, Incident, Simulator, builtin_schedule, training_columns
from monitor.window.keys import Keys

TOPIC = "inference-events"
PREFIX = "driftmon"
FOR_SECONDS = 3.0
TRAINING_ROWS = 20_000
T = TypeVar("T")
RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"


def runbook_base() -> str:
    """The repository's runbooks as file:// links when present, else the default URL."""
    if RUNBOOKS.is_dir():
        return RUNBOOKS.as_uri() + "/"
    return AlertingSettings().runbook_base_url


def demo_config(
    bootstrap: str, redis_url: str, http_port: int, baselines: dict[str, Path]
) -> dict[str, Any]:
    """The daemon's configuration for the demo (plain data: also written as YAML)."""

    def rule(info: float, warning: float, critical: float) -> dict[str, float]:
        return {"info": info, "warning": warning, "critical": critical, "for_seconds": FOR_SECONDS}

    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [TOPIC],
            "group_id": "driftmon-demo",
            "options": {
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
                "log_level": 3,
            },
        },
        "redis": {"url": redis_url, "key_prefix": PREFIX},
        "http": {"host": "127.0.0.1", "port": http_port},
        "windows": {"bucket_seconds": 1, "sizes": ["30s"], "grace_seconds": 5},
        "evaluation": {"interval_seconds": 1, "lease_seconds": 5},
        "alerting": {"runbook_base_url": runbook_base(), "resend_seconds": 10},
        "rules": {
            "psi": rule(0.1, 0.2, 0.3),
            "js_distance": rule(0.1, 0.2, 0.3),
            "missing": rule(0.05, 0.2, 0.5),
            "out_of_range": rule(0.01, 0.05, 0.2),
            "unseen": rule(0.01, 0.05, 0.2),
            "invalid": rule(0.01, 0.05, 0.2),
            "latency_for_seconds": FOR_SECONDS,
            "no_traffic_seconds": 8,
            "min_samples_per_bin": 30,
        },
        "models": {
            name: {"baseline": str(path), "latency_slo_ms": MODELS[name].latency_slo_ms}
            for name, path in baselines.items()
        },
        "log": {"level": "info", "format": "json"},
    }


def isolated_settings(config: dict[str, Any]) -> Settings:
    """Settings from `config` alone, ignoring DRIFTMON_* variables and secret files.

    The demo must never reach a real Kafka or Redis configured in the same shell: each
    section is validated on its own, then assembled without the environment sources.
    """
    values = {}
    for name, value in config.items():
        annotation = Settings.model_fields[name].annotation
        if annotation is None:
            raise ConfigError(f"{name}: not a settings section")
        values[name] = TypeAdapter(annotation).validate_python(value)
    return Settings.model_construct(**values)


def write_baselines(directory: Path, models: list[str], seed: int = 1) -> dict[str, Path]:
    """Fit each model's baseline on synthetic training data drawn from its profile."""
    paths = {}
    for i, name in enumerate(models):
        columns = training_columns(MODELS[name], TRAINING_ROWS, seed=seed + i)
        doc = build_baseline(name, columns, source="driftmon simulate (training data)")
        paths[name] = directory / f"{name}.json"
        write_baseline(doc, paths[name])
    return paths


class DemoSession:
    """Everything `driftmon demo` runs, started and stopped in the right order."""

    def __init__(self, clock: Clock, rate: float = 400.0, workdir: Path | None = None) -> None:
        self.clock = clock
        self.rate = rate
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="driftmon-demo-"))
        self.models = list(MODELS)
        self.config_path = self.workdir / "driftmon-demo.yaml"
        self.log_path = self.workdir / "daemon.log"
        self.redis: EmbeddedRedis | None = None
        self.kafka: EmbeddedKafka | None = None
        self.client: redis.Redis | None = None
        self.settings: Settings | None = None
        self.traffic: Traffic | None = None
        self.tracker: Tracker | None = None
        self.incidents: list[Incident] = []
        self.daemon_error: str | None = None
        self._stop = threading.Event()
        self._daemon: threading.Thread | None = None
        self._log_file: TextIO | None = None

    @staticmethod
    def _require(part: T | None) -> T:
        if part is None:
            raise ServiceError("the demo services are not started")
        return part

    @property
    def keys(self) -> Keys:
        return Keys(PREFIX)

    @property
    def metrics_url(self) -> str:
        port = self.settings.http.port if self.settings else 0
        return f"http://127.0.0.1:{port}/metrics"

    def redis_cli(self, model: str = "fraud") -> str:
        port = self.redis.port if self.redis else 6379
        return f"redis-cli -p {port} GET '{self.keys.state(model)}'"

    def start_services(self) -> None:
        """Redis, Kafka, baselines, configuration, the daemon thread (until ready)."""
        self._log_file = self.log_path.open("a", encoding="utf-8")
        # The terminal belongs to the view: the daemon's logs (structlog and stdlib) go to a file.
        configure_logging("info", "json")
        structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=self._log_file))
        logging.getLogger().handlers = [logging.StreamHandler(self._log_file)]
        self.redis = EmbeddedRedis(self.workdir / "redis.log").start()
        self.kafka = EmbeddedKafka()
        self.kafka.create_topic(TOPIC)
        baselines = write_baselines(self.workdir, self.models)
        config = demo_config(self.kafka.bootstrap, self.redis.url, free_port(), baselines)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.settings = isolated_settings(config)
        self.client = redis.Redis.from_url(self.redis.url)
        self._daemon = threading.Thread(target=self._run_daemon, name="daemon", daemon=True)
        self._daemon.start()
        self._wait_ready(60.0)

    def _run_daemon(self) -> None:
        try:
            run(self._require(self.settings), self.clock, self._stop)
        except Exception as exc:  # reported by the command; the demo must not hang
            self.daemon_error = f"{type(exc).__name__}: {exc}"
            structlog.get_logger(__name__).exception("demo_daemon_failed")

    def _wait_ready(self, timeout: float) -> None:
        url = self.metrics_url.replace("/metrics", "/readyz")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.daemon_error:
                raise ServiceError(f"the daemon stopped: {self.daemon_error} (see {self.log_path})")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise ServiceError(f"the daemon was not ready after {timeout:.0f}s (see {self.log_path})")

    def start_traffic(self, duration: float, schedule: list[Incident] | None = None) -> None:
        """Start the producer with the built-in schedule fitted into `duration` seconds."""
        kafka, client = self._require(self.kafka), self._require(self.client)
        self.incidents = builtin_schedule(duration) if schedule is None else schedule
        simulator = Simulator([MODELS[m] for m in self.models], self.incidents, seed=7)
        self.traffic = Traffic(kafka.bootstrap, TOPIC, simulator.batch, self.rate, self.clock)
        watches = [Watch(i.label, i.model, i.expected_alert, i.feature) for i in self.incidents]
        self.tracker = Tracker(client, self.keys, watches)
        self.tracker.start_log_at(self.clock.now())
        self.traffic.start()
        while self.traffic.started_at is None and self.traffic.is_alive():
            time.sleep(0.01)

    @property
    def origin(self) -> float:
        """Wall time traffic started (incident times are relative to it)."""
        return self.traffic.started_at if self.traffic and self.traffic.started_at else 0.0

    def poll(self) -> list[str]:
        """Mark incidents that have started as injected and read Redis once."""
        tracker = self._require(self.tracker)
        news = []
        for incident, watch in zip(self.incidents, tracker.watches, strict=True):
            if watch.injected_at is None and self.origin and incident.start <= self.elapsed():
                watch.injected_at = self.origin + incident.start
                news.append(f"injected  {incident.label}")
        return news + tracker.poll(self.clock.now())

    def elapsed(self) -> float:
        return self.clock.now() - self.origin if self.origin else 0.0

    def states(self) -> dict[str, dict[str, Any]]:
        return self.tracker.states if self.tracker else {}

    def stop(self) -> None:
        """Stop traffic, then the daemon, then the services; safe to call twice."""
        with contextlib.suppress(ServiceError):
            if self.traffic is not None:
                self.traffic.finish()
        self._stop.set()
        if self._daemon is not None:
            self._daemon.join(60)
        if self.client is not None:
            self.client.close()
        if self.kafka is not None:
            self.kafka.close()
        if self.redis is not None:
            self.redis.stop()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
