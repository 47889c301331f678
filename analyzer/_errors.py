"""The analyzer's root error."""

from __future__ import annotations

from traces import TraceError

__all__ = ["AnalysisError"]


class AnalysisError(TraceError):
    """Raised when runs cannot be analyzed as asked; the message says what to do instead."""
