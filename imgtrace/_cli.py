"""`imgtrace COMMAND ...`: one argparse parser whose subcommands come from each tool package.

Each package contributes `register(subparsers)`; a subcommand's handler takes the parsed
arguments and returns the exit code. Handlers import their heavy modules lazily so that
`imgtrace --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

import analyzer._cli
import recorder._cli
import replayer._cli
import traces._cli
from traces import TraceError, __version__

from . import _commands

__all__ = ["build_parser", "main"]

# Order of the sections in `imgtrace --help` and docs/cli.md: the pipeline's order.
COMMAND_MODULES: tuple[ModuleType, ...] = (
    _commands,
    recorder._cli,
    traces._cli,
    replayer._cli,
    analyzer._cli,
)

EPILOG = """\
exit codes: 0 ok; 1 a regression was found (compare --fail-on); 2 usage or input error.
Run `imgtrace COMMAND --help` for the options of a command; docs/cli.md lists them all."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgtrace",
        description="Record, replay and compare traces of image-edit HTTP APIs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"imgtrace {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks instead of one-line errors"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    print(f"imgtrace: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug: bool = args.debug
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.showwarning = _one_line_warning
            code: int = args.handler(args)
        return code
    except TraceError as exc:
        if debug:
            raise
        print(f"imgtrace: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("imgtrace: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `imgtrace cat trace | head`: the reader left; that is not an error.
        sys.stderr.close()
        return 0
