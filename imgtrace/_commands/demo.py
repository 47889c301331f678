"""`imgtrace demo`: the whole pipeline on the bundled reference server, in one command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._shared import EXIT_INTERRUPTED, Command, add_force_flag, add_switch

__all__ = ["register"]


DESCRIPTION = (
    "Start the reference server (A, a twin of A, and B) and a recording proxy, record synthetic "
    "production traffic, replay it side by side against A, A again (the noise baseline) and B in "
    "one interleaved replay, then at 2x against A and its twin (near A's capacity), compare the "
    "runs and write report.html and compare.json. Takes under six minutes (--quick: under three) "
    "on a busy 2-core machine. Every process it starts is stopped on exit."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `demo`."""
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("imgtrace-demo"),
        help="folder for the traces, runs, logs and report (default: ./imgtrace-demo)",
    )
    add_switch(
        parser, "--quick", "a smaller story (70 requests instead of 160), under three minutes"
    )
    add_force_flag(parser, "replace --out even if another tool wrote it")


def run(args: argparse.Namespace) -> int:
    from .._demo import DemoInterrupted, run_demo

    try:
        return run_demo(args.out, quick=args.quick, force=args.force)
    except DemoInterrupted as exc:
        print(f"imgtrace: interrupted: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED


register = Command(
    "demo",
    "run the whole pipeline on the bundled reference server and write a report",
    DESCRIPTION,
    add_arguments,
    run,
)
