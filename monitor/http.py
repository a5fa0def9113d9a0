"""HTTP endpoints (SPEC §9): /metrics, /livez, /readyz, /state. Read-only. I/O edge.

A stdlib threading server: a handful of scrapes per minute needs nothing more, and it
keeps the dependency list short. Every method but GET/HEAD answers 405.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitor.clock import Clock
from monitor.metrics import Metrics
from monitor.settings import HttpSettings
from monitor.stream import Health

StateReader = Callable[[str | None], dict[str, Any]]


class HttpServer:
    """Serves the endpoints on a background thread."""

    def __init__(
        self,
        settings: HttpSettings,
        metrics: Metrics,
        health: Health,
        clock: Clock,
        read_state: StateReader | None = None,
        live_timeout: float = 60.0,
    ) -> None:
        handler = _handler(metrics, health, clock, read_state, live_timeout)
        self._server = ThreadingHTTPServer((settings.host, settings.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(
    metrics: Metrics,
    health: Health,
    clock: Clock,
    read_state: StateReader | None,
    live_timeout: float,
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path == "/metrics":
                self._send(HTTPStatus.OK, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/livez":
                alive = clock.monotonic() - health.last_loop < live_timeout
                self._json(
                    HTTPStatus.OK if alive else HTTPStatus.SERVICE_UNAVAILABLE, {"alive": alive}
                )
            elif path == "/readyz":
                body = {
                    "ready": health.ready,
                    "redis": health.redis_ok,
                    "partitions_assigned": health.assigned,
                    "baselines_loaded": health.baselines_loaded,
                }
                code = HTTPStatus.OK if health.ready else HTTPStatus.SERVICE_UNAVAILABLE
                self._json(code, body)
            elif path == "/state" and read_state is not None:
                model = None
                for part in query.split("&"):
                    key, _, value = part.partition("=")
                    if key == "model" and value:
                        model = value
                self._json(HTTPStatus.OK, read_state(model))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_POST(self) -> None:
            self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "read-only"})

        def do_PUT(self) -> None:
            self.do_POST()

        def do_DELETE(self) -> None:
            self.do_POST()

        def _json(self, code: HTTPStatus, body: Any) -> None:
            self._send(code, msgspec.json.encode(body), "application/json")

        def _send(self, code: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # scrapes are not worth a log line each

    return Handler
