"""Reading request bodies from ASGI `receive`, with a size cap enforced while streaming.

An upload over `--max-body` is refused as soon as it crosses the limit (or at once, when its
Content-Length says so): it is never held in memory whole. After the response, uvicorn reads and
discards the rest, so a client that is still sending reads the 413 instead of a reset.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from traces import FormPartData, MultipartError, StreamingFormParser

from ._errors import ApiError

__all__ = ["ClientGone", "Receive", "TrackedReceive", "read_body", "read_form"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


class TrackedReceive:
    """Wraps ASGI `receive` and remembers whether the body has been read to its end."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.complete = False
        self.disconnected = False

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.complete = self.disconnected = True
        elif not message.get("more_body", False):
            self.complete = True
        return message


class ClientGone(Exception):
    """Raised when the client disconnects before its body arrived."""


def _too_large(limit: int, length: int | None) -> ApiError:
    told = f" (Content-Length {length:,})" if length is not None else ""
    return ApiError(
        413,
        f"request body is larger than this server's limit of {limit:,} bytes{told}; "
        "send smaller or fewer images, or restart imgtrace serve with a larger --max-body",
        code="request_too_large",
    )


def _check_length(content_length: int | None, limit: int) -> None:
    if content_length is not None and content_length > limit:
        raise _too_large(limit, content_length)


async def _chunks(receive: Receive, limit: int) -> AsyncIterator[bytes]:
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise _too_large(limit, None)
        yield chunk
        if not message.get("more_body", False):
            return


async def read_form(
    receive: Receive, content_type: str | None, content_length: int | None, limit: int
) -> list[FormPartData]:
    """The parts of a multipart body; ApiError 413 over `limit`, 400 if malformed."""
    _check_length(content_length, limit)
    try:
        parser = StreamingFormParser(content_type)
    except MultipartError:
        raise ApiError(
            400, "multipart/form-data without a boundary parameter", code="invalid_multipart"
        ) from None
    try:
        async for chunk in _chunks(receive, limit):
            parser.feed(chunk)
        return parser.finish()
    except MultipartError as exc:
        raise ApiError(400, str(exc), code="invalid_multipart") from None


async def read_body(receive: Receive, content_length: int | None, limit: int) -> bytes:
    """A whole (small) body, e.g. JSON; ApiError 413 over `limit`."""
    _check_length(content_length, limit)
    body = bytearray()
    async for chunk in _chunks(receive, limit):
        body += chunk
    return bytes(body)
