"""Packed bucket hashes -> flat counts in one pass (numba). Read side of the window store.

`monitor.window.store.read_packed` returns a bucket hash as name, value, name, value, ...
joined by 0xFF (a byte UTF-8 never contains). `SlotTable` is an open-addressing hash
table of a layout's field names: FNV-1a 64 over the UTF-8 bytes, and a byte-by-byte
comparison on every hit, so no two names can be confused. `scatter_packed` walks the
bytes once, adds each known field's value to its slot, and returns the names it does not
know, for `monitor.window.counts` to classify by the hash's grammar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.kernels._jit import kernel

IntArray = npt.NDArray[np.int64]
ByteArray = npt.NDArray[np.uint8]

_SEP = 0xFF
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
MALFORMED = -1


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
) -> int:
    """Add every known field to `flat`; (start, stop, value) of unknown ones to `unknown`.

    Returns how many unknown fields there are, or MALFORMED.
    """
    n = data.shape[0]
    mask = hashes.shape[0] - 1
    found = 0
    i = 0
    while i < n:
        start = i
        while i < n and data[i] != _SEP:
            i += 1
        stop = i
        if i >= n:
            return MALFORMED  # a name without a value
        i += 1
        sign = 1
        if i < n and data[i] == 45:  # '-'
            sign = -1
            i += 1
        value = 0
        digits = 0
        while i < n and data[i] != _SEP:
            d = int(data[i]) - 48
            if d < 0 or d > 9:
                return MALFORMED
            value = value * 10 + d
            digits += 1
            i += 1
        if digits == 0:
            return MALFORMED
        i += 1  # past the separator (or the end)
        h = _fnv1a(data, start, stop)
        pos = np.int64(h & np.uint64(mask))
        slot = -2  # unknown
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
            flat[slot] += sign * value
        elif slot == -2:
            unknown[3 * found] = start
            unknown[3 * found + 1] = stop
            unknown[3 * found + 2] = sign * value
            found += 1
    return found


@dataclass(frozen=True, eq=False)
class SlotTable:
    """Field name -> slot (negative: known but not counted), for `scatter_packed`."""

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


def scatter_packed(table: SlotTable, packed: bytes, flat: IntArray) -> list[tuple[bytes, int]]:
    """Add a packed hash's known fields to `flat`; return the unknown (name, value) pairs.

    Raises ValueError when `packed` does not alternate names and integer values.
    """
    if not packed:
        return []
    data = np.frombuffer(packed, dtype=np.uint8)
    unknown = np.empty(3 * (packed.count(b"\xff") // 2 + 1), dtype=np.int64)
    found = _scatter(
        data, table.hashes, table.entries, table.names, table.offsets, table.slots, flat, unknown
    )
    if found == MALFORMED:
        raise ValueError("a packed hash must alternate names and integer values")
    rows = unknown[: 3 * found].reshape(found, 3).tolist()
    return [(packed[start:stop], value) for start, stop, value in rows]
