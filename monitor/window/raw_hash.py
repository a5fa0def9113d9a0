"""A bucket hash as Redis sends it -> flat counts in one pass (numba). Read side of the store.

The evaluator reads a bucket with `HGETALL` and keeps the reply as the bytes Redis sent
(`monitor.conversation`): `*2n` (RESP2) or `%n` (RESP3), then name, value, name, value,
... each a bulk string `$len\\r\\n<bytes>\\r\\n`. `SlotTable` is an open-addressing hash
table of a layout's field names: FNV-1a 64 over the UTF-8 bytes, and a byte-by-byte
comparison on every hit, so no two names can be confused. `scatter_resp` walks the bytes
once, adds each known field's value to its slot, and returns the names it does not know,
for `monitor.window.counts` to classify by the hash's grammar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.kernels._jit import kernel
from monitor.resp import MALFORMED, bulk_at, integer_at

IntArray = npt.NDArray[np.int64]
ByteArray = npt.NDArray[np.uint8]

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_CR, _LF, _STAR, _PERCENT = 13, 10, 42, 37
_UNKNOWN = -2
_MIN_FIELD = 13  # bytes of the smallest field: `$0\r\n\r\n$1\r\n5\r\n`


@kernel
def _fnv1a(data: ByteArray, start: int, stop: int) -> np.uint64:
    h = _FNV_OFFSET
    for i in range(start, stop):
        h = (h ^ np.uint64(data[i])) * _FNV_PRIME
    return h


@kernel
def _scatter(
    data: ByteArray,
    hashes: npt.NDArray[np.uint64],
    entries: IntArray,
    names: ByteArray,
    offsets: IntArray,
    slots: IntArray,
    flat: IntArray,
    unknown: IntArray,
) -> tuple[int, int]:
    """Add every known field to `flat`; (start, stop, value) of unknown ones to `unknown`.

    Returns (how many fields, how many unknown); MALFORMED, 0 if the bytes are not a
    hash of integer values as HGETALL replies it.
    """
    n = data.shape[0]
    if n == 0 or (data[0] != _STAR and data[0] != _PERCENT):
        return MALFORMED, 0
    i = 1
    while i < n and data[i] != _CR:
        i += 1
    ok, count = integer_at(data, 1, i)
    i += 2
    if not ok or count < 0 or i > n or data[i - 1] != _LF:
        return MALFORMED, 0
    if data[0] == _STAR:
        if count % 2:
            return MALFORMED, 0
        count //= 2
    mask = hashes.shape[0] - 1
    found = 0
    for _ in range(count):
        start, stop = bulk_at(data, i)
        if start < 0:
            return MALFORMED, 0
        value_start, value_stop = bulk_at(data, stop + 2)
        if value_start < 0:
            return MALFORMED, 0
        ok, value = integer_at(data, value_start, value_stop)
        if not ok:
            return MALFORMED, 0
        i = value_stop + 2
        # The name's slot. Inline: as a function taking the table's arrays, it ran 1.5x
        # slower (numba does not inline it).
        h = _FNV_OFFSET
        for k in range(start, stop):
            h = (h ^ np.uint64(data[k])) * _FNV_PRIME
        pos = np.int64(h & np.uint64(mask))
        slot = _UNKNOWN
        while entries[pos] >= 0:
            e = entries[pos]
            if hashes[pos] == h and offsets[e + 1] - offsets[e] == stop - start:
                same = True
                for k in range(stop - start):
                    if names[offsets[e] + k] != data[start + k]:
                        same = False
                        break
                if same:
                    slot = slots[e]
                    break
            pos = (pos + 1) & mask
        if slot >= 0:
            flat[slot] += value
        elif slot == _UNKNOWN:
            if 3 * found + 2 >= unknown.shape[0]:
                return MALFORMED, 0  # more fields than the bytes hold: repeated names
            unknown[3 * found] = start
            unknown[3 * found + 1] = stop
            unknown[3 * found + 2] = value
            found += 1
    if i != n:
        return MALFORMED, 0
    return count, found


@dataclass(frozen=True, eq=False)
class SlotTable:
    """Field name -> slot (negative: known but not counted), for `scatter_resp`."""

    hashes: npt.NDArray[np.uint64]
    entries: IntArray  # per table position: index of the name there, -1 empty
    names: ByteArray  # every name's bytes, concatenated
    offsets: IntArray  # name e is names[offsets[e]:offsets[e + 1]]
    slots: IntArray

    @classmethod
    def build(cls, fields: Sequence[tuple[bytes, int]]) -> SlotTable:
        capacity = 1 << max(4, (2 * len(fields)).bit_length())
        hashes = np.zeros(capacity, dtype=np.uint64)
        entries = np.full(capacity, -1, dtype=np.int64)
        names = np.frombuffer(b"".join(name for name, _ in fields), dtype=np.uint8)
        lengths = [len(name) for name, _ in fields]
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
        for e, (name, _) in enumerate(fields):
            h = _fnv1a(np.frombuffer(name, dtype=np.uint8), 0, len(name))
            pos = int(h) & (capacity - 1)
            while entries[pos] >= 0:
                pos = (pos + 1) & (capacity - 1)
            hashes[pos], entries[pos] = h, e
        slots = np.array([slot for _, slot in fields], dtype=np.int64)
        return cls(hashes, entries, names.copy(), offsets, slots)


def scatter_resp(
    table: SlotTable, raw: bytes, flat: IntArray
) -> tuple[int, list[tuple[bytes, int]]]:
    """Add the known fields of an HGETALL reply (`raw`, as sent) to `flat`; return how
    many fields it has and the unknown (name, value) pairs.

    Raises ValueError when `raw` is not a hash reply whose values are all integers.
    """
    data = np.frombuffer(raw, dtype=np.uint8)
    unknown = np.empty(3 * (len(raw) // _MIN_FIELD + 1), dtype=np.int64)
    fields, found = _scatter(
        data, table.hashes, table.entries, table.names, table.offsets, table.slots, flat, unknown
    )
    if fields == MALFORMED:
        raise ValueError("not an HGETALL reply of integer values")
    rows = unknown[: 3 * found].reshape(found, 3).tolist()
    return fields, [(raw[start:stop], value) for start, stop, value in rows]
