"""Subcommands that belong to the joining package: `serve` (reference server) and `demo`."""

from __future__ import annotations

import argparse

from . import _demo
from ._server import _cli as _serve_cli

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `serve` and `demo` to `imgtrace`."""
    _serve_cli.register(subparsers)
    _demo.register(subparsers)
