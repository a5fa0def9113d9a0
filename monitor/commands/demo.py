"""`driftmon demo [--duration S] [--no-live]`: the whole pipeline on one machine, no setup.

Starts an embedded Kafka and Redis, fits baselines on synthetic training data, runs the
daemon and a producer with a schedule of incidents (`monitor.demo.session`), shows a
live view (rich) or, with ``--no-live``, one line per event, and ends with a summary:
each incident, when it was injected, detected and alerted. Exit 0 when every incident
was detected and alerted, 1 otherwise, 2 when a service could not start, 130 after
Ctrl-C (which still prints the summary).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from monitor.clock import SystemClock
from monitor.demo.session import DemoSession
from monitor.demo.view import alerts_table, incidents_table, state_table

DEFAULT_DURATION = 150.0
MIN_DURATION = 45.0
POLL_SECONDS = 0.5


def add_demo(commands: Any) -> None:
    """Register the `demo` subcommand."""
    parser = commands.add_parser(
        "demo", help="embedded Kafka + Redis + daemon + drifting traffic, with a live view"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION,
        metavar="S",
        help=f"seconds to run (default {DEFAULT_DURATION:.0f}, at least {MIN_DURATION:.0f})",
    )
    parser.add_argument(
        "--no-live", action="store_true", help="print events line by line instead of a live view"
    )
    parser.add_argument(
        "--rate", type=float, default=400.0, metavar="R", help="events per second (400)"
    )
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace, _load: Any) -> int:
    if args.duration < MIN_DURATION:
        sys.stderr.write(f"driftmon: error: --duration must be at least {MIN_DURATION:.0f}\n")
        return 2
    if not 10 <= args.rate <= 2000:
        sys.stderr.write("driftmon: error: --rate must be between 10 and 2000\n")
        return 2
    console = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=False)
    started = time.monotonic()
    session = DemoSession(SystemClock(), rate=args.rate)
    interrupted = False
    try:
        console.print("starting embedded Redis, Kafka and the daemon ...")
        session.start_services()
        _print_access(console, session)
        remaining = args.duration - (time.monotonic() - started)
        session.start_traffic(remaining)
        deadline = started + args.duration
        if args.no_live:
            _run_plain(console, session, deadline)
        else:
            _run_live(console, session, deadline)
    except KeyboardInterrupt:  # Ctrl-C ends the demo early, still with its summary
        interrupted = True
        console.print("interrupted: stopping ...")
    finally:
        session.stop()
    code = _summary(console, session, time.monotonic() - started)
    return 130 if interrupted else code


def _print_access(console: Console, session: DemoSession) -> None:
    console.print(f"metrics:   {session.metrics_url}")
    console.print(f"state:     {session.redis_cli('fraud')}")
    console.print(f"status:    driftmon status --config {session.config_path}")
    console.print(f"drill:     driftmon drill --config {session.config_path} --model fraud")
    console.print(f"logs:      {session.log_path}")


def _run_plain(console: Console, session: DemoSession, deadline: float) -> None:
    next_progress = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in session.poll():
            console.print(f"t+{session.elapsed():5.1f}s  {line}")
        if time.monotonic() >= next_progress:
            next_progress += 10
            traffic = session.traffic
            produced = traffic.produced if traffic else 0
            console.print(f"t+{session.elapsed():5.1f}s  {produced} events produced")
        if session.daemon_error:
            console.print(f"[red]daemon stopped: {session.daemon_error}[/]")
            return
        time.sleep(POLL_SECONDS)


def _run_live(console: Console, session: DemoSession, deadline: float) -> None:
    with Live(_screen(session, deadline), console=console, refresh_per_second=2) as live:
        while time.monotonic() < deadline and not session.daemon_error:
            session.poll()
            live.update(_screen(session, deadline))
            time.sleep(POLL_SECONDS)


def _screen(session: DemoSession, deadline: float) -> Group:
    states = session.states()
    settings = session.settings
    base = settings.alerting.runbook_base_url if settings else ""
    produced = session.traffic.produced if session.traffic else 0
    header = Text.assemble(
        ("driftmon demo", "bold"),
        f"  t+{session.elapsed():.0f}s  ends in {max(0.0, deadline - time.monotonic()):.0f}s",
        f"  {produced} events produced  metrics {session.metrics_url}",
        f"  {session.redis_cli('fraud')}",
    )
    watches = session.tracker.watches if session.tracker else []
    return Group(
        header,
        state_table(states),
        alerts_table(states, base),
        incidents_table(watches, session.origin),
    )


def _summary(console: Console, session: DemoSession, took: float) -> int:
    watches = session.tracker.watches if session.tracker else []
    console.print(incidents_table(watches, session.origin, title="summary"))
    missed = [w.label for w in watches if w.detected_at is None or w.alerted_at is None]
    console.print(
        f"demo ran {took:.0f}s; {len(watches) - len(missed)}/{len(watches)} "
        "incidents detected and alerted"
    )
    if session.daemon_error:
        console.print(f"[red]the daemon failed: {session.daemon_error}[/]")
        return 1
    if missed or not watches:
        console.print(f"[red]not detected and alerted: {', '.join(missed) or 'no incidents'}[/]")
        return 1
    return 0
