"""A lean HTTP/1.1 client for the proxy's upstream leg, on an asyncio protocol.

The proxy only needs to write a request head, pass body bytes through, parse one response head
and relay the body as raw pieces. A general client (httpx over httpcore and h11) runs every byte
of a multi-megabyte image response through a state machine in small pieces. Here httptools
(llhttp, the C parser uvicorn uses) reads the response head and decodes chunked bodies as they
arrive, so each server-sent event is handed on as soon as it is complete on the wire; a body
framed by Content-Length bypasses the parser once the head is read, and each piece is the very
bytes object the socket read returned. Connections are kept alive in a small pool. Failures are
raised as httpx's exception types, so callers classify them the same way as errors of
`recorder.RecordingTransport` (`_capture.error_kind`).

Runs on asyncio only (uvicorn, which serves the proxy, is asyncio-only too).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import anyio
import httptools
import httpx

__all__ = ["READ_SIZE", "UpstreamPool", "UpstreamResponse"]

# A connection stops reading the socket while more than twice this much body is waiting to be
# handed on, which bounds memory per response.
READ_SIZE = 1 << 20
_MAX_HEAD = 64 << 10
_MAX_IDLE = 256  # idle keep-alive connections kept; more are closed when released


@contextmanager
def _limit(seconds: float, error: type[httpx.TimeoutException], what: str) -> Iterator[None]:
    try:
        with anyio.fail_after(seconds):
            yield
    except TimeoutError:
        raise error(f"the upstream did not {what} within {seconds:g} s") from None


class _Head:
    """A final response head as httptools parsed it."""

    __slots__ = ("headers", "keep_alive", "length", "status")

    def __init__(
        self, status: int, headers: list[tuple[bytes, bytes]], length: int | None, keep_alive: bool
    ) -> None:
        self.status = status
        self.headers = headers
        self.length = length
        self.keep_alive = keep_alive


class _Connection(asyncio.Protocol):
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
        self._reset()

    def _reset(self) -> None:
        self._parser: httptools.HttpResponseParser | None = None
        self._bodyless = False  # the response to a HEAD request
        self._head_bytes = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._length: int | None = None
        self.head: _Head | None = None
        self.complete = False
        self._remaining: int | None = None  # of a Content-Length body, once the parser is left

    def expect_response(self, method: str) -> None:
        """Parse what comes next as the response to a `method` request."""
        self._reset()
        self._parser = httptools.HttpResponseParser(self)
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
            except httptools.HttpParserCallbackError as exc:
                self._fail(exc.__context__ or exc)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                self._fail(
                    httpx.RemoteProtocolError(f"malformed response from the upstream: {exc}")
                )
            if self.head is None:
                self._head_bytes += len(data)
                if self._head_bytes > _MAX_HEAD and self._error is None:
                    self._fail(
                        httpx.RemoteProtocolError("the upstream's response head is too long")
                    )
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
            self._error = httpx.ReadError(f"reading the response failed: {exc!r}")
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

    # -- httptools callbacks --

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
        if any(n == b"transfer-encoding" for n, _ in self._headers):
            length = None  # chunked (or delimited by the close), whatever Content-Length says
        if self._bodyless or status in (204, 304):
            length = 0
        self.head = _Head(status, self._headers, length, parser.should_keep_alive())
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

    async def read_head(self) -> _Head:
        """The final response head; TimeoutError, or an httpx error if none comes."""
        while self.head is None:
            if self._error is not None:
                raise self._error
            if self._eof:
                if self._head_bytes:
                    raise httpx.RemoteProtocolError(
                        "the upstream closed the connection in the middle of the response head"
                    )
                raise httpx.RemoteProtocolError(
                    "the upstream disconnected without sending a response"
                )
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
                    raise httpx.RemoteProtocolError(
                        f"the upstream closed the connection {self._remaining} bytes before "
                        "the end of the response body"
                    )
                if self._parser is not None and any(
                    n == b"transfer-encoding" for n, _ in self._headers
                ):
                    raise httpx.ReadError("the upstream closed the connection mid-chunked body")
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

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
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


class UpstreamResponse:
    """A response whose head has been read; the body is read with `read()` and `aread()`.

    Call `aclose()` in every case: it returns the connection to the pool when the body was
    read to its end, and closes it otherwise.
    """

    def __init__(
        self, pool: UpstreamPool, connection: _Connection, head: _Head, *, reusable: bool
    ) -> None:
        self.status = head.status
        self.headers = head.headers
        """Header names in lower case (as h11 gives them), values as received."""
        self.length = head.length
        self._pool = pool
        self._connection: _Connection | None = connection
        self._keep_alive = head.keep_alive and reusable
        self._timeout = connection.timeout

    async def read(self) -> bytes:
        """The next piece of the body as soon as any of it has arrived; b"" at its end."""
        connection = self._connection
        if connection is None:
            raise httpx.ReadError("the response was closed")
        try:
            return await connection.read_body()
        except TimeoutError:
            raise httpx.ReadTimeout(
                f"the upstream did not send the next bytes within {self._timeout:g} s"
            ) from None

    async def aread(self) -> bytes:
        """The rest of the body."""
        pieces = []
        while piece := await self.read():
            pieces.append(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection, reuse=connection.complete and self._keep_alive)


class UpstreamPool:
    """Keep-alive HTTP/1.1 connections to one upstream origin.

    :param url: the upstream's base URL (http or https); its path is not used here.
    :param timeout: seconds allowed to connect, for each write, and between response bytes.
    :param max_connections: connections open at once; more requests wait up to `timeout`.
    """

    def __init__(self, url: httpx.URL, *, timeout: float, max_connections: int) -> None:
        self.timeout = timeout
        self._host = url.host
        self._tls = url.scheme == "https"
        self._port = url.port or (443 if self._tls else 80)
        self._host_header = url.netloc.decode("ascii")
        self._ssl: ssl.SSLContext | None = None
        self._idle: collections.deque[_Connection] = collections.deque()
        self._slots = asyncio.Semaphore(max_connections) if max_connections > 0 else None

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterator[bytes],
        content_length: int | None = None,
    ) -> UpstreamResponse:
        """Send one request and read its response head.

        `body` is the whole body, or its pieces; pieces go out with `content_length` framing
        when it is given, else chunked. `headers` must not hold framing or `host`.
        """
        await self._take_slot()
        try:
            connection = await self._connection()
        except BaseException:
            self._free_slot()
            raise
        try:
            return await self._exchange(connection, method, target, headers, body, content_length)
        except BaseException:
            # Cancelled (the client left), failed, or the body iterator gave up: the connection
            # is in an unknown state, and closing it tells the upstream the request is gone.
            self.release(connection, reuse=False)
            raise

    def release(self, connection: _Connection, *, reuse: bool) -> None:
        if reuse and connection.usable() and len(self._idle) < _MAX_IDLE:
            self._idle.append(connection)
        else:
            connection.close()
        self._free_slot()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, collections.deque()
        for connection in idle:
            connection.close()

    async def _take_slot(self) -> None:
        if self._slots is None:
            return
        if not self._slots.locked():
            await self._slots.acquire()
            return
        with _limit(self.timeout, httpx.PoolTimeout, "free a connection"):
            await self._slots.acquire()

    def _free_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()  # the most recently used is the least likely stale
            if connection.usable():
                return connection
            connection.close()
        if self._tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        loop = asyncio.get_running_loop()
        try:
            with _limit(self.timeout, httpx.ConnectTimeout, "accept a connection"):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self.timeout),
                    self._host,
                    self._port,
                    ssl=self._ssl if self._tls else None,
                    server_hostname=self._host if self._tls else None,
                )
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect: {exc!r}") from exc
        return connection

    async def _exchange(
        self,
        connection: _Connection,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterator[bytes],
        content_length: int | None,
    ) -> UpstreamResponse:
        lines = [f"{method} {target} HTTP/1.1\r\nhost: {self._host_header}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers]
        if isinstance(body, bytes):
            if body or method not in ("GET", "HEAD", "OPTIONS", "DELETE", "TRACE"):
                lines.append(f"content-length: {len(body)}\r\n")
        elif content_length is not None:
            lines.append(f"content-length: {content_length}\r\n")
        else:
            lines.append("transfer-encoding: chunked\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        connection.expect_response(method)
        sent_all = False
        writer = connection
        try:
            if isinstance(body, bytes):
                # One write for a small request; a large body is not copied onto the head.
                if len(body) < 65536:
                    writer.write(head + body)
                else:
                    writer.write(head)
                    writer.write(body)
                await self._drain(writer)
            else:
                writer.write(head)
                await self._send_pieces(writer, body, chunked=content_length is None)
            sent_all = True
        except OSError:
            # The upstream may have answered early (e.g. 413) and closed: read what it said.
            pass
        return await self._read_head(connection, reusable=sent_all)

    async def _drain(self, writer: _Connection) -> None:
        try:
            await writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout(
                f"the upstream did not take the upload within {self.timeout:g} s"
            ) from None

    async def _send_pieces(
        self, writer: _Connection, pieces: AsyncIterator[bytes], *, chunked: bool
    ) -> None:
        async for piece in pieces:
            if not piece:
                continue
            if chunked:
                writer.write(b"%x\r\n" % len(piece))
                writer.write(piece)
                writer.write(b"\r\n")
            else:
                writer.write(piece)
            await self._drain(writer)
        if chunked:
            writer.write(b"0\r\n\r\n")
        await self._drain(writer)

    async def _read_head(self, connection: _Connection, *, reusable: bool) -> UpstreamResponse:
        try:
            head = await connection.read_head()
        except TimeoutError:
            raise httpx.ReadTimeout(
                f"the upstream did not answer within {self.timeout:g} s"
            ) from None
        return UpstreamResponse(self, connection, head, reusable=reusable)
