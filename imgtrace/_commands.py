"""Subcommands that belong to the joining package: `serve` (reference server) and `demo`."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `serve` and `demo` to `imgtrace`."""
