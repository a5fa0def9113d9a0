"""One Redis connection used as an open pipeline: commands go out at once, replies are read
in order when the caller wants them, so the caller computes while Redis works. I/O edge.

redis-py's `Pipeline.execute` sends a batch and waits for all of it. The evaluator
instead sends every bucket read of a round, then evaluates the first models while Redis
still packs the buckets of the others (`monitor.evaluator`). Error replies come back as
`redis.ResponseError` values, in place; connection errors raise `RedisUnavailable`. A
conversation closed with replies unread drops its connection (it is out of step).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import redis

from monitor.errors import RedisUnavailable
from monitor.window.store import REDIS_ERRORS

T = TypeVar("T")
Command = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Packed:
    """Commands in wire form: a batch sent every round is packed once."""

    data: list[bytes]
    count: int  # commands, i.e. replies to expect


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
        if commands:
            self.send_packed(self.pack(commands))

    def pack(self, commands: Sequence[Sequence[Any]]) -> Packed:
        """`commands` as sent on this client's connections (no I/O): for `send_packed`."""
        return Packed(list(self._conn.pack_commands(commands)), len(commands))

    def send_packed(self, packed: Packed) -> None:
        if not packed.count:
            return
        try:
            # A health check PINGs and reads the reply: only when no reply is pending.
            self._conn.send_packed_command(packed.data, check_health=not self._pending)
        except REDIS_ERRORS as exc:
            raise RedisUnavailable(f"redis: {exc}") from exc
        self._pending += packed.count

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

    def overlapped(
        self,
        chunks: Sequence[T],
        reads: Callable[[T], list[Command]],
        work: Callable[[T, list[Any]], list[Command]],
        check: Callable[[list[Any]], list[Any]],
    ) -> None:
        """For each chunk, send `reads(chunk)`, hand their replies to `work`, and send the
        commands `work` returns; every reply passes through `check`.

        Redis answers everything it read in one go at once, so sending every read up
        front would make the caller wait for all of them. Instead chunk i+1's reads go out
        just before chunk i is worked on: Redis serves them while the caller computes.
        Replies arrive in the order the commands were sent; all are read before returning.
        """
        sent: deque[tuple[bool, int]] = deque()  # (are they reads, how many commands)

        def send(are_reads: bool, commands: list[Command]) -> None:
            self.send(commands)
            sent.append((are_reads, len(commands)))

        def next_reads() -> list[Any]:
            while True:
                are_reads, n = sent.popleft()
                replies = check(self.receive(n))
                if are_reads:
                    return replies

        if chunks:
            send(True, reads(chunks[0]))
        for i, chunk in enumerate(chunks):
            replies = next_reads()
            if i + 1 < len(chunks):
                send(True, reads(chunks[i + 1]))
            send(False, work(chunk, replies))
        while sent:
            check(self.receive(sent.popleft()[1]))

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
