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
error (`imgtrace --debug COMMAND ...` shows the traceback instead). A mistake on the command line
itself (an unknown flag, a missing argument, a value of the wrong type) gets that line, naming
the command, and one more that points to the command's help instead of repeating its usage:

```
imgtrace: error: replay: argument --speed: invalid float value: 'x'
run `imgtrace replay --help` for the options
```

`compare --fail-on` exits with 1 when it finds a significant regression. Commands that take a
while show a progress bar on stderr. Tables fit the terminal's width (or `COLUMNS`; 100 columns
in a pipe).

A flag means one thing in every command: `--json FILE` writes JSON to FILE (`-` for standard
output); `--force` overwrites existing outputs and nothing else; `--seed` seeds the command's own
random draws (synth's generator, compare's bootstrap), while `--request-seed` sets the seed field
of the requests (synth, replay). Old spellings still work and print a warning:
`replay --seed` (now `--request-seed`), `compare --force` to pair runs of different traces (now
`--any-trace`), and `show --json` before the files.
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
