"""`imgtrace export aiperf-input`: a trace as another tool's input."""

from __future__ import annotations

import argparse

from ._shared import Command, add_output_flags, add_salvage_flag, add_switch, convert_file

__all__ = ["register"]


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
    add_switch(
        turn,
        "--keep-model",
        "keep each request's model in `extra` (it then overrides aiperf --model)",
    )
    add_salvage_flag(
        turn,
        "export a damaged trace's requests up to the damage (with a warning) instead of "
        "refusing it",
    )
    add_switch(
        turn,
        "--absolute-paths",
        "with --images-dir, write absolute image paths (default: relative to the output)",
    )


def _export_aiperf_input(args: argparse.Namespace) -> int:
    from recorder import export_aiperf_input

    return convert_file(
        args,
        export_aiperf_input,
        args.trace,
        images_dir=args.images_dir,
        absolute_paths=args.absolute_paths,
        keep_model=args.keep_model,
        salvage=args.salvage,
    )


register = Command(
    "export",
    "turn a trace into another tool's input (AIPerf single_turn JSONL)",
    "Write a trace in another tool's input format. See docs/importing.md.",
    formats=(
        Command(
            "aiperf-input",
            "AIPerf single_turn JSONL with timestamps (aiperf ... --fixed-schedule)",
            "Write a trace as an AIPerf single_turn input file with ms timestamps.",
            add_aiperf_input_arguments,
            _export_aiperf_input,
        ),
    ),
)
