"""driftmon benchmarks: `python -m bench` (`make bench`) runs them and rewrites BENCHMARKS.md.

Benchmarks are measurements, not tests: nothing here fails a build. Each one reports a
median over several runs next to its PERF.md target, and says plainly when it misses.

Layout
------
- ``bench/__main__.py``  command line: pick modules, run them, write the report
- ``bench/core.py``      ``Row``, ``Target``, ``Config`` and the timing helper ``measure``
- ``bench/report.py``    machine description and the Markdown report
- ``bench/kernels.py``   numba kernels: binning, PSI + JSD, latency histogram

Adding a benchmark module (e.g. an end-to-end Kafka -> Redis run)
-----------------------------------------------------------------
1. Create ``bench/<name>.py`` with a module docstring (its first line is the section
   title in BENCHMARKS.md; the rest is printed under it as notes) and a function::

       def run(config: Config) -> list[Row]: ...

   Build each row with ``Row.from_samples(name, samples, unit, target)``, where
   ``samples`` holds one value per run (``config.repeat`` runs; ``measure`` times a
   callable that way and returns seconds per call). A ``Target`` such as
   ``Target(">=", 250_000)`` marks the row met or missed; leave it out for context
   rows (baselines, ratios). Start services with ``tests.services`` and stop them
   before returning; warm up (JIT, connections, topic creation) before timing.
2. Append ``"<name>"`` to ``MODULES`` below. That is all: ``python -m bench`` runs it,
   ``python -m bench <name>`` runs it alone (printing, not rewriting BENCHMARKS.md).
"""

from __future__ import annotations

# Run in this order; each name is a module of this package exposing run(config).
MODULES: tuple[str, ...] = ("kernels", "stream", "scaling", "evaluate", "peers", "soak")
