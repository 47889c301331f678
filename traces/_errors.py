"""Errors raised by imgtrace.

Every error the toolkit raises on purpose derives from one root, so the command line can turn any
of them into a one-line message (the command layer, `imgtrace._commands`, picks the exit code)::

    TraceError
     ├── TraceFormatError          the bytes are not a readable trace (names file and offset)
     │    └── MissingBlobError     a record points to a blob the file does not hold
     ├── UnsupportedTraceVersion   written by a newer imgtrace
     ├── MultipartError            a body that is not well-formed multipart/form-data
     └── UsageError                bad options or arguments, refused before any work is done
          └── OutputExists         an output is already there and overwriting was not asked for

The tool packages (recorder, replayer, analyzer) derive their own roots from `TraceError`.
"""

from __future__ import annotations

import os

__all__ = [
    "MissingBlobError",
    "MultipartError",
    "OutputExists",
    "TraceError",
    "TraceFormatError",
    "TraceRecoveryWarning",
    "UnsupportedTraceVersion",
    "UsageError",
]


class TraceError(Exception):
    """Root of every error imgtrace raises on purpose; its message is meant for the user."""


class UsageError(TraceError):
    """Raised when options or arguments are invalid, before any work is done."""


class OutputExists(UsageError):
    """Raised when an output is already there and the caller did not ask to overwrite it.

    The message states the fact only; the command line adds how to proceed (its `--force`).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, what: str = "output", state: str = "already exists"
    ) -> None:
        self.path = os.fspath(path)
        self.what = what
        """What to choose instead (an output, a folder), for the command line's advice."""
        super().__init__(f"{self.path} {state}")


class TraceFormatError(TraceError):
    """Raised when a file is not a readable trace; the message names the file and byte offset."""

    def __init__(self, path: str | os.PathLike[str], offset: int | None, problem: str) -> None:
        self.path = os.fspath(path)
        self.offset = offset
        self.problem = problem
        where = f"{self.path}" if offset is None else f"{self.path} at byte {offset}"
        super().__init__(f"{where}: {problem}")


class MissingBlobError(TraceFormatError):
    """Raised when a record refers to a blob digest that the file does not contain."""


class UnsupportedTraceVersion(TraceError):
    """Raised when a file was written in a format version this imgtrace cannot read."""


class MultipartError(TraceError):
    """Raised when a body cannot be parsed as multipart/form-data."""


class TraceRecoveryWarning(UserWarning):
    """Warned when a reader stops at a torn or damaged tail and keeps what came before it."""
