"""Puts simulated events on a Kafka topic at a steady rate (the producer edge of the demo).

`Traffic` is a thread around one confluent-kafka producer: every tick it asks the
`monitor.simulate.Simulator` for the events due (``rate`` per second, stamped with the
wall time), JSON-encodes them and produces them. It stops after `total` events, when
`stop` is set, or at the end of `duration`. Used by `driftmon simulate`, `driftmon demo`
and (with a fixed event factory) `driftmon drill`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import msgspec
from confluent_kafka import KafkaException, Producer

from monitor.clock import Clock
from monitor.errors import ServiceError

TICK_SECONDS = 0.05
EventFactory = Callable[[float, int, float], list[dict[str, Any]]]  # (elapsed, n, now)


class Traffic(threading.Thread):
    """Produces `factory` events to `topic` at `rate` per second on a background thread."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        factory: EventFactory,
        rate: float,
        clock: Clock,
        *,
        total: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name="traffic", daemon=True)
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._config = {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "log_level": 3,
            **(options or {}),
        }
        self.topic = topic
        self.factory = factory
        self.rate = rate
        self.total = total
        self.clock = clock
        self.stop = threading.Event()
        self.started_at: float | None = None  # wall clock
        self.produced = 0  # events handed to the producer
        self.delivered = 0
        self.failed = 0
        self.error: str | None = None
        self._planned = 0
        self._encode = msgspec.json.Encoder().encode

    def run(self) -> None:
        try:
            producer = Producer(self._config)
        except KafkaException as exc:
            self.error = f"kafka producer: {exc}"
            return
        self.started_at = self.clock.now()
        start = self.clock.monotonic()
        try:
            while not self.stop.is_set():
                elapsed = self.clock.monotonic() - start
                due = int(elapsed * self.rate) + 1
                if self.total is not None:
                    due = min(due, self.total)
                if due > self._planned:
                    self._send(producer, elapsed, due - self._planned)
                    self._planned = due
                if self.total is not None and self._planned >= self.total:
                    break
                producer.poll(0)
                self.stop.wait(TICK_SECONDS)
        finally:
            left = producer.flush(15)
            if left:
                self.error = f"{left} events not delivered to {self.topic}"

    def _send(self, producer: Producer, elapsed: float, n: int) -> None:
        for event in self.factory(elapsed, n, self.clock.now()):
            payload = self._encode(event)
            while True:
                try:
                    producer.produce(self.topic, payload, on_delivery=self._delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
            self.produced += 1

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            self.error = f"delivery to {self.topic} failed: {err}"

    def finish(self, timeout: float = 30.0) -> None:
        """Stop producing and wait for the queued events to be delivered."""
        self.stop.set()
        if self.is_alive():
            self.join(timeout)
        if self.is_alive():
            raise ServiceError(f"the producer to {self.topic} did not finish in {timeout}s")
