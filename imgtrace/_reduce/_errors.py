"""Errors of the regression search; each message says what to do next."""

from __future__ import annotations

from traces import TraceError

__all__ = ["NotReproduced", "ReduceError", "ResetFailed", "TargetDown"]


class ReduceError(TraceError):
    """Raised when a search cannot start or cannot go on (exit status 2)."""


class NotReproduced(ReduceError):
    """The full trace does not satisfy the predicate: there is nothing to reduce."""


class ResetFailed(ReduceError):
    """The `--reset` command exited with a non-zero status (or could not run)."""


class TargetDown(ReduceError):
    """Not a single request of an attempt could connect to the target."""
