"""`imgtrace export aiperf-input`: a trace as another tool's input."""

from __future__ import annotations

import argparse

from ._shared import Subparsers, add_output_flags, refuse_existing, report_import

__all__ = ["register"]


def register(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    """Add `export aiperf-input` to `imgtrace`."""
    parser = subparsers.add_parser(
        "export",
        help="turn a trace into another tool's input (AIPerf single_turn JSONL)",
        description="Write a trace in another tool's input format. See docs/importing.md.",
    )
    formats = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    turn = formats.add_parser(
        "aiperf-input",
        help="AIPerf single_turn JSONL with timestamps (aiperf ... --fixed-schedule)",
        description="Write a trace as an AIPerf single_turn input file with ms timestamps.",
    )
    add_aiperf_input_arguments(turn)
    turn.set_defaults(handler=_export_aiperf_input)


def add_aiperf_input_arguments(turn: argparse.ArgumentParser) -> None:
    """The flags of `export aiperf-input`."""
    turn.add_argument("trace", metavar="TRACE", help="the trace file to export")
    add_output_flags(turn, "JSONL file (`-` for standard output)")
    turn.add_argument(
        "--images-dir",
        metavar="DIR",
        help="write the images as files in DIR instead of inline data URLs (AIPerf re-encodes "
        "image files and refuses WebP and GIF ones)",
    )
    turn.add_argument(
        "--keep-model",
        action="store_true",
        help="keep each request's model in `extra` (it then overrides aiperf --model)",
    )
    turn.add_argument(
        "--salvage",
        action="store_true",
        help="export a damaged trace's requests up to the damage (with a warning) instead of "
        "refusing it",
    )
    turn.add_argument(
        "--absolute-paths",
        action="store_true",
        help="with --images-dir, write absolute image paths (default: relative to the output)",
    )


def _export_aiperf_input(args: argparse.Namespace) -> int:
    from recorder import export_aiperf_input

    refuse_existing(args.json, args.force)

    stats = export_aiperf_input(
        args.trace,
        args.output,
        force=args.force,
        images_dir=args.images_dir,
        absolute_paths=args.absolute_paths,
        keep_model=args.keep_model,
        salvage=args.salvage,
    )
    return report_import(stats, args)
