"""Why a request failed, in one line: the error type and the first line of its message.

A status alone ("HTTP 400") hides the reason the server gave, which its body usually states:
OpenAI-shaped `{"error": {"type": ..., "message": ...}}` (OpenAI, SGLang, vLLM, LiteLLM, the
reference server), FastAPI's `{"detail": ...}`, or a plain `{"message": ...}`. A transport
error keeps the message it was recorded with.
"""

from __future__ import annotations

from typing import Any

from traces import ErrorInfo

__all__ = ["MAX_DETAIL", "error_detail"]

MAX_DETAIL = 120
"""Characters of a message kept: enough to name the cause, short enough for a table cell."""


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 1] + "…"


def _from_mapping(body: dict[str, Any]) -> str:
    error = body.get("error")
    if isinstance(error, dict):
        kind = error.get("type") or error.get("code") or ""
        message = error.get("message") or ""
        text = f"{kind}: {message}" if kind and message else str(kind or message)
        return _first_line(str(text))
    if isinstance(error, str):
        return _first_line(error)
    for key in ("detail", "message"):
        value = body.get(key)
        if isinstance(value, str):
            return _first_line(value)
        if value is not None:
            return _first_line(str(value))
    return ""


def error_detail(envelope: Any, error: ErrorInfo | None) -> str:
    """The one-line reason of a failed exchange ("" when its record gives none)."""
    if error is not None and error.message:
        return _first_line(error.message)
    if isinstance(envelope, dict):
        return _from_mapping(envelope)
    if isinstance(envelope, str):
        return _first_line(envelope)
    return ""
