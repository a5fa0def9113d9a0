"""One Redis connection used as an open pipeline: commands go out at once, and each batch's
replies are read when the caller asks for them (by the ticket `send` returned), so the
caller computes while Redis works. I/O edge.

redis-py's `Pipeline.execute` sends a batch and waits for all of it. The evaluator
instead sends the reads of the next models' buckets, then evaluates the models whose
buckets arrived while Redis reads those (`monitor.evaluator`). Replies come in the order
the commands were sent; asking for a later batch's reads the earlier ones' off the socket
and keeps them for their tickets. Error replies come back as `redis.ResponseError`
values, in place; connection errors raise `RedisUnavailable`. A conversation closed with
replies still on the way drops its connection (it is out of step).

Replies are read off the connection's socket here, not by redis-py's parser: a batch
sent `raw` gets each reply as the bytes Redis sent (a bucket hash of 600 fields is one
bytes object for `monitor.window.raw_hash.scatter_resp`, instead of 1,200 Python objects
or a Lua script joining them on the server). `monitor.resp` finds where each reply
ends; the others are decoded by hiredis, as redis-py would (RESP2 or RESP3, the same
error classes). Push messages and attributes (RESP3) are skipped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import hiredis
import numpy as np
import redis

from monitor.errors import RedisUnavailable
from monitor.resp import MALFORMED, frame_ends, skip_attributes
from monitor.window.store import REDIS_ERRORS

_PUSH, _ATTRIBUTE = ord(">"), ord("|")
_ERRORS = (ord("-"), ord("!"))  # error replies are ResponseErrors, raw or not
_MIN_FREE = 1 << 16  # bytes free in the buffer before each recv
_MAX_FRAMES = 4096  # replies framed per kernel call


Ticket = int  # one batch of commands sent, for `Conversation.replies`


@dataclass(slots=True)
class _Batch:
    owed: int  # replies still on the way
    raw: bool
    replies: list[Any] = field(default_factory=list)  # read, not yet asked for


@dataclass(frozen=True, slots=True)
class Packed:
    """Commands in wire form: a batch sent every round is packed once."""

    data: list[bytes]
    count: int  # commands, i.e. replies to expect


class Conversation:
    """Send commands now, ask for their replies later (by ticket), on one pooled connection."""

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
        self._tickets: dict[Ticket, _Batch] = {}  # sent, replies not yet asked for
        self._owed: deque[_Batch] = deque()  # batches with replies still on the way
        self._serial = 0
        self._pending = 0  # replies still on the way
        self._buffer = np.empty(1 << 20, dtype=np.uint8)
        self._view = self._buffer.data  # a memoryview: what the socket and hiredis take
        self._pos = 0  # the next reply starts here ...
        self._filled = 0  # ... and the bytes received end here
        self._ends: list[int] = []  # where the replies framed but not yet read end
        self._ends_array = np.empty(_MAX_FRAMES, dtype=np.int64)
        self._broken = False

    def send(self, commands: Sequence[Sequence[Any]], *, raw: bool = False) -> Ticket:
        """Send `commands`; with `raw`, their replies are read as the bytes Redis sent.
        Returns the ticket for `replies`."""
        return self.send_packed(self.pack(commands), raw=raw)

    def pack(self, commands: Sequence[Sequence[Any]]) -> Packed:
        """`commands` as sent on this client's connections (no I/O): for `send_packed`."""
        return Packed(list(self._conn.pack_commands(commands)), len(commands))

    def send_packed(self, packed: Packed, *, raw: bool = False) -> Ticket:
        self._serial += 1
        batch = self._tickets[self._serial] = _Batch(packed.count, raw)
        if packed.count:
            self._send(packed.data)
            self._owed.append(batch)
            self._pending += packed.count
        return self._serial

    def _send(self, data: list[bytes]) -> None:
        try:
            # A health check PINGs and reads the reply (with redis-py's parser): only
            # when no reply is pending, so that nothing else is on the socket.
            self._conn.send_packed_command(data, check_health=not self._pending)
        except REDIS_ERRORS as exc:
            self._broken = True
            raise RedisUnavailable(f"redis: {exc}") from exc

    def replies(self, ticket: Ticket) -> list[Any]:
        """The replies to the commands sent with `ticket`, in order. An error reply is its
        `ResponseError`; any other reply to a command sent `raw` is bytes. Replies to
        commands sent before are read off the socket too, and kept for their tickets."""
        batch = self._tickets.pop(ticket, None)
        if batch is None:
            raise ValueError(f"no replies pending for ticket {ticket}")
        while batch.owed:
            self._read()
        return batch.replies

    def _read(self) -> None:
        """Read the next reply off the socket, for the oldest batch still owed one."""
        batch = self._owed[0]
        start, end = self._frame()
        kind = self._view[start]  # the type byte, as an int
        if kind == _PUSH:
            return  # not a reply to anything sent
        if kind == _ATTRIBUTE:
            start = skip_attributes(self._buffer, start, end)
            kind = self._view[start]
        if batch.raw and kind not in _ERRORS:
            batch.replies.append(self._buffer[start:end].tobytes())
        else:
            self._decoder.feed(self._view, start, end - start)  # type: ignore[arg-type]  # any buffer
            batch.replies.append(self._decoder.gets())
        batch.owed -= 1
        if not batch.owed:
            self._owed.popleft()
        self._pending -= 1

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
        replies: list[bytes] = talk.replies(talk.send(commands, raw=True))
        return replies
