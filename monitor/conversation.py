"""One Redis connection used as an open pipeline: commands go out at once, replies are read
in order when the caller wants them, so the caller computes while Redis works. I/O edge.

redis-py's `Pipeline.execute` sends a batch and waits for all of it. The evaluator
instead sends every bucket read of a round, then evaluates the first models while Redis
still reads the buckets of the others (`monitor.evaluator`). Error replies come back as
`redis.ResponseError` values, in place; connection errors raise `RedisUnavailable`. A
conversation closed with replies unread drops its connection (it is out of step).

Replies are read off the connection's socket here, not by redis-py's parser: a batch
sent `raw` gets each reply as the bytes Redis sent (a bucket hash of 600 fields is one
bytes object for `monitor.window.raw_hash.scatter_resp`, instead of 1,200 Python objects
or a Lua script joining them on the server). `monitor.resp` finds where each reply
ends; the others are decoded by hiredis, as redis-py would (RESP2 or RESP3, the same
error classes). Push messages and attributes (RESP3) are skipped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import hiredis
import numpy as np
import redis

from monitor.errors import RedisUnavailable
from monitor.resp import MALFORMED, frame_ends, skip_attributes
from monitor.window.store import REDIS_ERRORS

T = TypeVar("T")
Command = tuple[Any, ...]

_PUSH, _ATTRIBUTE = ord(">"), ord("|")
_ERRORS = (ord("-"), ord("!"))  # error replies are ResponseErrors, raw or not
_MIN_FREE = 1 << 16  # bytes free in the buffer before each recv
_MAX_FRAMES = 4096  # replies framed per kernel call


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
        encoder = self._conn.encoder
        self._decoder = hiredis.Reader(
            protocolError=redis.exceptions.InvalidResponse,
            replyError=self._conn._parser.parse_error,  # NOSCRIPT -> NoScriptError, ...
            errors=encoder.encoding_errors,
            **({"encoding": encoder.encoding} if encoder.decode_responses else {}),
        )
        self._batches: deque[list[int]] = deque()  # [replies still owed, raw]
        self._pending = 0
        self._buffer = np.empty(1 << 20, dtype=np.uint8)
        self._view = self._buffer.data  # a memoryview: what the socket and hiredis take
        self._pos = 0  # the next reply starts here ...
        self._filled = 0  # ... and the bytes received end here
        self._ends: list[int] = []  # where the replies framed but not yet read end
        self._ends_array = np.empty(_MAX_FRAMES, dtype=np.int64)
        self._broken = False

    def send(self, commands: Sequence[Sequence[Any]], *, raw: bool = False) -> None:
        """Send `commands`; with `raw`, their replies are read as the bytes Redis sent."""
        if commands:
            self.send_packed(self.pack(commands), raw=raw)

    def pack(self, commands: Sequence[Sequence[Any]]) -> Packed:
        """`commands` as sent on this client's connections (no I/O): for `send_packed`."""
        return Packed(list(self._conn.pack_commands(commands)), len(commands))

    def send_packed(self, packed: Packed, *, raw: bool = False) -> None:
        if not packed.count:
            return
        try:
            # A health check PINGs and reads the reply (with redis-py's parser): only
            # when no reply is pending, so that nothing else is on the socket.
            self._conn.send_packed_command(packed.data, check_health=not self._pending)
        except REDIS_ERRORS as exc:
            self._broken = True
            raise RedisUnavailable(f"redis: {exc}") from exc
        self._batches.append([packed.count, raw])
        self._pending += packed.count

    def receive(self, n: int) -> list[Any]:
        """The next `n` replies; an error reply is returned as its `ResponseError`, and
        any other reply to a command sent `raw` as bytes."""
        if n > self._pending:
            raise ValueError(f"{n} replies asked, {self._pending} pending")
        replies: list[Any] = []
        while len(replies) < n:
            start, end = self._frame()
            kind = self._view[start]  # the type byte, as an int
            if kind == _PUSH:
                continue  # not a reply to anything sent
            if kind == _ATTRIBUTE:
                start = skip_attributes(self._buffer, start, end)
                kind = self._view[start]
            batch = self._batches[0]
            if batch[1] and kind not in _ERRORS:
                replies.append(self._buffer[start:end].tobytes())
            else:
                self._decoder.feed(self._view, start, end - start)  # type: ignore[arg-type]  # any buffer
                replies.append(self._decoder.gets())
            batch[0] -= 1
            if not batch[0]:
                self._batches.popleft()
            self._pending -= 1
        return replies

    def _frame(self) -> tuple[int, int]:
        """Where the next reply lies in the buffer, receiving until it is all there."""
        while not self._ends:
            framed = frame_ends(self._buffer, self._pos, self._filled, self._ends_array)
            if framed == MALFORMED:
                self._broken = True
                raise RedisUnavailable("redis: a reply is not valid RESP")
            if framed:
                self._ends = self._ends_array[:framed].tolist()
                self._ends.reverse()  # popped from the end
            else:
                self._receive()
        start, self._pos = self._pos, self._ends.pop()
        return start, self._pos

    def _receive(self) -> None:
        if len(self._buffer) - self._filled < _MIN_FREE:
            kept = self._filled - self._pos
            if len(self._buffer) - kept < _MIN_FREE:  # a reply larger than the buffer
                grown = np.empty(2 * len(self._buffer), dtype=np.uint8)
                grown[:kept] = self._buffer[self._pos : self._filled]
                self._buffer, self._view = grown, grown.data
            else:
                self._buffer[:kept] = self._buffer[self._pos : self._filled]
            self._pos, self._filled = 0, kept
        try:
            got = self._conn._sock.recv_into(self._view[self._filled :])
        except OSError as exc:  # socket.timeout included
            self._broken = True
            raise RedisUnavailable(f"redis: {exc or type(exc).__name__}") from exc
        if not got:
            self._broken = True
            raise RedisUnavailable("redis: the server closed the connection")
        self._filled += got

    def overlapped(
        self,
        chunks: Sequence[T],
        reads: Callable[[T], list[Command]],
        work: Callable[[T, list[Any]], list[Command]],
        check: Callable[[list[Any]], list[Any]],
        *,
        raw_reads: bool = False,
    ) -> None:
        """For each chunk, send `reads(chunk)`, hand their replies to `work`, and send the
        commands `work` returns; every reply passes through `check`.

        Redis answers everything it read in one go at once, so sending every read up
        front would make the caller wait for all of them. Instead chunk i+1's reads go out
        just before chunk i is worked on: Redis serves them while the caller computes.
        Replies arrive in the order the commands were sent; all are read before returning.
        With `raw_reads`, the replies to `reads` are the bytes Redis sent (`send`).
        """
        sent: deque[tuple[bool, int]] = deque()  # (are they reads, how many commands)

        def send(are_reads: bool, commands: list[Command]) -> None:
            self.send(commands, raw=are_reads and raw_reads)
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
        if self._pending or self._broken or self._filled > self._pos:
            self._conn.disconnect()  # out of step with the server
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


def raw_replies(client: redis.Redis, commands: Sequence[Sequence[Any]]) -> list[bytes]:
    """The replies to `commands` as Redis sent them, in one round trip."""
    with Conversation(client) as talk:
        talk.send(commands, raw=True)
        replies: list[bytes] = talk.receive(len(commands))
        return replies
