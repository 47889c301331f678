"""Render docs/cli.md from the argparse parser, so the reference cannot drift from the code.

    python -m imgtrace._clidoc > docs/cli.md

A test fails when docs/cli.md differs from what this prints.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._cli import build_parser

__all__ = ["render_cli_markdown"]

HEADER = """\
# Command line reference

Generated from the parser by `python -m imgtrace._clidoc > docs/cli.md`; a test keeps it current.

Every command prints one line `imgtrace: error: ...` and exits with code 2 on a usage or input
error (`imgtrace --debug COMMAND ...` shows the traceback instead). `compare --fail-on` exits
with 1 when it finds a significant regression. Commands that take a while show a progress bar on
stderr.
"""


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _section(name: str, parser: argparse.ArgumentParser, level: int) -> list[str]:
    # A fixed width keeps the text independent of the terminal that renders it.
    parser.formatter_class = _fixed_width(parser.formatter_class)
    lines = [f"{'#' * level} `{name}`", "", "```", parser.format_help().rstrip(), "```", ""]
    for child_name, child in _subcommands(parser).items():
        lines += _section(f"{name} {child_name}", child, level + 1)
    return lines


def _fixed_width(base: Any) -> Any:
    class Fixed(base):  # type: ignore[misc]
        def __init__(self, prog: str, **kwargs: Any) -> None:
            kwargs["width"] = 100
            kwargs["max_help_position"] = 32
            super().__init__(prog, **kwargs)

    return Fixed


def render_cli_markdown() -> str:
    parser = build_parser()
    parser.prog = "imgtrace"
    lines = [HEADER]
    lines += _section("imgtrace", parser, 2)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_cli_markdown())
