"""Credentials reach the clients through configuration, and never the logs or errors."""

from __future__ import annotations

import io
import json

import pytest
import redis
import structlog
from pydantic import SecretStr

from monitor.app import redis_client
from monitor.errors import ConfigError
from monitor.settings import KafkaSettings, RedisSettings, Settings, load_settings
from monitor.source.kafka import consumer_config, producer_config
from tests.services import RedisServer

SECRET = "s3cr3t-value-42"


def test_kafka_sasl_ssl_options_and_password_reach_librdkafka() -> None:
    settings = KafkaSettings(
        options={
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "driftmon",
            "ssl.ca.location": "/etc/ssl/ca.pem",
        },
        sasl_password=SecretStr(SECRET),
    )
    for config in (consumer_config(settings), producer_config(settings)):
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.username"] == "driftmon"
        assert config["sasl.password"] == SECRET
        assert config["ssl.ca.location"] == "/etc/ssl/ca.pem"
    assert SECRET not in repr(settings) and SECRET not in str(settings)


def test_redis_tls_url_selects_an_ssl_connection() -> None:
    client = redis_client(
        RedisSettings(url="rediss://redis.example:6380/0", username="u", password=SecretStr(SECRET))
    )
    kwargs = client.connection_pool.connection_kwargs
    assert client.connection_pool.connection_class is redis.SSLConnection
    assert kwargs["username"] == "u" and kwargs["password"] == SECRET
    client.close()


def test_redis_acl_user_and_password_work_against_a_real_server() -> None:
    with RedisServer() as server:
        admin = server.client()
        admin.acl_setuser(
            "driftmon", enabled=True, passwords=[f"+{SECRET}"], keys=["*"], commands=["+@all"]
        )
        admin.acl_setuser("default", enabled=False)
        admin.close()
        good = redis_client(
            RedisSettings(url=server.url, username="driftmon", password=SecretStr(SECRET))
        )
        assert good.ping()
        good.close()
        bad = redis_client(
            RedisSettings(url=server.url, username="driftmon", password=SecretStr("wrong"))
        )
        with pytest.raises(redis.AuthenticationError) as info:
            bad.ping()
        assert SECRET not in str(info.value)
        bad.close()


def test_config_errors_do_not_echo_secrets(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "driftmon.yaml"
    config.write_text(
        "alerting:\n  pagerduty:\n    routing_key: " + SECRET + "\n    min_severity: loud\n"
    )
    monkeypatch.setenv("DRIFTMON_SECRETS_DIR", str(tmp_path / "none"))
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert "min_severity" in str(info.value)
    assert SECRET not in str(info.value)


def test_secret_files_are_read_and_masked(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "redis__password").write_text(SECRET + "\n")
    monkeypatch.setenv("DRIFTMON_SECRETS_DIR", str(tmp_path))
    settings = load_settings(None)
    assert settings.redis.password is not None
    assert settings.redis.password.get_secret_value() == SECRET
    out = io.StringIO()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(out), processors=[structlog.processors.JSONRenderer(default=str)]
    )
    logger.info("settings", redis=settings.redis.model_dump(), whole=repr(settings))
    assert SECRET not in out.getvalue()
    assert json.loads(out.getvalue())["redis"]["password"] == "**********"
    assert isinstance(settings, Settings)
