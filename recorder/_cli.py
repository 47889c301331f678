"""Subcommands contributed by the recorder package: `record`, and `synth`/`import`/`export`."""

from __future__ import annotations

import argparse

from . import _cli_record, _cli_sources

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this package's subcommands to `imgtrace`."""
    _cli_record.register(subparsers)
    _cli_sources.register(subparsers)
