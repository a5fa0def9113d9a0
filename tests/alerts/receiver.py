"""A local HTTP receiver for sink tests: records JSON POSTs, answers scripted statuses.

Stands in for PagerDuty's Events API, a webhook endpoint, or Alertmanager's webhook
receiver. It can validate every body (a failed check answers 400 and is recorded in
`invalid`), answer a scripted sequence of statuses (202, 400, 429 with Retry-After,
500 ...), and go down and come back up on the same port.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from tests.services import LOOPBACK, free_port

Validator = Callable[[Any], str | None]


@dataclass
class Received:
    path: str
    body: Any
    status: int
    at: float  # time.monotonic() on arrival


@dataclass
class Answer:
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: str = '{"status": "success"}'


class Receiver:
    def __init__(self, validate: Validator | None = None, default_status: int = 202) -> None:
        self.port = free_port()
        self.validate = validate
        self.default = Answer(default_status)
        self.script: deque[Answer] = deque()
        self.received: list[Received] = []
        self.invalid: list[tuple[Any, str]] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def answer(self, *answers: Answer | int) -> None:
        """Queue the next answers (an int is a bare status)."""
        with self._lock:
            self.script.extend(a if isinstance(a, Answer) else Answer(a) for a in answers)

    def accepted(self) -> list[Any]:
        """Bodies answered 2xx, in arrival order."""
        with self._lock:
            return [r.body for r in self.received if 200 <= r.status < 300]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not predicate(self.received):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._arrived.wait(left)
            return True

    def _handle(self, path: str, raw: bytes) -> Answer:
        try:
            body = json.loads(raw)
        except ValueError:
            body, problem = raw.decode(errors="replace"), "not JSON"
        else:
            problem = self.validate(body) if self.validate else None
        with self._arrived:
            answer = Answer(400, body=json.dumps({"errors": [problem]})) if problem else None
            if answer is None:
                answer = self.script.popleft() if self.script else self.default
            if problem:
                self.invalid.append((body, problem))
            self.received.append(Received(path, body, answer.status, time.monotonic()))
            self._arrived.notify_all()
        return answer

    def start(self) -> Self:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                answer = receiver._handle(self.path, self.rfile.read(length))
                payload = answer.body.encode()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: the port refuses connections until `start` again (same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


PD_SEVERITIES = {"critical", "error", "warning", "info"}


def validate_pagerduty(body: Any) -> str | None:
    """The checks PagerDuty's Events API v2 applies (the ones that answer 400)."""
    if not isinstance(body, dict):
        return "body must be an object"
    if not isinstance(body.get("routing_key"), str) or len(body["routing_key"]) != 32:
        return "routing_key must be a 32-character string"
    action = body.get("event_action")
    if action not in {"trigger", "acknowledge", "resolve"}:
        return f"bad event_action {action!r}"
    dedup = body.get("dedup_key")
    if action != "trigger" and not dedup:
        return "dedup_key required for acknowledge/resolve"
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        return "dedup_key must be a string of at most 255 characters"
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            return "payload required for trigger"
        for name in ("summary", "source", "severity"):
            if not isinstance(payload.get(name), str) or not payload[name]:
                return f"payload.{name} required"
        if len(payload["summary"]) > 1024:
            return "payload.summary longer than 1024"
        if payload["severity"] not in PD_SEVERITIES:
            return f"payload.severity {payload['severity']!r} not in {sorted(PD_SEVERITIES)}"
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
            return "payload.custom_details must be an object"
    links = body.get("links", [])
    if not isinstance(links, list) or not all(
        isinstance(link, dict) and isinstance(link.get("href"), str) for link in links
    ):
        return "links must be a list of {href, text}"
    return None
