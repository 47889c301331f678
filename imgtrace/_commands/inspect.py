"""Subcommands that inspect trace files: `show`, `cat`, `extract`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from traces import UsageError

from ._shared import (
    Command,
    Subparsers,
    add_force_flag,
    add_salvage_flag,
    deprecation,
    refuse_existing,
    write_json,
)

__all__ = ["register"]

RECORD_TYPES = ("header", "blob", "request", "outcome", "note")


def add_show_arguments(show: argparse.ArgumentParser) -> None:
    """The flags of `show`."""
    show.add_argument("files", nargs="*", type=Path, metavar="FILE", help="trace or run files")
    show.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write one JSON object per file, one per line, to FILE (`-` or no FILE: standard "
        "output), as every command's --json does",
    )
    _add_salvage(show)


def add_cat_arguments(cat: argparse.ArgumentParser) -> None:
    """The flags of `cat`."""
    cat.add_argument("file", type=Path, metavar="FILE", help="trace or run file")
    cat.add_argument(
        "--type",
        dest="types",
        action="append",
        choices=RECORD_TYPES,
        help="only records of this type (repeatable)",
    )
    cat.add_argument(
        "-o", "--output", default="-", help="write to this file instead of stdout ('-')"
    )
    add_force_flag(cat, "overwrite the output file")
    _add_salvage(cat)


def add_extract_arguments(extract: argparse.ArgumentParser) -> None:
    """The flags of `extract`."""
    extract.add_argument("file", type=Path, metavar="FILE", help="trace or run file")
    extract.add_argument("-o", "--output", type=Path, required=True, help="folder to write to")
    extract.add_argument(
        "--only",
        choices=("inputs", "outputs"),
        help="only request inputs or only response outputs (default: both)",
    )
    add_force_flag(extract, "write into a non-empty folder")
    _add_salvage(extract)


def _add_salvage(parser: argparse.ArgumentParser) -> None:
    add_salvage_flag(parser, "read a damaged file up to the damage instead of refusing it")


def _show(args: argparse.Namespace) -> int:
    from traces import TraceReader, format_summary, summarize

    files: list[Path] = list(args.files)
    target: str | None = args.json
    if target not in (None, "-") and _is_trace_file(Path(target)):
        # `show --json TRACE`: --json was a switch; a trace or run file is an input, never an
        # output to overwrite.
        deprecation("show --json TRACE (--json as a switch before the files)", "--json -")
        files.insert(0, Path(target))
        target = "-"
    if not files:
        raise UsageError("show needs at least one FILE (a trace or run file)")
    if target not in (None, "-") and Path(target).exists():
        raise UsageError(
            f"--json {target} already exists: choose another file (show never overwrites)"
        )
    lines: list[bytes] = []
    for number, path in enumerate(files):
        with TraceReader(path, salvage=args.salvage) as reader:
            summary = summarize(reader)
        if target == "-":
            write_json("-", summary, compact=True)
        elif target is not None:
            import msgspec

            lines.append(msgspec.json.encode(summary) + b"\n")
        else:
            if number:
                print()
            print("\n".join(format_summary(summary)))
    if target not in (None, "-"):
        Path(target).write_bytes(b"".join(lines))
    return 0


def _is_trace_file(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return b"IMGTRACE" in handle.read(16)
    except OSError:
        return False


def _cat(args: argparse.Namespace) -> int:
    from traces import TraceReader, cat_lines

    kinds = frozenset(args.types) if args.types else None
    refuse_existing(args.output, args.force)
    with TraceReader(args.file, salvage=args.salvage) as reader:
        if args.output == "-":
            out = sys.stdout.buffer
            for line in cat_lines(reader, kinds):
                out.write(line + b"\n")
            out.flush()
            return 0
        with open(args.output, "wb") as handle:
            for line in cat_lines(reader, kinds):
                handle.write(line + b"\n")
    return 0


def _extract(args: argparse.Namespace) -> int:
    from traces import TraceReader, extract_images

    with TraceReader(args.file, salvage=args.salvage) as reader:
        files, rows = extract_images(
            reader,
            args.output,
            inputs=args.only in (None, "inputs"),
            outputs=args.only in (None, "outputs"),
            force=args.force,
        )
    print(f"wrote {files} images ({rows} references) to {args.output}", file=sys.stderr)
    return 0


_COMMANDS = (
    Command(
        "show",
        "summarize a trace or run file",
        "Summarize a trace or run file: kind, source, request count, time span, mean and peak "
        "rate, bytes, blobs and dedup ratio, image sizes and formats, the request mix, and "
        "statuses when responses were recorded.",
        add_show_arguments,
        _show,
    ),
    Command(
        "cat",
        "print records as JSON lines (blobs as digest, size, media type)",
        "Print every record of a file as one JSON line, in file order. Blobs show their digest, "
        "size and media type, never their bytes.",
        add_cat_arguments,
        _cat,
    ),
    Command(
        "extract",
        "write the images of a file to a folder",
        "Write each image (request inputs and response outputs) once to a folder, named by "
        "digest with the extension of its actual content, plus manifest.jsonl that maps "
        "requests to files.",
        add_extract_arguments,
        _extract,
    ),
)


def register(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    """Add `show`, `cat` and `extract` to `imgtrace`."""
    for command in _COMMANDS:
        command(subparsers)
