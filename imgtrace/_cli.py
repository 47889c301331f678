"""The `imgtrace` entry point; the command line itself lives in `imgtrace._commands`."""

from ._commands import build_parser, main

__all__ = ["build_parser", "main"]
