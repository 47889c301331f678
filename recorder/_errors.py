"""Errors raised by the recorder package."""

from __future__ import annotations

from traces import TraceError

__all__ = ["RecorderError"]


class RecorderError(TraceError):
    """Root of every error the recorder raises on purpose; its message is meant for the user."""
