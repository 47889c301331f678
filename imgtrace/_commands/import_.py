"""`imgtrace import aiperf-raw|aiperf-input|har`: other tools' traces as imgtrace traces."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from traces import UsageError

from ._shared import Command, add_list, add_output_flags, add_switch, convert_file

__all__ = ["register"]


def _add_import_common(parser: argparse.ArgumentParser, source: str) -> None:
    """The flags every import takes; `source` is the help of its input file."""
    parser.add_argument("source", metavar="FILE", help=source)
    add_output_flags(parser, "trace file")
    add_switch(
        parser,
        "--skip-bad",
        "skip lines or entries that cannot be imported (counted) instead of stopping",
    )


def add_aiperf_raw_arguments(raw: argparse.ArgumentParser) -> None:
    """The flags of `import aiperf-raw`."""
    _add_import_common(raw, "profile_export_raw.jsonl")
    add_switch(
        raw,
        "--include-warmup",
        "keep warmup requests (benchmark_phase=warmup), which are skipped by default",
    )


def add_aiperf_input_arguments(turn: argparse.ArgumentParser) -> None:
    """The flags of `import aiperf-input`."""
    _add_import_common(turn, "the .jsonl input file")
    turn.add_argument(
        "--model", help="the model field, as `aiperf --model` (AIPerf ignores a line's)"
    )
    turn.add_argument(
        "--aiperf-dir",
        metavar="DIR",
        help="the directory AIPerf runs in, where it finds relative image paths (default: .)",
    )
    add_switch(
        turn,
        "--as-written",
        "keep the file as written (all images, file bytes and names, a line's model) "
        "instead of what AIPerf sends",
    )
    turn.add_argument(
        "--rate",
        type=float,
        help="lines without timestamp or delay follow the previous one at this rate (req/s); "
        "default: at the same time",
    )
    add_list(
        turn,
        "--extra-inputs",
        "KEY:VALUE",
        "a form field for every request, like aiperf --extra-inputs (repeatable; a "
        "line's `extra` wins)",
    )


def add_har_arguments(har: argparse.ArgumentParser) -> None:
    """The flags of `import har`."""
    _add_import_common(har, "the .har file")
    har.add_argument(
        "--path-suffix",
        default="/images/edits",
        help="entries whose URL path ends with this are image edits (default /images/edits)",
    )


def _import_aiperf_raw(args: argparse.Namespace) -> int:
    from recorder import import_aiperf_raw

    return _import(args, import_aiperf_raw, include_warmup=args.include_warmup)


def _import_aiperf_input(args: argparse.Namespace) -> int:
    from recorder import import_aiperf_input

    extra: dict[str, str] = {}
    for item in args.extra_inputs:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise UsageError(f"--extra-inputs {item!r}: expected KEY:VALUE")
        extra[key] = value
    return _import(
        args,
        import_aiperf_input,
        model=args.model,
        rate=args.rate,
        extra_inputs=extra,
        aiperf_dir=args.aiperf_dir,
        as_written=args.as_written,
    )


def _import_har(args: argparse.Namespace) -> int:
    from recorder import import_har

    return _import(args, import_har, path_suffix=args.path_suffix)


def _import(args: argparse.Namespace, importer: Callable[..., Any], **options: Any) -> int:
    return convert_file(args, importer, args.source, skip_bad=args.skip_bad, **options)


register = Command(
    "import",
    "turn an AIPerf export or input file, or a HAR capture, into a trace",
    "Turn other tools' traces into imgtrace trace files. See docs/importing.md.",
    formats=(
        Command(
            "aiperf-raw",
            "AIPerf profile_export_raw.jsonl (--export-level raw) of an image_edit run",
            "Import an AIPerf raw export: original send times and recorded responses.",
            add_aiperf_raw_arguments,
            _import_aiperf_raw,
        ),
        Command(
            "aiperf-input",
            "AIPerf single_turn JSONL input file (text, image, timestamp/delay, extra)",
            "Import an AIPerf single_turn input file as AIPerf's image_edit would send it.",
            add_aiperf_input_arguments,
            _import_aiperf_input,
        ),
        Command(
            "har",
            "HAR 1.2 capture (browser devtools, mitmproxy) with request bodies",
            "Import the image-edit requests of a HAR 1.2 file, with their responses.",
            add_har_arguments,
            _import_har,
        ),
    ),
)
