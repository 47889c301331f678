"""What `report` and `compare` share: their common flags and the output-file checks."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._shared import refuse_existing

__all__ = ["add_common_arguments", "refuse_outputs"]


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags `report` and `compare` share."""
    parser.add_argument(
        "--json", metavar="FILE", help="write the results as JSON to FILE ('-' for stdout)"
    )
    parser.add_argument(
        "--html", type=Path, metavar="FILE", help="write a self-contained HTML report with plots"
    )
    parser.add_argument(
        "--trace",
        type=Path,
        metavar="TRACE",
        help="the trace the runs replayed, for request classes (default: the requests in the "
        "file, else the trace named in the run header if it is still there)",
    )
    parser.add_argument(
        "--salvage",
        action="store_true",
        help="read damaged files up to the damage instead of refusing them",
    )


def refuse_outputs(args: argparse.Namespace, *names: str) -> None:
    """The output-file rule for each of these flags (`--json`, `--html`, ...)."""
    for name in names:
        refuse_existing(getattr(args, name, None), args.force, f"--{name}")
