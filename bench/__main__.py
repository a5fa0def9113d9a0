"""``python -m bench [module ...]``: run benchmark modules and write BENCHMARKS.md.

With no module names every module in ``bench.MODULES`` runs and BENCHMARKS.md is
rewritten; with names only those run and the tables are printed (pass ``--output``
to write them anyway). Raw results also go to ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import sys
import time
from pathlib import Path

from bench import MODULES
from bench.core import Config
from bench.report import Section, machine, render, replace_sections, speed_probe

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULTS = Config()


def run_module(name: str, config: Config) -> Section:
    module = importlib.import_module(f"bench.{name}")
    title, _, notes = (inspect.getdoc(module) or name).partition("\n")
    print(f"== {name}: {title}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        rows = module.run(config)
    except Exception as exc:  # one failed module must not void the others
        error = f"{type(exc).__name__}: {exc}"
        print(f"   FAILED: {error}", file=sys.stderr, flush=True)
        return Section(name, title.strip(), notes.strip(), [], time.perf_counter() - start, error)
    for row in rows:
        print(f"   {row.name}: {row.value:.4g} {row.unit}", file=sys.stderr, flush=True)
    return Section(name, title.strip(), notes.strip(), rows, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run benchmark modules and write BENCHMARKS.md."
    )
    parser.add_argument(
        "modules", nargs="*", metavar="module", help=f"any of: {', '.join(MODULES)} (default: all)"
    )
    parser.add_argument("--repeat", type=int, default=DEFAULTS.repeat, help="runs per benchmark")
    parser.add_argument(
        "--min-run", type=float, default=DEFAULTS.min_run_s, help="minimum seconds per run"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small inputs, print only (smoke test)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="report path (default: BENCHMARKS.md for a full run, else print only)",
    )
    parser.add_argument(
        "--update",
        type=Path,
        help="replace only these modules' sections in an existing report (e.g. BENCHMARKS.md), "
        "each marked with its own date and command",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:
        parser.error(
            f"unknown benchmark module(s) {', '.join(unknown)}; known: {', '.join(MODULES)}"
        )

    config = Config(repeat=args.repeat, min_run_s=args.min_run, quick=args.quick)
    names = args.modules or list(MODULES)
    info = machine()
    sections = [run_module(name, config) for name in names]
    info["single-core speed at end"] = speed_probe()

    command = " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)])
    if args.update is not None:
        when = (
            f"Measured apart from the rest: {info['date (UTC)']} UTC, `{command}`, load average "
            f"at start {info.get('load average (1/5/15 min) at start', '?')}; compare with "
            "other sections with care."
        )
        report = replace_sections(args.update.read_text(), sections, when)
    else:
        report = render(sections, info, command, config)
    full_run = not args.modules and not args.quick
    output = args.output or args.update or (ROOT / "BENCHMARKS.md" if full_run else None)
    if output is None:
        print(report)
    else:
        output.write_text(report)
        print(f"wrote {output}", file=sys.stderr)
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = {
        "machine": info,
        "command": command,
        "config": dataclasses.asdict(config),
        "sections": [dataclasses.asdict(s) for s in sections],
    }
    (RESULTS / "latest.json").write_text(json.dumps(raw, indent=2, default=str))
    failed = [s.module for s in sections if s.error]
    if failed:
        print(f"failed: {', '.join(failed)} (see the report)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
