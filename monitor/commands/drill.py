"""`driftmon drill`: a fire drill against a running deployment (SPEC §7).

    driftmon drill --config FILE --model M [--feature F] [--budget S] [--rate R] [--json]

1. The daemon must be running: the model's state document (`<prefix>:{M}:state`) must
   have been evaluated recently (within 3 evaluation intervals, at least 30 s); else exit 1.
2. Injects drifted events for the model through the first configured topic
   (`monitor.demo.drill`: baseline-like events, one feature pushed out of its reference
   range or to a never-seen category) at the model's current event rate.
3. Watches the state, the alert states and `<prefix>:alerts:log` (`monitor.demo.tracker`)
   and reports time-to-detect and time-to-alert; stops injecting once both are seen.
Exit 0 when the drift was detected and alerted within the budget, 1 otherwise, 2 on a
usage or connection error. The alert it raises resolves by itself once the drilled
events leave the window.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from monitor.app import redis_client
from monitor.baseline import Baseline, baseline_from_document, load_baseline
from monitor.clock import SystemClock
from monitor.demo.drill import DrillEvents, pick_feature
from monitor.demo.tracker import Tracker, Watch, parse_time
from monitor.demo.traffic import Traffic
from monitor.errors import InputError, RedisUnavailable
from monitor.settings import Settings
from monitor.source.kafka import producer_config
from monitor.states import read_states
from monitor.window.keys import Keys
from monitor.window.store import REDIS_ERRORS

MIN_FRESH_SECONDS = 30.0
MIN_RATE, MAX_RATE = 20.0, 2000.0


def add_drill(commands: Any) -> None:
    """Register the `drill` subcommand."""
    parser = commands.add_parser(
        "drill", help="inject a known drift and measure time-to-detect and time-to-alert"
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML configuration file")
    parser.add_argument("--model", required=True, help="the model to drill")
    parser.add_argument("--feature", default=None, help="feature to drift (first numeric)")
    parser.add_argument(
        "--budget", type=float, default=300.0, metavar="S", help="seconds to wait (300)"
    )
    parser.add_argument(
        "--rate", type=float, default=None, metavar="R", help="events/s (the model's rate)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=_drill)


def _drill(args: argparse.Namespace, load: Any) -> int:
    if args.budget <= 0:
        raise InputError("--budget must be positive")
    settings: Settings = load(args.config)
    client = redis_client(settings.redis)
    keys = Keys(settings.redis.key_prefix)
    clock = SystemClock()
    err = Console(stderr=True)
    try:
        state = read_states(client, keys, args.model)
        fresh = max(3 * settings.evaluation.interval_seconds, MIN_FRESH_SECONDS)
        evaluated = parse_time(state.get("evaluated_at"))
        if evaluated is None or clock.now() - evaluated > fresh:
            when = state.get("evaluated_at") or "never"
            sys.stderr.write(
                f"driftmon: drill: the daemon is not running: model {args.model!r} "
                f"was last evaluated {when} (key {keys.state(args.model)})\n"
            )
            return 1
        baseline = _baseline(client, keys, settings, args.model)
        feature = pick_feature(baseline, args.feature)
        rate = args.rate or _model_rate(state)
        factory = DrillEvents(baseline, feature)
        watch = Watch(f"drill {args.model}.{feature}", args.model, None, feature)
        tracker = Tracker(client, keys, [watch])
        tracker.start_log_at(clock.now())
        kafka = producer_config(settings.kafka)
        topic = settings.kafka.topics[0]
        traffic = Traffic(kafka["bootstrap.servers"], topic, factory, rate, clock, options=kafka)
        if not args.json:
            err.print(
                f"drill: {rate:.0f} events/s for {args.model} to {topic}, "
                f"feature {feature} = {factory.injected}; budget {args.budget:.0f}s"
            )
        traffic.start()
        watch.injected_at = clock.now()
        deadline = time.monotonic() + args.budget
        try:
            with err.status("waiting for detection and alert ...", spinner="dots"):
                while time.monotonic() < deadline and not tracker.done():
                    for line in tracker.poll(clock.now()):
                        if not args.json:
                            err.print(line)
                    time.sleep(0.5)
        finally:
            traffic.finish()
    except REDIS_ERRORS as exc:
        raise RedisUnavailable(f"redis ({settings.redis.url}): {exc}") from None
    finally:
        client.close()
    report = _report(watch, args, feature, factory.injected, traffic, rate)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print(report)
    return 0 if report["passed"] else 1


def _baseline(client: Any, keys: Keys, settings: Settings, model: str) -> Baseline:
    """The baseline in force (Redis), else the configured file."""
    raw = client.get(keys.baseline(model))
    if raw:
        return baseline_from_document(msgspec.json.decode(raw))
    if model in settings.models:
        return load_baseline(settings.models[model].baseline)
    raise InputError(f"--model: no baseline for {model!r} in Redis or in the configuration")


def _model_rate(state: dict[str, Any]) -> float:
    """The model's live event rate (its shortest window), within sane bounds."""
    windows = state.get("windows", {})
    rates = [w.get("events_per_second") or 0.0 for w in windows.values()]
    return min(MAX_RATE, max(MIN_RATE, rates[0] if rates else MIN_RATE))


def _report(
    watch: Watch,
    args: argparse.Namespace,
    feature: str,
    injected: str,
    traffic: Traffic,
    rate: float,
) -> dict[str, Any]:
    return {
        "model": args.model,
        "feature": feature,
        "injected": injected,
        "rate": rate,
        "events": traffic.produced,
        "budget_seconds": args.budget,
        "time_to_detect_seconds": _round(watch.time_to_detect),
        "time_to_alert_seconds": _round(watch.time_to_alert),
        "alert": watch.alert,
        "passed": watch.detected_at is not None and watch.alerted_at is not None,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _print(report: dict[str, Any]) -> None:
    table = Table(title=f"fire drill: {report['model']}.{report['feature']}", title_justify="left")
    for column in ("injected", "events", "time to detect", "time to alert", "alert", "result"):
        table.add_column(column)

    def secs(value: float | None) -> str:
        return "not within budget" if value is None else f"{value:.1f}s"

    table.add_row(
        report["injected"],
        str(report["events"]),
        secs(report["time_to_detect_seconds"]),
        secs(report["time_to_alert_seconds"]),
        report["alert"] or "-",
        "[green]passed[/]" if report["passed"] else "[red]failed[/]",
    )
    Console(width=None if sys.stdout.isatty() else 160).print(table)
