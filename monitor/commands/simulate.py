"""`driftmon simulate`: synthetic inference events into a Kafka topic, with scheduled drift.

    driftmon simulate --bootstrap-servers localhost:9092 --topic inference-events \\
        --rate 300 --models fraud,churn --duration 120 [--schedule FILE|builtin] \\
        [--baselines-dir DIR]

Events come from `monitor.simulate` (built-in model profiles); ``--baselines-dir`` writes
matching baselines (fitted on synthetic training data) so a daemon can be configured for
them. Without ``--bootstrap-servers`` the Kafka connection and topic come from the
configuration (`--config`). Exit 0 when every event was delivered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from monitor.clock import SystemClock
from monitor.demo.session import write_baselines
from monitor.demo.traffic import Traffic
from monitor.errors import InputError
from monitor.simulate import (
    MODELS,
    Incident,
    Simulator,
    builtin_schedule,
    load_schedule,
    pick_models,
)
from monitor.source.kafka import producer_config


def add_simulate(commands: Any) -> None:
    """Register the `simulate` subcommand."""
    parser = commands.add_parser(
        "simulate", help="produce synthetic inference events with scheduled drift"
    )
    parser.add_argument("--bootstrap-servers", default=None, metavar="B", help="Kafka brokers")
    parser.add_argument("--topic", default=None, metavar="T", help="topic (default: config's)")
    parser.add_argument("--rate", type=float, default=300.0, metavar="R", help="events/s (300)")
    parser.add_argument(
        "--models", default="fraud,churn", metavar="M,M", help=f"of {', '.join(MODELS)}"
    )
    parser.add_argument("--duration", type=float, default=60.0, metavar="S", help="seconds (60)")
    parser.add_argument(
        "--schedule",
        default=None,
        metavar="FILE|builtin",
        help="incidents: a YAML/JSON file, or 'builtin' (default: no drift)",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (42)")
    parser.add_argument(
        "--baselines-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write <model>.json baselines for the simulated models",
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML configuration file")
    parser.set_defaults(handler=_simulate)


def _simulate(args: argparse.Namespace, load: Any) -> int:
    if args.rate <= 0 or args.duration <= 0:
        raise InputError("--rate and --duration must be positive")
    models = pick_models([m.strip() for m in args.models.split(",") if m.strip()])
    by_name = {m.name: m for m in models}
    schedule = _schedule(args.schedule, args.duration, by_name)
    options: dict[str, Any] = {"message.timeout.ms": 15_000}
    if args.bootstrap_servers:
        bootstrap, topic = args.bootstrap_servers, args.topic or "inference-events"
    else:
        kafka = load(args.config).kafka
        bootstrap, topic = kafka.bootstrap_servers, args.topic or kafka.topics[0]
        options |= {k: v for k, v in producer_config(kafka).items() if k != "bootstrap.servers"}
    console = Console(stderr=False, width=None if sys.stdout.isatty() else 120)
    if args.baselines_dir is not None:
        args.baselines_dir.mkdir(parents=True, exist_ok=True)
        for name, path in write_baselines(args.baselines_dir, list(by_name)).items():
            console.print(f"baseline for {name}: {path}")
    for incident in schedule:
        end = f"{incident.end:.0f}s" if incident.end is not None else "the end"
        console.print(f"incident at {incident.start:.0f}s until {end}: {incident.label}")
    total = round(args.rate * args.duration)
    simulator = Simulator(models, schedule, seed=args.seed)
    traffic = Traffic(
        bootstrap, topic, simulator.batch, args.rate, SystemClock(), total=total, options=options
    )
    started = time.monotonic()
    with Progress(
        TextColumn(f"producing to {topic}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=not console.is_terminal,
    ) as progress:
        task = progress.add_task("events", total=total)
        traffic.start()
        try:
            while traffic.is_alive():
                progress.update(task, completed=traffic.produced + simulator.silenced)
                traffic.join(0.25)
        except KeyboardInterrupt:
            traffic.finish()
            raise
        progress.update(task, completed=traffic.produced + simulator.silenced)
    took = time.monotonic() - started
    console.print(
        f"produced {traffic.produced} events to {topic} in {took:.1f}s "
        f"({traffic.delivered} delivered, {traffic.failed} failed, "
        f"{simulator.silenced} withheld by silence incidents)"
    )
    if traffic.error or traffic.delivered != traffic.produced:
        sys.stderr.write(f"driftmon: error: {traffic.error or 'not every event was delivered'}\n")
        return 1
    return 0


def _schedule(spec: str | None, duration: float, models: dict[str, Any]) -> list[Incident]:
    if spec is None:
        return []
    if spec == "builtin":
        return [i for i in builtin_schedule(duration) if i.model in models]
    return load_schedule(Path(spec), models)
