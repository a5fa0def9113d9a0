"""The `driftmon` command: parse arguments, load settings once, run one command.

Pipeline position: the outermost edge. Each command is a function
``(args, load_settings) -> exit code``; it gets settings only through the loader it is
handed, so commands that need no configuration never read it, and tests pass a fake.
Adding a command = one ``_add_<name>`` parser function listed in `_COMMANDS` that sets
``handler`` on its subparser.

Exit codes: 0 pass, 1 gate failed (`compare --fail-on`), 2 usage or input error
(every `DriftmonError` and unwritable output files: one ``driftmon: error: ...`` line on
stderr, never a traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from monitor import __version__
from monitor.baseline import NumericProfile, build_baseline, load_baseline, write_baseline
from monitor.commands.demo import add_demo
from monitor.commands.drill import add_drill
from monitor.commands.run import add_run
from monitor.commands.simulate import add_simulate
from monitor.commands.status import add_status
from monitor.compare import compare
from monitor.errors import ConfigError, DriftmonError
from monitor.settings import Settings, load_settings
from monitor.severity import at_least
from monitor.tables import read_table

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

SettingsLoader = Callable[[Path | None], Settings]
Handler = Callable[[argparse.Namespace, SettingsLoader], int]

_SEVERITY_STYLE = {"ok": "green", "info": "cyan", "warning": "yellow", "critical": "bold red"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors (argparse printed them)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        _err("driftmon: error: choose a command")
        return EXIT_USAGE
    try:
        return handler(args, load_settings)
    except DriftmonError as exc:
        return _fail(str(exc))
    except OSError as exc:  # output files; inputs are mapped to InputError by the readers
        where = f" {exc.filename}" if exc.filename else ""
        return _fail(f"cannot write{where}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        _err("driftmon: interrupted")
        return EXIT_INTERRUPTED


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _fail(message: str) -> int:
    first_line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    _err(f"driftmon: error: {first_line}")
    return EXIT_USAGE


# --- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftmon", description="Streaming drift and data-quality monitor for ML models."
    )
    parser.add_argument("--version", action="version", version=f"driftmon {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in _COMMANDS:
        add(commands)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="YAML configuration (default: config/driftmon.yaml when it exists)",
    )


def _add_baseline(commands: Any) -> None:
    baseline = commands.add_parser("baseline", help="build and inspect reference profiles")
    actions = baseline.add_subparsers(title="actions", metavar="ACTION")
    build = actions.add_parser(
        "build", help="fit a baseline from a CSV, JSON Lines or Parquet file"
    )
    build.add_argument("--model", required=True, help="model name ([A-Za-z0-9_.-], 1-64 chars)")
    build.add_argument("--input", required=True, type=Path, metavar="FILE")
    build.add_argument("--output", required=True, type=Path, metavar="FILE")
    build.add_argument("--bins", type=int, default=10, metavar="K", help="numeric bins (10)")
    build.add_argument("--top-k", type=int, default=50, metavar="N", help="categories kept (50)")
    build.set_defaults(handler=cmd_baseline_build)
    show = actions.add_parser("show", help="summarise a baseline file")
    show.add_argument("file", type=Path, metavar="FILE")
    show.add_argument("--json", action="store_true", help="print the document as JSON")
    show.set_defaults(handler=cmd_baseline_show)


def _add_compare(commands: Any) -> None:
    cmp = commands.add_parser("compare", help="drift of a batch file against a baseline")
    cmp.add_argument("--baseline", required=True, type=Path, metavar="FILE")
    cmp.add_argument("--input", required=True, type=Path, metavar="FILE")
    cmp.add_argument("--format", choices=("table", "json"), default="table")
    cmp.add_argument(
        "--fail-on",
        choices=("info", "warning", "critical"),
        default=None,
        help="exit 1 when the overall severity reaches this level",
    )
    cmp.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="DIR",
        help="write reference-vs-current histograms (PNG) of features at warning or above "
        "into DIR (needs driftmon[plot])",
    )
    _config_option(cmp)
    cmp.set_defaults(handler=cmd_compare)


def _add_config(commands: Any) -> None:
    config = commands.add_parser("config", help="configuration tools")
    actions = config.add_subparsers(title="actions", metavar="ACTION")
    check = actions.add_parser("check", help="validate the configuration and its baselines")
    _config_option(check)
    check.set_defaults(handler=cmd_config_check)


_COMMANDS: list[Callable[[Any], None]] = [
    _add_baseline,
    _add_compare,
    _add_config,
    add_run,
    add_status,
    add_demo,
    add_simulate,
    add_drill,
]


# --- commands ------------------------------------------------------------------------------


def cmd_baseline_build(args: argparse.Namespace, _load: SettingsLoader) -> int:
    table = read_table(args.input)
    doc = build_baseline(
        args.model, table, bins=args.bins, top_k=args.top_k, source=Path(args.input).name
    )
    write_baseline(doc, args.output)
    _out(
        f"baseline {doc['id']} for model {args.model!r}: {doc['rows']} rows, "
        f"{len(doc['features'])} features -> {args.output}"
    )
    return EXIT_OK


def cmd_baseline_show(args: argparse.Namespace, _load: SettingsLoader) -> int:
    baseline = load_baseline(args.file)
    if args.json:
        _out(json.dumps(baseline.document, indent=2, ensure_ascii=False))
        return EXIT_OK
    doc = baseline.document
    console = _console()
    console.print(f"baseline {baseline.id}")
    console.print(
        f"model {baseline.model}  rows {doc['rows']}  created {doc.get('created_at', '?')}"
        f"  source {doc.get('source') or '?'}"
    )
    table = RichTable("feature", "type", "bins", "missing", "reference")
    for name, profile in baseline.features.items():
        if isinstance(profile, NumericProfile):
            summary = f"min {_num(profile.min)}  max {_num(profile.max)}"
        else:
            top = ", ".join(profile.categories[:5])
            summary = top + (", ..." if len(profile.categories) > 5 else "")
        table.add_row(
            escape(name),
            profile.kind,
            str(profile.nbins),
            _num(profile.missing_ratio),
            escape(summary),
        )
    console.print(table)
    if baseline.latency:
        quantiles = "  ".join(f"{k} {_num(v)}" for k, v in baseline.latency.items())
        console.print(f"latency_ms  {quantiles}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace, load: SettingsLoader) -> int:
    write_overlays = _plotter(args.plot) if args.plot else None  # fail before the slow part
    baseline = load_baseline(args.baseline)
    rules = load(args.config).rules_for(baseline.model)
    report = compare(baseline, read_table(args.input), rules)
    if args.format == "json":
        _out(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False))
    else:
        _print_report(report)
    if write_overlays is not None:
        # With --format json stdout carries only the report, so the paths go to stderr.
        say = _err if args.format == "json" else _out
        written = write_overlays(report, args.plot)
        for path in written:
            say(f"plot: {path}")
        if not written:
            say(f"plot: no feature reached warning; nothing written to {args.plot}")
    if args.fail_on and at_least(report["severity"], args.fail_on):
        _err(f"driftmon: gate failed: severity {report['severity']} reaches {args.fail_on}")
        return EXIT_GATE_FAILED
    return EXIT_OK


def _plotter(directory: Path) -> Callable[[dict[str, Any], Path], list[Path]]:
    """`monitor.plots.write_overlays` with `directory` created, or a one-line error."""
    try:
        from monitor.plots import write_overlays  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        if (exc.name or "").startswith("monitor"):
            raise
        raise ConfigError("--plot needs matplotlib: pip install 'driftmon[plot]'") from None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--plot {directory}: cannot create directory: {exc.strerror}") from None
    return write_overlays


def cmd_config_check(args: argparse.Namespace, load: SettingsLoader) -> int:
    settings = load(args.config)
    lines = []
    for name, model in settings.models.items():
        try:
            baseline = load_baseline(model.baseline)
        except DriftmonError as exc:
            raise type(exc)(f"models.{name}.baseline: {exc}") from None
        if baseline.model != name:
            lines.append(f"  warning: {model.baseline} was built for model {baseline.model!r}")
        lines.append(f"  model {name}: baseline {baseline.id} ({len(baseline.features)} features)")
    _out(f"configuration OK: {len(settings.models)} model(s)")
    for line in lines:
        _out(line)
    return EXIT_OK


# --- rendering -----------------------------------------------------------------------------


def _console() -> Console:
    # Off a terminal rich would wrap at 80 columns and cut numbers; reports stay whole.
    return Console(width=None if sys.stdout.isatty() else 200, soft_wrap=False)


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _print_report(report: dict[str, Any]) -> None:
    console = _console()
    severity = report["severity"]
    console.print(
        f"model {report['model']}  baseline {report['baseline_id']}  rows {report['rows']}"
        f"  invalid {report['invalid_rows']}  severity "
        f"[{_SEVERITY_STYLE[severity]}]{severity}[/]"
    )
    table = RichTable(
        "feature", "type", "psi", "js_distance", "missing", "out_of_range", "unseen", "severity"
    )
    for name, feat in report["features"].items():
        sev = feat["severity"] if feat["enough_samples"] else f"{feat['severity']} (few samples)"
        table.add_row(
            escape(name),
            feat["type"],
            _num(feat["psi"]),
            _num(feat["js_distance"]),
            _num(feat["missing_ratio"]),
            _num(feat["out_of_range_ratio"]),
            _num(feat["unseen_ratio"]),
            f"[{_SEVERITY_STYLE[feat['severity']]}]{sev}[/]",
        )
    console.print(table)
    if report["ignored_features"]:
        console.print(f"ignored (not in baseline): {', '.join(report['ignored_features'])}")
    latency = report.get("latency_ms")
    if latency and latency["current"]:
        ref = latency["reference"] or {}
        cells = [
            f"{q} {_num(v, 2)} (ref {_num(ref.get(q), 2)})" for q, v in latency["current"].items()
        ]
        console.print("latency_ms  " + "  ".join(cells))
