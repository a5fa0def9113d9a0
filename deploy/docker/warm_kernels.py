"""Compile every numba kernel once so the image ships its machine code (Dockerfile).

Run at image build time with NUMBA_CACHE_DIR set: each public kernel wrapper is called
with the dtypes the daemon uses (float64 / int64, C-contiguous), which compiles the
jitted function behind it and writes it to the cache. A restart then loads machine
code instead of paying the JIT again.

The script fails (exit 1, naming the function) when a jitted function in
`monitor.kernels` or in `OTHER_MODULES` was not compiled, so a kernel added without a
warm-up call here breaks the image build instead of silently compiling on every pod
start (tests/deploy checks that every module using `@kernel` is one of those).

`--expect-cached` checks the opposite side: every kernel was loaded from the cache, none
compiled (exit 1 otherwise). Tests use it to prove a copied cache is usable.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import numpy as np
from numba.core.registry import CPUDispatcher

from monitor import kernels, resp
from monitor.window import cache, raw_hash

# Kernels that live beside the I/O they serve rather than in `monitor.kernels`.
OTHER_MODULES = ("monitor.resp", "monitor.window.raw_hash", "monitor.window.cache")


def warm() -> None:
    """Call each kernel wrapper once with small, valid inputs."""
    values = np.array([[0.5, np.nan], [2.0, 7.0], [9.0, 1.0]])
    edges = kernels.pad_edges([np.array([1.0, 3.0]), np.array([5.0])])
    kernels.bin_matrix(values, edges, np.array([0.0, 0.0]), np.array([10.0, 10.0]))
    kernels.bin_numeric(np.array([0.5, 2.0]), np.array([1.0]))
    kernels.count_codes(np.array([0, 1, -1]), 2)

    ref = np.array([10.0, 20.0, 30.0])
    cur = np.array([12.0, 18.0, 33.0])
    kernels.psi(ref, cur)
    kernels.js_divergence(ref, cur)
    kernels.js_distance(ref, cur)
    kernels.divergence_rows(np.vstack([ref, ref]), np.vstack([cur, cur]), np.array([3, 2]))

    histogram = kernels.new_histogram()
    kernels.insert_latencies(histogram, np.array([1.0, 8.0, 40.0]))
    kernels.latency_quantiles(histogram, (0.5, 0.95, 0.99))

    kernels.quality_ratios(np.array([10.0, 4.0]), np.array([1.0, 0.0]), np.array([2.0, 1.0]))

    resp.split_array(b"*2\r\n:1\r\n$1\r\nx\r\n")  # frame_ends
    table = raw_hash.SlotTable.build([(b"n", 0), (b"ign", -1)])
    raw_hash.scatter_resp(
        table, b"*4\r\n$1\r\nn\r\n$1\r\n2\r\n$1\r\nx\r\n$1\r\n3\r\n", np.zeros(1, np.int64)
    )
    data = np.frombuffer(b"$1\r\n2\r\n", dtype=np.uint8)  # helpers of _scatter, called
    resp.integer_at(data, 4, 5)  # alone too: a cached _scatter does not compile them
    resp.bulk_at(data, 0)
    slots = np.array([0], dtype=np.int32)
    for values in (np.array([1], dtype=np.int32), np.array([1], dtype=np.int64)):  # _Bucket's
        cache._add_sparse(np.zeros(1, dtype=np.int64), slots, values, 1)


def dispatchers() -> dict[str, CPUDispatcher]:
    """Every jitted function defined in a `monitor.kernels` module or in `OTHER_MODULES`,
    by qualified name."""
    found = {}
    names = [info.name for info in pkgutil.iter_modules(kernels.__path__, "monitor.kernels.")]
    for module_name in [*names, *OTHER_MODULES]:
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and obj.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = obj
    return found


def main(argv: list[str]) -> int:
    warm()
    jitted = dispatchers()
    missing = sorted(name for name, d in jitted.items() if not d.signatures)
    if missing:
        print(f"warm_kernels: not compiled, add a call to warm(): {missing}", file=sys.stderr)  # noqa: T201
        return 1
    if "--expect-cached" in argv:
        compiled = sorted(name for name, d in jitted.items() if d.stats.cache_misses)
        if compiled:
            print(f"warm_kernels: compiled, not loaded from cache: {compiled}", file=sys.stderr)  # noqa: T201
            return 1
        print(f"warm_kernels: {len(jitted)} kernels loaded from the cache")  # noqa: T201
        return 0
    print(f"warm_kernels: {len(jitted)} kernels compiled and cached")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
