"""Subcommands of the recorder package (see recorder/_cli.py)."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add these subcommands to `imgtrace`."""
