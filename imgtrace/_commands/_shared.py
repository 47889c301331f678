"""What every command shares: output files, JSON, progress, argument types, exit codes.

One rule each, so that `--json FILE`, `--force` and a size or duration mean the same in every
command. Heavy modules (msgspec's pretty printer aside, rich) load only when used.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from traces import OutputExists, TraceError, UsageError

__all__ = [
    "Command",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REGRESSION",
    "EXIT_USAGE",
    "Subparsers",
    "Update",
    "add_deprecated_alias",
    "add_force_flag",
    "add_json_flag",
    "add_list",
    "add_number",
    "add_output_flags",
    "add_path",
    "add_salvage_flag",
    "add_switch",
    "argument_type",
    "convert_file",
    "deprecation",
    "error_line",
    "exit_code_for",
    "parse_duration",
    "parse_size",
    "progress",
    "refuse_existing",
    "write_json",
]

Subparsers = argparse._SubParsersAction  # the type `register(subparsers)` receives

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

STDOUT = "-"

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


# -- commands -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One subcommand: its texts, flags and handler; calling it adds it under `imgtrace`.

    A command module sets `register = Command(...)`. With an epilog, the description and the
    epilog are printed as written (their line breaks kept); without one, argparse wraps them.
    A command with `formats` (`import har`, `export aiperf-input`) takes one of them as its
    next word, each a `Command` of its own.
    """

    name: str
    help: str
    description: str
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    handler: Callable[[argparse.Namespace], int] | None = None
    epilog: str | None = None
    formats: tuple[Command, ...] = ()

    def __call__(self, subparsers: Subparsers[argparse.ArgumentParser]) -> None:
        parser = subparsers.add_parser(
            self.name,
            help=self.help,
            description=self.description,
            epilog=self.epilog,
            formatter_class=(
                argparse.RawDescriptionHelpFormatter if self.epilog else argparse.HelpFormatter
            ),
        )
        if self.arguments is not None:
            self.arguments(parser)
        if self.handler is not None:
            parser.set_defaults(handler=self.handler)
        if self.formats:
            formats = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
            for command in self.formats:
                command(formats)


# -- exit codes and error lines -------------------------------------------------------------------


def exit_code_for(exc: BaseException) -> int:
    """The exit code of a command that ended with `exc` (a regression is returned, not raised)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_USAGE


def error_line(exc: TraceError) -> str:
    """The one line a user sees for a library error; the command line's advice goes here."""
    if isinstance(exc, OutputExists):
        return f"imgtrace: error: {exc}: choose another {exc.what} or pass --force"
    return f"imgtrace: error: {exc}"


# -- output files ---------------------------------------------------------------------------------


def refuse_existing(target: str | os.PathLike[str] | None, force: bool, flag: str = "") -> None:
    """The output-file rule: an existing output is refused before any work, unless --force.

    `None` (no such output) and `-` (standard output) pass; a directory is never an output file.
    """
    if target is None or os.fspath(target) == STDOUT:
        return
    path = Path(target)
    if path.is_dir():
        named = f"{flag} {path}" if flag else f"{path}"
        raise UsageError(f"{named} is a directory: give a file name")
    if path.exists() and not force:
        raise OutputExists(path)


def _numpy_scalars(value: Any) -> Any:
    # numpy scalars that slipped into a document encode as their Python value.
    if hasattr(value, "item"):
        return value.item()
    raise NotImplementedError(f"cannot encode {type(value).__name__} as JSON")


def write_json(target: str | os.PathLike[str] | None, value: Any, *, compact: bool = False) -> None:
    """The one JSON writer: `-` is standard output, anything else a file; `None` writes nothing.

    Pretty-printed (indent 2) unless `compact`, which writes one line (one object per line, for
    output meant to be piped). The output-file rule was applied before the work began.
    """
    if target is None:
        return
    import msgspec

    encoded = msgspec.json.encode(value, enc_hook=_numpy_scalars)
    data = (encoded if compact else msgspec.json.format(encoded, indent=2)) + b"\n"
    if os.fspath(target) == STDOUT:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        Path(target).write_bytes(data)


# -- the file-writing commands (synth, import, export) -------------------------------------------


Flags = argparse._ActionsContainer  # a parser or one of its argument groups


def add_switch(parser: Flags, flag: str, text: str) -> None:
    """A flag that is on or off (`store_true`), with its help."""
    parser.add_argument(flag, action="store_true", help=text)


def add_number(
    parser: Flags,
    flag: str,
    kind: type[float],
    metavar: str,
    text: str,
    default: float | None = None,
) -> None:
    """A flag that takes a number (`int` or `float`), None or `default` when not given."""
    parser.add_argument(flag, type=kind, default=default, metavar=metavar, help=text)


def add_path(parser: Flags, flag: str, metavar: str, text: str) -> None:
    """A flag that names a file (a `Path`; None when not given)."""
    parser.add_argument(flag, type=Path, metavar=metavar, help=text)


def add_list(parser: Flags, flag: str, metavar: str, text: str) -> None:
    """A repeatable flag: every value given, in order (an empty list when none is)."""
    parser.add_argument(flag, action="append", default=[], metavar=metavar, help=text)


def add_json_flag(
    parser: Flags, text: str = "also write the summary as JSON to FILE ('-' for stdout)"
) -> None:
    """`--json FILE`: JSON to FILE, `-` for standard output (`write_json`)."""
    parser.add_argument("--json", metavar="FILE", help=text)


def add_force_flag(parser: Flags, text: str = "overwrite existing output files") -> None:
    """`--force`: overwrite existing outputs, and nothing else (`refuse_existing`)."""
    add_switch(parser, "--force", text)


def add_salvage_flag(parser: Flags, text: str) -> None:
    """`--salvage`: read a damaged file up to the damage instead of refusing it."""
    add_switch(parser, "--salvage", text)


def add_output_flags(parser: argparse.ArgumentParser, what: str) -> None:
    """`-o`, `--force` and `--json` of a command that writes one file."""
    parser.add_argument(
        "-o", "--output", required=True, metavar="FILE", help=f"the {what} to write"
    )
    add_force_flag(parser, "overwrite the output if it exists (else refused)")
    add_json_flag(
        parser, "also write a machine-readable summary as JSON to FILE (`-` for standard output)"
    )


def convert_file(
    args: argparse.Namespace, convert: Callable[..., Any], source: Any, **options: Any
) -> int:
    """Run an import or export `convert(source, args.output, force=..., **options)`.

    The output-file rule first; then its summary on stderr (and as JSON with --json).
    """
    import msgspec

    refuse_existing(args.json, args.force)
    stats = convert(source, args.output, force=args.force, **options)
    print(stats.summary(), file=sys.stderr)
    for warning in stats.warnings:
        print(f"imgtrace: warning: {warning}", file=sys.stderr)
    for problem in stats.problems[:5]:
        print(f"  skipped: {problem}", file=sys.stderr)
    write_json(args.json, msgspec.to_builtins(stats))
    return EXIT_OK


# -- progress -------------------------------------------------------------------------------------


class Update(Protocol):
    """`update(done, total)`, or `update(done, total, step)` to name the step under way."""

    def __call__(self, done: int, total: int, step: str | None = None) -> None: ...


@contextlib.contextmanager
def progress(label: str) -> Iterator[Update]:
    """The one progress bar: rich, on stderr, while a step runs; yields `update`.

    Silent when stderr is not a terminal; a step that never calls `update` shows a pulsing bar.
    """
    if not sys.stderr.isatty():

        def ignore(done: int, total: int, step: str | None = None) -> None:
            pass

        yield ignore
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int, step: str | None = None) -> None:
            bar.update(task, completed=done, total=total, description=step or label)

        yield update


# -- argument types -------------------------------------------------------------------------------


def parse_size(text: str, flag: str) -> int:
    """`64M`, `1.5G`, `500k`, `1048576` → bytes (binary units)."""
    match = _SIZE_RE.match(text)
    if match is None:
        raise UsageError(f"{flag} takes a size like 64M, 1G or 500000 (bytes), not {text!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_duration(text: str, flag: str) -> float:
    """`30s`, `10m`, `1h`, `0.5` (seconds) → seconds."""
    match = _DURATION_RE.match(text)
    if match is None:
        raise UsageError(f"{flag} takes a duration like 30s, 10m or 1h, not {text!r}")
    seconds = float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "s").lower()]
    if seconds <= 0:
        raise UsageError(f"{flag} must be more than zero, not {text!r}")
    return seconds


def argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse `type=` from a parser that raises `UsageError`, so argparse names the flag."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


# -- renamed flags --------------------------------------------------------------------------------


def deprecation(old: str, new: str) -> None:
    """The one warning for an old spelling that still works."""
    print(f"imgtrace: warning: {old} is deprecated here: use {new}", file=sys.stderr)


class _DeprecatedAlias(argparse.Action):
    """Stores into the new flag's destination and warns that the old spelling will go."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        deprecation(option_string or self.option_strings[0], self.new)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, old: str, new: str, dest: str
) -> None:
    """Keep `old` working as a spelling of `new` (same destination), with a warning."""
    parser.add_argument(
        old,
        dest=dest,
        action=_DeprecatedAlias,
        new=new,
        default=argparse.SUPPRESS,
        metavar="...",
        help=f"deprecated spelling of {new}",
    )
