"""Subcommands that inspect trace files: `show`, `cat`, `extract`."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `show`, `cat` and `extract` to `imgtrace`."""
