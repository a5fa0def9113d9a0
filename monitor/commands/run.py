"""`driftmon run`: the daemon. Parser and handler; the loop itself is `monitor.app`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from monitor.app import run, stop_on_signals
from monitor.clock import SystemClock
from monitor.logs import configure_logging


def add_run(commands: Any) -> None:
    """Register the `run` subcommand."""
    parser = commands.add_parser("run", help="run the daemon: Kafka -> Redis windows -> alerts")
    parser.add_argument("--config", type=Path, default=None, help="YAML configuration file")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace, load: Any) -> int:
    settings = load(args.config)
    configure_logging(settings.log.level, settings.log.format)
    with stop_on_signals() as stop:
        run(settings, SystemClock(), stop)
    return 0
