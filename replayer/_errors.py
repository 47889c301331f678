"""Errors raised by the replayer; each message tells the user what to do next."""

from __future__ import annotations

from traces import TraceError

__all__ = ["ReplayError"]


class ReplayError(TraceError):
    """Raised when a replay cannot start or its result is unusable (e.g. nothing could connect)."""
