"""The HTTP/1.1 client's response parser (`_http1_pool`): httptools, or h11 where it is missing.

httptools (llhttp, in C) is a dependency of imgtrace and what runs; h11 (pure Python, always
present as httpx's own parser) stands in only where httptools cannot be installed, through an
adapter that makes the same callbacks: `on_message_begin`, `on_header(name, value)`,
`on_headers_complete`, `on_body(data)`, `on_message_complete`.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["PARSE_ERRORS", "ResponseParser", "new_parser"]


class ResponseParser(Protocol):
    def feed_data(self, data: bytes) -> None: ...

    def get_status_code(self) -> int: ...

    def should_keep_alive(self) -> bool: ...


class ParseError(Exception):
    """The h11 adapter's error for a malformed response."""


PARSE_ERRORS: tuple[type[Exception], ...] = (ParseError,)
try:
    import httptools
except ImportError:  # pragma: no cover - httptools is a dependency; h11 is the fallback
    _HTTPTOOLS = False
else:
    _HTTPTOOLS = True
    PARSE_ERRORS += (httptools.HttpParserError, httptools.HttpParserUpgrade)


def new_parser(callbacks: Any, method: str, *, use_h11: bool = False) -> ResponseParser:
    """A parser for the response to one `method` request, calling back into `callbacks`."""
    if _HTTPTOOLS and not use_h11:
        parser: ResponseParser = httptools.HttpResponseParser(callbacks)
        return parser
    return _H11Parser(callbacks, method)


class _H11Parser:
    """h11's client state machine, driven with a request that is never sent, as a parser."""

    def __init__(self, callbacks: Any, method: str) -> None:
        import h11

        self._h11 = h11
        self._callbacks = callbacks
        self._connection = h11.Connection(h11.CLIENT)
        # h11 frames a response by the request it answers (a HEAD response has no body).
        self._connection.send(
            h11.Request(
                method=method, target="/", headers=[("host", "upstream"), ("content-length", "0")]
            )
        )
        self._connection.send(h11.EndOfMessage())
        self._bodyless = method == "HEAD"
        self._status = 0
        self._keep_alive = False

    def get_status_code(self) -> int:
        return self._status

    def should_keep_alive(self) -> bool:
        return self._keep_alive

    def feed_data(self, data: bytes) -> None:
        h11, callbacks = self._h11, self._callbacks
        self._connection.receive_data(data)
        while True:
            try:
                event = self._connection.next_event()
            except h11.RemoteProtocolError as exc:
                raise ParseError(str(exc)) from None
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, (h11.InformationalResponse, h11.Response)):
                callbacks.on_message_begin()
                self._status = event.status_code
                names = set()
                for name, value in event.headers.raw_items():
                    names.add(name.lower())
                    callbacks.on_header(name, value)
                self._keep_alive = self._reusable(event, names)
                callbacks.on_headers_complete()
                if isinstance(event, h11.InformationalResponse):
                    callbacks.on_message_complete()
            elif isinstance(event, h11.Data):
                callbacks.on_body(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                callbacks.on_message_complete()
                if self._connection.trailing_data[0]:
                    raise ParseError("bytes after the end of the response")
                return

    def _reusable(self, event: Any, names: set[bytes]) -> bool:
        tokens = {
            token.strip().lower()
            for name, value in event.headers
            if name == b"connection"
            for token in value.split(b",")
        }
        framed = (
            b"content-length" in names
            or b"transfer-encoding" in names
            or self._bodyless
            or self._status in (204, 304)
            or self._status < 200
        )
        return bool(event.http_version == b"1.1" and b"close" not in tokens and framed)
