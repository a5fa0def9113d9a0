"""One Redis connection used as an open pipeline: commands go out at once, replies are read
in order when the caller wants them, so the caller computes while Redis works. I/O edge.

redis-py's `Pipeline.execute` sends a batch and waits for all of it. The evaluator
instead sends every bucket read of a round, then evaluates the first models while Redis
still packs the buckets of the others (`monitor.evaluator`). Error replies come back as
`redis.ResponseError` values, in place; connection errors raise `RedisUnavailable`. A
conversation closed with replies unread drops its connection (it is out of step).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import redis

from monitor.errors import RedisUnavailable
from monitor.window.store import REDIS_ERRORS


class Conversation:
    """Send commands now, read their replies later, in order, on one pooled connection."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        try:
            self._conn: Any = self._pool.get_connection()  # redis-py leaves it untyped
        except REDIS_ERRORS as exc:
            raise RedisUnavailable(f"redis: {exc}") from exc
        self._pending = 0

    def send(self, commands: Sequence[Sequence[Any]]) -> None:
        if not commands:
            return
        try:
            self._conn.send_packed_command(self._conn.pack_commands(commands))
        except REDIS_ERRORS as exc:
            raise RedisUnavailable(f"redis: {exc}") from exc
        self._pending += len(commands)

    def receive(self, n: int) -> list[Any]:
        """The next `n` replies; an error reply is returned as its `ResponseError`."""
        if n > self._pending:
            raise ValueError(f"{n} replies asked, {self._pending} pending")
        replies: list[Any] = []
        try:
            for _ in range(n):
                try:
                    replies.append(self._conn.read_response(disconnect_on_error=True))
                except redis.ResponseError as error:
                    replies.append(error)
                self._pending -= 1
        except REDIS_ERRORS as exc:
            raise RedisUnavailable(f"redis: {exc}") from exc
        return replies

    def close(self) -> None:
        if self._pending:
            self._conn.disconnect()
            self._pending = 0
        self._pool.release(self._conn)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
