"""`driftmon status [--model M] [--json]`: the current state, read from Redis (SPEC §4, §7).

Reads the state documents the evaluator writes (`<prefix>:{<model>}:state`), so it shows
exactly what `redis-cli`, `/state` and the Prometheus gauges show.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from monitor.app import redis_client
from monitor.errors import InputError
from monitor.states import read_states
from monitor.window.keys import Keys

_STYLE = {"ok": "green", "info": "cyan", "warning": "yellow", "critical": "bold red"}


def add_status(commands: Any) -> None:
    """Register the `status` subcommand."""
    parser = commands.add_parser("status", help="show drift state and active alerts from Redis")
    parser.add_argument("--config", type=Path, default=None, help="YAML configuration file")
    parser.add_argument("--model", default=None, help="only this model")
    parser.add_argument("--json", action="store_true", help="print the state document(s) as JSON")
    parser.set_defaults(handler=_status)


def _status(args: argparse.Namespace, load: Any) -> int:
    settings = load(args.config)
    client = redis_client(settings.redis)
    keys = Keys(settings.redis.key_prefix)
    try:
        if args.model is not None:
            doc = read_states(client, keys, args.model)
            if not doc:
                raise InputError(
                    f"no state for model {args.model!r} under {keys.state(args.model)} "
                    "(not configured, or the daemon has not evaluated it yet)"
                )
            states = {args.model: doc}
        else:
            states = read_states(client, keys)
    finally:
        client.close()
    if args.json:
        body = states[args.model] if args.model is not None else states
        sys.stdout.write(json.dumps(body, indent=2, sort_keys=True) + "\n")
        return 0
    console = Console(highlight=False)
    if not states:
        console.print("no model state in Redis yet (is `driftmon run` running?)")
    for model, doc in states.items():
        render(console, model, doc)
    return 0


def render(console: Console, model: str, doc: dict[str, Any]) -> None:
    """Tables for one model's state document."""
    sev = doc.get("severity", "ok")
    console.print(
        f"[bold]{escape(model)}[/]  severity [{_STYLE.get(sev, '')}]{sev}[/]  "
        f"evaluated {doc.get('evaluated_at', '?')}  baseline {doc.get('baseline_id', '?')[:19]}"
    )
    for window, w in doc.get("windows", {}).items():
        lat = w.get("latency_ms") or {}
        table = Table(
            title=(
                f"window {window}: {w.get('events', 0)} events, "
                f"{w.get('events_per_second', 0.0):.1f}/s, latency p50/p95/p99 "
                f"{_fmt(lat.get('p50'))}/{_fmt(lat.get('p95'))}/{_fmt(lat.get('p99'))} ms"
            ),
            title_justify="left",
        )
        for col in (
            "feature",
            "psi",
            "js_distance",
            "missing",
            "out_of_range",
            "unseen",
            "severity",
        ):
            table.add_column(col, justify="left" if col == "feature" else "right")
        for name, f in sorted(w.get("features", {}).items()):
            s = f.get("severity", "ok")
            table.add_row(
                escape(name),
                _fmt(f.get("psi")),
                _fmt(f.get("js_distance")),
                _fmt(f.get("missing_ratio")),
                _fmt(f.get("out_of_range_ratio")),
                _fmt(f.get("unseen_ratio")),
                f"[{_STYLE.get(s, '')}]{s}[/]",
            )
        console.print(table)
    alerts = doc.get("alerts", [])
    if alerts:
        table = Table(title="active alerts", title_justify="left")
        for col in ("alert", "severity", "feature", "window", "value", "threshold", "since"):
            table.add_column(col)
        for a in alerts:
            table.add_row(
                a["alertname"],
                f"[{_STYLE.get(a['severity'], '')}]{a['severity']}[/]",
                escape(a.get("feature") or "-"),
                a.get("window", ""),
                _fmt(a.get("value")),
                _fmt(a.get("threshold")),
                a.get("since", ""),
            )
        console.print(table)
    else:
        console.print("no active alerts")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
