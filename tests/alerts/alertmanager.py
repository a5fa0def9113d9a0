"""A real Alertmanager (Debian `prometheus-alertmanager`, 0.25) for sink tests.

Started on free loopback ports with clustering off and a config that routes every
alert to one webhook receiver: group_wait 1s, group_interval 1s, repeat_interval 1h,
grouped per alert identity. CI installs the binary (`.ci/run`); a missing binary is a
failure, not a skip.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import httpx

from tests.services import LOOPBACK, ServiceStartError, _ManagedProcess

BINARY = "prometheus-alertmanager"

CONFIG = """\
route:
  receiver: hook
  group_by: [alertname, model, feature, window, severity]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: "{webhook_url}"
        send_resolved: true
"""


class AlertmanagerServer(_ManagedProcess):
    name = "alertmanager"

    def __init__(self, webhook_url: str, binary: str | None = None) -> None:
        super().__init__()
        found = binary or shutil.which(BINARY)
        if found is None:
            raise ServiceStartError(
                f"{BINARY} not on PATH: apt-get install -y --no-install-recommends "
                f"prometheus-alertmanager (.ci/run does this)"
            )
        self.binary = found
        self.workdir = Path(tempfile.mkdtemp(prefix="driftmon-am-"))
        self.config_path = self.workdir / "alertmanager.yml"
        self.config_path.write_text(CONFIG.format(webhook_url=webhook_url))

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def alerts(self) -> list[dict[str, object]]:
        """GET /api/v2/alerts: what Alertmanager holds now."""
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        result: list[dict[str, object]] = response.json()
        return result

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
