"""`monitor.conversation` on a real Redis: replies in order, raw or decoded, any size."""

from __future__ import annotations

import hiredis
import pytest
import redis

from monitor.conversation import Conversation, raw_replies
from monitor.errors import RedisUnavailable
from tests.services import RedisServer


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def client(request: pytest.FixtureRequest, redis_client: redis.Redis) -> redis.Redis:
    kwargs = redis_client.connection_pool.connection_kwargs
    return redis.Redis(host=kwargs["host"], port=kwargs["port"], protocol=request.param)


def _decoded(raw: bytes) -> object:
    reader = hiredis.Reader()
    reader.feed(raw)
    return reader.gets()


def test_raw_and_decoded_replies_interleave_in_order(client: redis.Redis, key_prefix: str) -> None:
    fields = {f"f:ü:{i}".encode(): str(i * 7).encode() for i in range(600)}
    client.hset(f"{key_prefix}h", mapping=fields)  # type: ignore[arg-type]
    client.set(f"{key_prefix}s", "v")
    with Conversation(client) as talk:
        decoded = talk.send([("GET", f"{key_prefix}s"), ("HLEN", f"{key_prefix}h")])
        raws = talk.send(
            [("HGETALL", f"{key_prefix}h"), ("HGETALL", f"{key_prefix}none")], raw=True
        )
        incrs = talk.send([("INCR", f"{key_prefix}s")] + [("INCR", f"{key_prefix}n")] * 3000)
        value, length = talk.replies(decoded)
        raw, missing = talk.replies(raws)
        assert (value, length) == (b"v", 600)
        as_read = _decoded(raw)  # a flat list (RESP2) or a dict (RESP3)
        pairs = (
            dict(zip(as_read[::2], as_read[1::2], strict=True))
            if isinstance(as_read, list)
            else as_read
        )
        assert pairs == fields
        assert missing in (b"*0\r\n", b"%0\r\n")
        error, *counts = talk.replies(incrs)
        assert isinstance(error, redis.ResponseError) and counts == list(range(1, 3001))


def test_a_reply_larger_than_the_buffer(client: redis.Redis, key_prefix: str) -> None:
    big = bytes(range(256)) * (12 * 1024)  # 3 MiB, CRLFs inside
    client.set(f"{key_prefix}big", big)
    raw, value, again = raw_replies(client, [("GET", f"{key_prefix}big")] * 3)
    assert raw == b"$%d\r\n%s\r\n" % (len(big), big) == value == again
    with Conversation(client) as talk:
        assert talk.replies(talk.send([("GET", f"{key_prefix}big"), ("PING",)])) == [big, b"PONG"]


def test_errors_come_back_as_their_redis_exceptions(client: redis.Redis) -> None:
    with Conversation(client) as talk:
        script = "return redis.error_reply('E x')"
        sent = talk.send([("EVALSHA", "0" * 40, 0), ("EVAL", script, 0)], raw=True)
        missing, failed = talk.replies(sent)
    assert isinstance(missing, redis.exceptions.NoScriptError)
    assert isinstance(failed, redis.ResponseError) and "x" in str(failed)


def test_a_dropped_connection_is_unavailable_and_the_pool_recovers(
    client: redis.Redis, key_prefix: str
) -> None:
    with Conversation(client) as talk:
        (ident,) = talk.replies(talk.send([("CLIENT", "ID")]))
        client.client_kill_filter(_id=ident)
        with pytest.raises(RedisUnavailable, match="redis: "):
            talk.replies(talk.send([("GET", f"{key_prefix}x")]))
    assert client.ping()


def test_attributes_are_skipped_raw_or_decoded() -> None:
    """RESP3 attributes (`|`) precede the reply they describe; Redis 7 sends one for
    DEBUG PROTOCOL attrib. Each reply stays the reply to its own command."""
    with RedisServer(options=("--enable-debug-command", "yes")) as server:
        client = server.client(protocol=3)
        client.set("k", "v")
        with Conversation(client) as talk:
            plain = talk.send([("DEBUG", "PROTOCOL", "attrib"), ("GET", "k")])
            raws = talk.send([("DEBUG", "PROTOCOL", "attrib"), ("GET", "k")], raw=True)
            decoded, value = talk.replies(plain)
            raw, raw_value = talk.replies(raws)
        assert (decoded, value) == (b"Some real reply following the attribute", b"v")
        assert raw.startswith(b"$") and _decoded(raw) == decoded
        assert raw_value == b"$1\r\nv\r\n"
        client.close()


def test_replies_are_asked_for_in_any_order(client: redis.Redis, key_prefix: str) -> None:
    """A later batch's replies can be asked for first: the earlier ones are kept for their
    tickets, raw or decoded as sent."""
    key = f"{key_prefix}n"
    with Conversation(client) as talk:
        first = talk.send([("INCR", key), ("INCR", key)])
        each = [
            talk.send([command], raw=True)
            for command in [("INCR", key), ("GET", key), ("INCR", key)]
        ]
        empty = talk.send([])
        last = talk.send([("INCR", key)])
        assert talk.replies(last) == [5]
        assert talk.replies(empty) == []
        assert [talk.replies(t) for t in reversed(each)] == [
            [b":4\r\n"],
            [b"$1\r\n3\r\n"],
            [b":3\r\n"],
        ]
        assert talk.replies(first) == [1, 2]
        with pytest.raises(ValueError, match="pending"):
            talk.replies(first)  # handed out once
    assert client.get(key) == b"5"
