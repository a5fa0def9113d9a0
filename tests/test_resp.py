"""RESP framing (`monitor.resp`): where replies end, checked against hiredis's reading."""

from __future__ import annotations

import hiredis
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.resp import MALFORMED, frame_ends, skip_attributes, split_array


def _bulk(data: bytes, kind: bytes = b"$") -> bytes:
    return b"%s%d\r\n%s\r\n" % (kind, len(data), data)


_SCALARS = st.one_of(
    st.binary(max_size=40).map(_bulk),  # bulk string, CRLF inside allowed
    st.binary(max_size=20).map(lambda b: _bulk(b"txt:" + b, b"=")),  # RESP3 verbatim
    st.integers(-(2**63), 2**63 - 1).map(lambda n: b":%d\r\n" % n),
    st.sampled_from([b"+OK\r\n", b"-ERR wrong\r\n", b"$-1\r\n", b"*-1\r\n", b"_\r\n"]),
    st.sampled_from(
        [b"#t\r\n", b",1.5\r\n", b",inf\r\n", b"(3492890328409238509324850943850943825024385\r\n"]
    ),
)


_KEYS = st.one_of(  # a map's keys: what hiredis can put in a dict
    st.binary(max_size=10).map(_bulk), st.integers(-5, 5).map(lambda n: b":%d\r\n" % n)
)


def _aggregate(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    items = st.lists(children, max_size=6)
    return st.one_of(
        items.map(lambda xs: b"*%d\r\n" % len(xs) + b"".join(xs)),
        items.map(lambda xs: b"~%d\r\n" % len(xs) + b"".join(xs)),
        st.lists(st.tuples(_KEYS, children), max_size=4).map(
            lambda ps: b"%%%d\r\n" % len(ps) + b"".join(k + v for k, v in ps)
        ),
    )


REPLIES = st.recursive(_SCALARS, _aggregate, max_leaves=30)


def _frames(data: bytes, start: int = 0, stop: int | None = None) -> list[int]:
    ends = np.empty(64, dtype=np.int64)
    array = np.frombuffer(data, dtype=np.uint8)
    found = frame_ends(array, start, len(data) if stop is None else stop, ends)
    assert found != MALFORMED
    return ends[:found].tolist()


@settings(max_examples=300, deadline=None)
@given(st.lists(REPLIES, min_size=1, max_size=8), st.data())
def test_frames_end_where_the_replies_end(replies: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(replies)
    bounds = np.cumsum([len(r) for r in replies]).tolist()
    assert _frames(stream) == bounds
    cut = data.draw(st.integers(0, len(stream)))  # what has arrived so far
    assert _frames(stream, stop=cut) == [b for b in bounds if b <= cut]
    reader = hiredis.Reader()
    reader.feed(stream)  # and each frame reads as hiredis reads that reply
    for start, end in zip([0, *bounds], bounds, strict=False):
        one = hiredis.Reader()
        one.feed(stream[start:end])
        got, want = one.gets(), reader.gets()
        assert repr(got) == repr(want)  # repr: error replies are distinct objects
        assert one.gets() is False


@pytest.mark.parametrize(
    "data",
    [
        b"?x\r\n",
        b"$abc\r\nxyz\r\n",
        b"$3\r\nabcd\r\n",
        b"*x\r\n",
        b"$-2\r\n",
        b"$9223372036854775807\r\nab\r\n",  # would wrap int64 (read out of bounds)
        b"*999999999999999999\r\n" * 6,  # counts whose sum would wrap
    ],
)
def test_bytes_that_are_not_resp_are_malformed(data: bytes) -> None:
    ends = np.empty(4, dtype=np.int64)
    assert frame_ends(np.frombuffer(data, dtype=np.uint8), 0, len(data), ends) == MALFORMED


def test_frames_stop_at_the_room_given() -> None:
    data = np.frombuffer(b":1\r\n" * 10, dtype=np.uint8)
    ends = np.empty(3, dtype=np.int64)
    assert frame_ends(data, 0, len(data), ends) == 3 and ends.tolist() == [4, 8, 12]
    assert frame_ends(data, 12, len(data), ends) == 3 and ends.tolist() == [16, 20, 24]


def test_split_array() -> None:
    parts = [_bulk(b"a\r\nb"), b"*0\r\n", b"*2\r\n:1\r\n$-1\r\n"]
    assert split_array(b"*3\r\n" + b"".join(parts)) == parts
    assert split_array(b"*0\r\n") == []
    for bad in (b"", b"$1\r\na\r\n", b"*2\r\n:1\r\n", b"*1\r\n:1\r\n:2\r\n", b"*-1\r\n", b"*z\r\n"):
        with pytest.raises(ValueError, match="not an array reply"):
            split_array(bad)


def test_skip_attributes() -> None:
    reply = _bulk(b"real")
    attribute = b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.5\r\n"
    for frame in (reply, attribute + reply, attribute + attribute + reply, b"|0\r\n" + reply):
        data = np.frombuffer(b"xx" + frame, dtype=np.uint8)
        assert _frames(b"xx" + frame, start=2) == [len(frame) + 2]
        assert skip_attributes(data, 2, len(data)) == len(data) - len(reply)
