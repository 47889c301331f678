"""`imgtrace COMMAND ...`: one argparse parser, one module per command, one exit-code rule.

Each command module has `register(subparsers)`; a command's handler takes the parsed arguments
and returns the exit code. Handlers import the libraries lazily, so `imgtrace --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from traces import TraceError, __version__

from .._reduce import _command as reduce
from . import (
    compare,
    demo,
    export,
    import_,
    inspect,
    merge,
    record,
    replay,
    report,
    serve,
    synth,
)
from ._shared import EXIT_USAGE, error_line, exit_code_for

__all__ = ["build_parser", "main"]

# Order of the sections in `imgtrace --help` and docs/cli.md: the pipeline's order.
COMMANDS: tuple[ModuleType, ...] = (
    serve,
    demo,
    record,
    synth,
    import_,
    export,
    inspect,
    replay,
    merge,
    report,
    compare,
    reduce,
)

EPILOG = """\
exit codes: 0 ok; 1 a regression was found (compare --fail-on); 2 usage or input error.
Run `imgtrace COMMAND --help` for the options of a command; docs/cli.md lists them all."""


class OneLineErrors(argparse.ArgumentParser):
    """argparse with the project's error rule: one `imgtrace: error: ...` line, exit 2.

    A second line points to the command's `--help` instead of repeating its whole usage, which
    for `replay` is a dozen lines that push the error out of sight. Subcommands inherit it.
    """

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("imgtrace").strip()
        where = f"{command}: " if command else ""
        self.exit(
            EXIT_USAGE,
            f"imgtrace: error: {where}{message}\nrun `{self.prog} --help` for the options\n",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(
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
    for command in COMMANDS:
        command.register(subparsers)
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
        print(error_line(exc), file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt as exc:
        print("imgtrace: interrupted", file=sys.stderr)
        return exit_code_for(exc)
    except BrokenPipeError:
        # `imgtrace cat trace | head`: the reader left; that is not an error.
        sys.stderr.close()
        return 0
