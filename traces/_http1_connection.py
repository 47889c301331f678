"""One keep-alive connection of the HTTP/1.1 client (`_http1_pool`), parsing as bytes arrive.

httptools (see `_http1_parser`) reads the head and decodes a chunked body piece by piece, so
an event stream's events are handed on as they come; a body framed by Content-Length leaves the
parser after the head, and its pieces are the very bytes objects the socket reads returned.
"""

from __future__ import annotations

import asyncio
import collections

from ._http1_errors import ReadError, RemoteProtocolError
from ._http1_parser import PARSE_ERRORS, ResponseParser, new_parser

__all__ = ["READ_SIZE", "Connection", "Head"]

# A connection stops reading the socket while more than twice this much body is waiting to be
# handed on, which bounds memory per response.
READ_SIZE = 1 << 20
_MAX_HEAD = 64 << 10


class Head:
    """A final response head, as parsed."""

    __slots__ = ("headers", "keep_alive", "length", "status")

    def __init__(
        self, status: int, headers: list[tuple[bytes, bytes]], length: int | None, keep_alive: bool
    ) -> None:
        self.status = status
        self.headers = headers
        self.length = length
        self.keep_alive = keep_alive


class Connection(asyncio.Protocol):
    """One upstream connection, parsing the response to the request in flight as it arrives.

    Body pieces wait in a queue until the client takes them; reading stops while more than
    twice `READ_SIZE` is waiting. Bytes that belong to no response make it unusable.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self._pieces: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._eof = False
        self._closed = False
        self._error: BaseException | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._drainer: asyncio.Future[None] | None = None
        self._stray = False  # bytes arrived that belong to no response
        self.idle_since = 0.0
        """When it went back to its pool (monotonic seconds)."""
        self._reset()

    def _reset(self) -> None:
        self._parser: ResponseParser | None = None
        self._bodyless = False  # the response to a HEAD request
        self._head_bytes = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._length: int | None = None
        self._chunked = False
        self.head: Head | None = None
        self.complete = False
        self._remaining: int | None = None  # of a Content-Length body, once the parser is left

    def expect_response(self, method: str) -> None:
        """Parse what comes next as the response to a `method` request."""
        self._reset()
        self._parser = new_parser(self, method)
        self._bodyless = method == "HEAD"

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._remaining is not None:
            self._plain_body(data)
        elif self._parser is None or self.complete:
            self._stray = True
        else:
            try:
                self._parser.feed_data(data)
            except PARSE_ERRORS as exc:
                self._fail(f"malformed response from the upstream: {exc}")
            if self.head is None:
                self._head_bytes += len(data)
                if self._head_bytes > _MAX_HEAD:
                    self._fail("the upstream's response head is too long")
        if self._size > 2 * READ_SIZE and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # close the connection: the upstream is done with it

    def connection_lost(self, exc: BaseException | None) -> None:
        self._eof = self._closed = True
        if self._error is None and exc is not None:
            self._error = ReadError(f"reading the response failed: {exc!r}")
        self._wake()
        drainer, self._drainer = self._drainer, None
        if drainer is not None and not drainer.done():
            drainer.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        drainer, self._drainer = self._drainer, None
        if drainer is not None and not drainer.done():
            drainer.set_result(None)

    # -- parser callbacks --

    def on_message_begin(self) -> None:
        if self.head is not None:
            self._stray = True  # a second response to one request
        self._headers = []
        self._length = None

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head is not None:
            return  # a trailer of a chunked body: hop-by-hop framing, dropped
        name = name.lower()
        if name == b"content-length":
            self._length = int(value)  # llhttp has checked the digits
        self._headers.append((name, value.strip(b" \t")))

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # 100 Continue, 103 Early Hints: informational, not forwarded
        length = self._length
        codings = [v for n, v in self._headers if n == b"transfer-encoding"]
        if codings:
            length = None  # chunked (or delimited by the close), whatever Content-Length says
            self._chunked = codings[-1].rsplit(b",", 1)[-1].strip().lower() == b"chunked"
        if self._bodyless or status in (204, 304):
            length = 0
        self.head = Head(status, self._headers, length, parser.should_keep_alive())
        if length == 0:
            self.complete = True
        elif length is not None:
            # Leave the parser: the rest of the body is counted, not parsed.
            self._remaining = length
            self._parser = None

    def on_body(self, body: bytes) -> None:
        if self._remaining is not None:
            self._plain_body(body)
        elif self.complete:
            self._stray = True
        else:
            self._add(body)

    def on_message_complete(self) -> None:
        if self.head is not None:
            self.complete = True

    # -- for the client --

    def usable(self) -> bool:
        # An idle connection the upstream has closed (or sent stray bytes on) is not reused.
        return (
            self.transport is not None
            and not self.transport.is_closing()
            and not self._eof
            and not self._stray
            and self._error is None
            and not self._size
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the upstream takes what was written; OSError if it went away."""
        if self._writing_paused and not self._closed:
            self._drainer = asyncio.get_running_loop().create_future()
            await self._until(self._drainer)
        if self._closed:
            raise ConnectionResetError(f"the upstream closed the connection ({self._error!r})")

    async def read_head(self) -> Head:
        """The final response head; TimeoutError, or an `Http1Error` if none comes."""
        while self.head is None:
            if self._error is not None:
                raise self._error
            if self._eof:
                if self._head_bytes:
                    raise RemoteProtocolError(
                        "the upstream closed the connection in the middle of the response head"
                    )
                raise RemoteProtocolError("the upstream disconnected without sending a response")
            await self._wait()
        return self.head

    async def read_body(self) -> bytes:
        """The next piece of the body as soon as any of it has arrived; b"" at its end."""
        while not self._pieces:
            if self.complete:
                return b""
            if self._error is not None:
                raise self._error
            if self._eof:
                if self._remaining is not None:
                    raise RemoteProtocolError(
                        f"the upstream closed the connection {self._remaining} bytes before "
                        "the end of the response body"
                    )
                if self._parser is not None and self._chunked:
                    raise ReadError("the upstream closed the connection mid-chunked body")
                self.complete = True  # delimited by the end of the connection
                return b""
            await self._wait()
        piece = self._pieces.popleft()
        self._size -= len(piece)
        if self._reading_paused and self._size <= READ_SIZE and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return piece

    def _plain_body(self, data: bytes) -> None:
        remaining = self._remaining or 0
        if len(data) > remaining:
            self._stray = True
            data = data[:remaining]
        self._remaining = remaining - len(data)
        if data:
            self._add(data)
        if not self._remaining:
            self._remaining = None
            self.complete = True

    def _add(self, piece: bytes) -> None:
        self._pieces.append(piece)
        self._size += len(piece)

    def _fail(self, message: str) -> None:
        if self._error is None:
            self._error = RemoteProtocolError(message)
        self._parser = None

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        await self._until(self._waiter)

    async def _until(self, future: asyncio.Future[None]) -> None:
        """Wait for `future`, at most `timeout` seconds (TimeoutError)."""

        def expire() -> None:
            if not future.done():
                future.set_exception(TimeoutError())

        timer = asyncio.get_running_loop().call_later(self.timeout, expire)
        try:
            await future
        finally:
            timer.cancel()
