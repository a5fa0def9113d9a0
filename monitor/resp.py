"""Where Redis replies end in a byte stream (numba, pure): the framing half of a RESP reader.

`monitor.conversation` reads replies off the socket itself so that it can hand a bucket
hash to `monitor.window.raw_hash.scatter_resp` as the bytes Redis sent, without a Python
object per field; every other reply it decodes with hiredis, one frame at a time.

A reply is a header line (a type byte, then text up to CRLF), and for bulk strings their
bytes and a CRLF. Aggregates announce how many replies follow, so a reply ends when the
count of replies still owed reaches zero: no stack is needed. RESP2 and RESP3 types.
`bulk_at` and `integer_at` read one bulk string and one decimal integer, for kernels that
walk a reply's elements (`monitor.window.raw_hash`).
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from monitor.kernels._jit import kernel

ByteArray = npt.NDArray[np.uint8]
IntArray = npt.NDArray[np.int64]

MALFORMED = -1
_CR, _LF, _MINUS, _DOLLAR = 13, 10, 45, 36
_MAX_DIGITS = 18  # lengths and counts below 10**18: no int64 sum of them can wrap
_MAX_OWED = 1 << 62
# What follows a reply's header line, by its type byte (0: not a RESP type).
_INVALID, _LINE, _BULK, _AGGREGATE, _PAIRS, _ATTRIBUTE = range(6)
_KINDS = np.zeros(256, dtype=np.int64)
for _types, _kind in (
    (b"+-:_,#(", _LINE),  # nothing: the line is the reply
    (b"$=!", _BULK),  # the length given, then CRLF (no bytes for -1: a nil)
    (b"*~>", _AGGREGATE),  # n replies
    (b"%", _PAIRS),  # 2n replies
    (b"|", _ATTRIBUTE),  # 2n replies, then the reply they describe
):
    _KINDS[list(_types)] = _kind


@kernel
def integer_at(data: ByteArray, start: int, stop: int) -> tuple[bool, int]:
    """(is it one, its value) for the decimal integer data[start:stop]."""
    sign = 1
    i = start
    if i < stop and data[i] == _MINUS:
        sign = -1
        i += 1
    if i >= stop:
        return False, 0
    value = 0
    while i < stop:
        d = int(data[i]) - 48
        if d < 0 or d > 9:
            return False, 0
        value = value * 10 + d
        i += 1
    return True, sign * value


@kernel
def bulk_at(data: ByteArray, i: int) -> tuple[int, int]:
    """(start, stop) of the bulk string `$<len>\\r\\n<bytes>\\r\\n` at i; -1, -1 if none."""
    n = data.shape[0]
    if i >= n or data[i] != _DOLLAR:
        return -1, -1
    i += 1
    length = 0
    digits = 0
    while i < n and data[i] != _CR:
        d = int(data[i]) - 48
        if d < 0 or d > 9 or digits == _MAX_DIGITS:
            return -1, -1
        length = length * 10 + d
        digits += 1
        i += 1
    start = i + 2
    stop = start + length
    if digits == 0 or stop + 2 > n or data[i + 1] != _LF:
        return -1, -1
    if data[stop] != _CR or data[stop + 1] != _LF:
        return -1, -1
    return start, stop


@kernel
def frame_ends(data: ByteArray, start: int, stop: int, ends: IntArray) -> int:
    """How many complete replies data[start:stop] begins with (at most len(ends)); the
    end (exclusive) of each goes to `ends`. MALFORMED if the bytes are not RESP."""
    found = 0
    pos = start
    while found < ends.shape[0] and pos < stop:
        owed = 1
        i = pos
        while owed > 0:
            if i >= stop:
                return found  # the rest has not arrived yet
            kind = _KINDS[data[i]]
            if kind == _INVALID:
                return MALFORMED
            owed -= 1
            i += 1
            if kind == _LINE:  # up to CRLF
                while i < stop and data[i] != _LF:
                    i += 1
                if i >= stop:
                    return found
                if data[i - 1] != _CR:
                    return MALFORMED
                i += 1
                continue
            sign, n, digits = 1, 0, 0  # the length, in the same pass
            if i < stop and data[i] == _MINUS:
                sign = -1
                i += 1
            while i < stop and data[i] != _CR:
                d = int(data[i]) - 48
                if d < 0 or d > 9 or digits == _MAX_DIGITS:
                    return MALFORMED
                n = n * 10 + d
                digits += 1
                i += 1
            if i + 1 >= stop:
                return found
            n *= sign
            if data[i + 1] != _LF or digits == 0 or n < -1:
                return MALFORMED
            i += 2
            if kind == _BULK:
                if n >= 0:
                    if i + n + 2 > stop:
                        return found
                    if data[i + n] != _CR or data[i + n + 1] != _LF:
                        return MALFORMED
                    i += n + 2
            elif kind == _AGGREGATE:
                owed += max(n, 0)
            elif kind == _PAIRS:
                owed += 2 * max(n, 0)
            else:  # _ATTRIBUTE
                owed += 2 * max(n, 0) + 1
            if owed > _MAX_OWED:
                return MALFORMED
        ends[found] = i
        found += 1
        pos = i
    return found


def split_array(raw: bytes) -> list[bytes]:
    """The elements of an array reply (`*n`), each as the bytes Redis sent.

    Raises ValueError when `raw` is not exactly one array reply.
    """
    header = raw.find(b"\r\n") + 2
    try:
        n = int(raw[1 : header - 2]) if raw[:1] == b"*" and header > 1 else -1
    except ValueError:
        n = -1
    if n < 0:
        raise ValueError("not an array reply")
    ends = np.empty(n, dtype=np.int64)
    if frame_ends(np.frombuffer(raw, dtype=np.uint8), header, len(raw), ends) != n or (
        (ends[-1] if n else header) != len(raw)
    ):
        raise ValueError(f"not an array reply of {n} elements")
    bounds = [header, *ends.tolist()]
    return [raw[a:b] for a, b in itertools.pairwise(bounds)]


_ATTRIBUTE_TYPE = ord("|")


def skip_attributes(data: ByteArray, start: int, stop: int) -> int:
    """Where the reply in the frame data[start:stop] begins, past any RESP3 attributes
    (`|`: metadata about the reply that follows, which nothing here uses)."""
    while data[start] == _ATTRIBUTE_TYPE:
        frame = data[start:stop].tobytes()
        header = frame.index(b"\r\n") + 2
        ends = np.empty(2 * int(frame[1 : header - 2]), dtype=np.int64)
        if frame_ends(data, start + header, stop, ends) != len(ends):
            raise ValueError("an attribute without the reply it describes")
        start = int(ends[-1]) if len(ends) else start + header
    return start
