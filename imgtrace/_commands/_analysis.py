"""What `report` and `compare` share: their common flags and the output-file checks."""

from __future__ import annotations

import argparse

from ._shared import add_json_flag, add_path, add_salvage_flag, refuse_existing

__all__ = ["add_common_arguments", "refuse_outputs"]


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags `report` and `compare` share."""
    add_json_flag(parser, "write the results as JSON to FILE ('-' for stdout)")
    add_path(parser, "--html", "FILE", "write a self-contained HTML report with plots")
    add_path(
        parser,
        "--trace",
        "TRACE",
        "the trace the runs replayed, for request classes (default: the requests in the file, "
        "else the trace named in the run header if it is still there)",
    )
    add_salvage_flag(parser, "read damaged files up to the damage instead of refusing them")


def refuse_outputs(args: argparse.Namespace, *names: str) -> None:
    """The output-file rule for each of these flags (`--json`, `--html`, ...)."""
    for name in names:
        refuse_existing(getattr(args, name, None), args.force, f"--{name}")
