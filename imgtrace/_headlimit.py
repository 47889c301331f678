"""A limit on the size of a request head, for the uvicorn of `imgtrace serve` and `record`.

httptools (uvicorn's C parser) has no limit of its own: a 16 MiB header line is buffered whole and
handed to the application. This protocol counts the head as it is parsed. A head over the limit
is not passed on: the headers that fitted are kept, the rest is read and dropped unparsed, and
the application is called once with `traces.HEAD_TOO_LARGE` in its scope and no body, so it
answers 431 (Request Header Fields Too Large) in its own words, and the proxy records the
refusal, never the bytes. The connection is closed after that answer; its write side first, so
a client still sending its head reads the 431 rather than a reset.

The head is counted as the request line plus each header line, `name: value` with its CRLF, and
the final CRLF. Memory per connection stays below the limit plus one socket read (256 KiB).

Without httptools, uvicorn's h11 applies the same number (`h11_max_incomplete_event_size`) and
answers a plain 400 itself, unrecorded.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any
from urllib.parse import unquote

from traces import HEAD_TOO_LARGE, UsageError

__all__ = ["check_max_header_size", "http_protocol", "uvicorn_http"]

_REQUEST_LINE_EXTRA = len("  HTTP/1.1\r\n")
_HEADER_LINE_EXTRA = len(": \r\n")


def check_max_header_size(value: int, flag: str = "--max-header-size") -> int:
    """`value` if it is a usable limit (1 KiB or more); UsageError with the reason otherwise."""
    if value < 1024:
        raise UsageError(f"{flag} must be at least 1024 bytes, not {value}")
    return value


def uvicorn_http(max_header_size: int) -> dict[str, Any]:
    """The `uvicorn.Config` arguments that enforce `max_header_size`."""
    check_max_header_size(max_header_size)
    return {
        "http": http_protocol(max_header_size),
        "h11_max_incomplete_event_size": max_header_size,
    }


def http_protocol(max_header_size: int) -> Any:
    """uvicorn's `http` setting: httptools with the head limit when installed, else "h11".

    httptools (uvicorn's C parser) takes about a quarter less CPU per forwarded image request
    than the pure-Python h11 (benchmarks/proxy_overhead.py); without it all works the same,
    only slower.
    """
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    return _limited_httptools(max_header_size)


class _LingeringClose(asyncio.Transport):
    """The transport as uvicorn's response cycle sees it: `close()` only ends our side.

    A client still sending a long head would get a reset, and maybe lose the 431, if the socket
    were closed with its bytes unread; a half-close lets it read the answer, then hang up (or
    uvicorn's keep-alive timeout closes the connection).
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        if self._transport.can_write_eof() and not self._transport.is_closing():
            self._transport.write_eof()
        else:
            self._transport.close()


def _limited_httptools(limit: int) -> type[asyncio.Protocol]:
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

    class HeadLimitedProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._heads = 0  # requests begun on this connection
            self._in_head = False
            self._counted = 0  # the head's size as counted so far (see the module docstring)
            self._unparsed = 0  # bytes of later reads while a head was still incomplete
            self._over = False
            self._refused = False

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # the rest of a refused request: read, so the client can finish, dropped
            heads = self._heads
            super().data_received(data)
            if self._refused or not self._in_head:
                return
            # Still in a head after this read. The read a head began in is not counted here:
            # it may also hold the end of the previous request.
            if heads == self._heads:
                self._unparsed += len(data)
            if self._unparsed > limit:
                self._over = True
                self._refuse()

        def on_message_begin(self) -> None:
            if self._refused:
                return
            super().on_message_begin()
            self._heads += 1
            self._in_head, self._counted, self._unparsed, self._over = True, 0, 0, False

        def on_url(self, url: bytes) -> None:
            if self._refused:
                return
            self._counted += len(url)
            if self._counted + _REQUEST_LINE_EXTRA > limit:
                self._over = True
            if not self._over:
                super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            if self._refused:
                return
            self._counted += len(name) + len(value) + _HEADER_LINE_EXTRA
            if self._counted + _REQUEST_LINE_EXTRA + 2 > limit:
                self._over = True  # this header and all after it are not kept
            if not self._over:
                super().on_header(name, value)

        def on_body(self, body: bytes) -> None:
            if not self._refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if not self._refused:
                super().on_message_complete()

        def on_headers_complete(self) -> None:
            if self._refused:
                return
            self._in_head = False
            method = self.parser.get_method()
            if self._counted + len(method) + _REQUEST_LINE_EXTRA + 2 > limit:
                self._over = True
            if self._over:
                self._refuse()
            else:
                super().on_headers_complete()

        def _refuse(self) -> None:
            """Hand the application what fitted, marked, with no body; then drop the rest."""
            self._refused, self._in_head = True, False
            try:
                method = self.parser.get_method().decode("ascii", "replace")
            except httptools.HttpParserError:
                method = "GET"
            try:
                parsed = httptools.parse_url(self.url or b"/")
                raw_path, query = parsed.path or b"/", parsed.query or b""
            except httptools.HttpParserInvalidURLError:
                raw_path, query = b"/", b""
            scope = self.scope
            scope["method"] = method or "GET"
            scope["path"] = self.root_path + unquote(raw_path.decode("latin-1"))
            scope["raw_path"] = self.root_path.encode("ascii") + raw_path
            scope["query_string"] = query
            # At least this many bytes: exact for a complete head, what was read of another.
            size = max(self._counted + len(method) + _REQUEST_LINE_EXTRA + 2, self._unparsed)
            scope.setdefault("extensions", {})[HEAD_TOO_LARGE] = {"limit": limit, "size": size}
            previous = self.cycle
            self.cycle = RequestResponseCycle(
                scope=scope,
                transport=_LingeringClose(self.transport),
                flow=self.flow,
                logger=self.logger,
                access_logger=self.access_logger,
                access_log=self.access_log,
                default_headers=self.server_state.default_headers,
                message_event=asyncio.Event(),
                expect_100_continue=False,
                keep_alive=False,
                on_response=self.on_response_complete,
            )
            self.cycle.more_body = False
            if previous is None or previous.response_complete:
                self._start_asgi_task(self.cycle, self.app)
            else:
                self.pipeline.appendleft((self.cycle, self.app))

    return HeadLimitedProtocol
