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
        talk.send([("GET", f"{key_prefix}s"), ("HLEN", f"{key_prefix}h")])
        talk.send([("HGETALL", f"{key_prefix}h"), ("HGETALL", f"{key_prefix}none")], raw=True)
        talk.send([("INCR", f"{key_prefix}s")] + [("INCR", f"{key_prefix}n")] * 3000)
        value, length, raw, missing = talk.receive(4)
        assert (value, length) == (b"v", 600)
        as_read = _decoded(raw)  # a flat list (RESP2) or a dict (RESP3)
        pairs = (
            dict(zip(as_read[::2], as_read[1::2], strict=True))
            if isinstance(as_read, list)
            else as_read
        )
        assert pairs == fields
        assert missing in (b"*0\r\n", b"%0\r\n")
        error, *counts = talk.receive(3001)
        assert isinstance(error, redis.ResponseError) and counts == list(range(1, 3001))


def test_a_reply_larger_than_the_buffer(client: redis.Redis, key_prefix: str) -> None:
    big = bytes(range(256)) * (12 * 1024)  # 3 MiB, CRLFs inside
    client.set(f"{key_prefix}big", big)
    raw, value, again = raw_replies(client, [("GET", f"{key_prefix}big")] * 3)
    assert raw == b"$%d\r\n%s\r\n" % (len(big), big) == value == again
    with Conversation(client) as talk:
        talk.send([("GET", f"{key_prefix}big"), ("PING",)])
        assert talk.receive(2) == [big, b"PONG"]


def test_errors_come_back_as_their_redis_exceptions(client: redis.Redis) -> None:
    with Conversation(client) as talk:
        script = "return redis.error_reply('E x')"
        talk.send([("EVALSHA", "0" * 40, 0), ("EVAL", script, 0)], raw=True)
        missing, failed = talk.receive(2)
    assert isinstance(missing, redis.exceptions.NoScriptError)
    assert isinstance(failed, redis.ResponseError) and "x" in str(failed)


def test_a_dropped_connection_is_unavailable_and_the_pool_recovers(
    client: redis.Redis, key_prefix: str
) -> None:
    with Conversation(client) as talk:
        talk.send([("CLIENT", "ID")])
        (ident,) = talk.receive(1)
        client.client_kill_filter(_id=ident)
        with pytest.raises(RedisUnavailable, match="redis: "):
            talk.send([("GET", f"{key_prefix}x")])
            talk.receive(1)
    assert client.ping()


def test_attributes_are_skipped_raw_or_decoded() -> None:
    """RESP3 attributes (`|`) precede the reply they describe; Redis 7 sends one for
    DEBUG PROTOCOL attrib. Each reply stays the reply to its own command."""
    with RedisServer(options=("--enable-debug-command", "yes")) as server:
        client = server.client(protocol=3)
        client.set("k", "v")
        with Conversation(client) as talk:
            talk.send([("DEBUG", "PROTOCOL", "attrib"), ("GET", "k")])
            talk.send([("DEBUG", "PROTOCOL", "attrib"), ("GET", "k")], raw=True)
            decoded, value, raw, raw_value = talk.receive(4)
        assert (decoded, value) == (b"Some real reply following the attribute", b"v")
        assert raw.startswith(b"$") and _decoded(raw) == decoded
        assert raw_value == b"$1\r\nv\r\n"
        client.close()
