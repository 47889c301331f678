"""A lean HTTP/1.1 client for the proxy's upstream leg, on an asyncio protocol.

The proxy only needs to write a request head, pass body bytes through, parse one response head
and relay the body as raw chunks. A general client (httpx over httpcore and h11) runs every byte
of a multi-megabyte image response through a state machine in small pieces; here the body moves
in reads of up to `READ_SIZE` bytes, and only the heads are parsed. Connections are kept alive in
a small pool. Failures are raised as httpx's exception types, so callers classify them the same
way as errors of `recorder.RecordingTransport` (`_capture.error_kind`).

Runs on asyncio only (uvicorn, which serves the proxy, is asyncio-only too).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import anyio
import httpx

__all__ = ["READ_SIZE", "UpstreamPool", "UpstreamResponse"]

# Largest body piece handed on at once; a connection reads ahead up to twice this before it
# stops reading the socket, which bounds memory per response.
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


class _Connection(asyncio.Protocol):
    """One upstream connection: received bytes are kept as the pieces the socket gave.

    Unlike `asyncio.StreamReader`, which copies everything into one buffer and copies it out
    again, a body piece is handed on as the very bytes object the socket read returned.
    Reading stops while more than twice `READ_SIZE` is waiting, which bounds memory.
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

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._pieces.append(data)
        self._size += len(data)
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
        self._error = exc
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

    # -- for the client --

    def usable(self) -> bool:
        # An idle connection the upstream has closed (or sent stray bytes on) is not reused.
        return (
            self.transport is not None
            and not self.transport.is_closing()
            and not self._eof
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

    async def read(self, limit: int) -> bytes:
        """The next received piece, cut at `limit` bytes; b"" at the end of the connection."""
        while not self._pieces:
            if self._eof:
                if self._error is not None:
                    raise self._error
                return b""
            await self._wait()
        piece = self._pieces.popleft()
        if len(piece) > limit:
            self._pieces.appendleft(piece[limit:])
            piece = piece[:limit]
        self._taken(len(piece))
        return piece

    async def readuntil(self, separator: bytes, limit: int) -> bytes:
        """Everything up to and including `separator`, which must come within `limit` bytes."""
        pieces = self._pieces
        while True:
            if pieces:
                buffer = pieces[0]
                end = buffer.find(separator)
                if end >= 0:
                    end += len(separator)
                    if end < len(buffer):
                        pieces[0] = buffer[end:]
                    else:
                        pieces.popleft()
                    self._taken(end)
                    return buffer[:end]
                if len(buffer) > limit:
                    raise asyncio.LimitOverrunError("separator not found in time", len(buffer))
                if len(pieces) > 1:
                    # Merge only as far as needed: the separator is near the front (a head,
                    # a chunk size line), while the pieces behind may be megabytes of body.
                    pieces.popleft()
                    pieces[0] = buffer + pieces[0]
                    continue
            if self._eof:
                if self._error is not None:
                    raise self._error
                raise asyncio.IncompleteReadError(b"".join(self._pieces), None)
            await self._wait()

    async def readexactly(self, count: int) -> bytes:
        pieces: list[bytes] = []
        while count:
            piece = await self.read(count)
            if not piece:
                raise asyncio.IncompleteReadError(b"".join(pieces), count)
            pieces.append(piece)
            count -= len(piece)
        return b"".join(pieces)

    def _taken(self, count: int) -> None:
        self._size -= count
        if self._reading_paused and self._size <= READ_SIZE and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

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
        self,
        pool: UpstreamPool,
        connection: _Connection,
        status: int,
        headers: list[tuple[bytes, bytes]],
        *,
        length: int | None,
        chunked: bool,
        keep_alive: bool,
    ) -> None:
        self.status = status
        self.headers = headers
        """Header names in lower case (as h11 gives them), values as received."""
        self.length = length
        self._pool = pool
        self._connection: _Connection | None = connection
        self._remaining = length  # bytes left of a sized body (or of the current chunk)
        self._chunked = chunked
        self._keep_alive = keep_alive
        self._done = length == 0
        self._timeout = connection.timeout

    async def read(self) -> bytes:
        """The next piece of the body as soon as any of it has arrived; b"" at its end."""
        if self._done:
            return b""
        connection = self._connection
        if connection is None:
            raise httpx.ReadError("the response was closed")
        try:
            if self._chunked:
                return await self._read_chunked(connection)
            return await self._read_plain(connection)
        except TimeoutError:
            raise httpx.ReadTimeout(
                f"the upstream did not send the next bytes within {self._timeout:g} s"
            ) from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise httpx.ReadError(f"reading the response failed: {exc!r}") from exc
        except (ValueError, asyncio.LimitOverrunError) as exc:
            raise httpx.RemoteProtocolError(f"malformed chunked response body: {exc}") from exc

    async def aread(self) -> bytes:
        """The rest of the body."""
        pieces = []
        while piece := await self.read():
            pieces.append(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection, reuse=self._done and self._keep_alive)

    async def _read_plain(self, reader: _Connection) -> bytes:
        remaining = self._remaining
        size = READ_SIZE if remaining is None else min(remaining, READ_SIZE)
        data = await reader.read(size)
        if remaining is None:
            # Delimited by the end of the connection.
            self._done = not data
            return data
        if not data:
            raise httpx.RemoteProtocolError(
                f"the upstream closed the connection {remaining} bytes before the end of "
                "the response body"
            )
        self._remaining = remaining - len(data)
        self._done = self._remaining == 0
        return data

    async def _read_chunked(self, reader: _Connection) -> bytes:
        if not self._remaining:
            line = await reader.readuntil(b"\r\n", _MAX_HEAD)
            digits = line.split(b";", 1)[0].strip()
            if not digits or digits.strip(b"0123456789abcdefABCDEF"):
                raise ValueError(f"bad chunk size line {line[:40]!r}")
            size = int(digits, 16)
            if size == 0:
                # Trailers (dropped, as hop-by-hop framing), up to the empty line.
                while await reader.readuntil(b"\r\n", _MAX_HEAD) != b"\r\n":
                    pass
                self._done = True
                return b""
            self._remaining = size
        remaining = self._remaining or 0
        # Hand on what has arrived without waiting for the whole chunk: an event stream's
        # events reach the client as the upstream sends them.
        data = await reader.read(min(remaining, READ_SIZE))
        if not data:
            raise asyncio.IncompleteReadError(b"", remaining)
        self._remaining = remaining - len(data)
        if self._remaining == 0 and await reader.readexactly(2) != b"\r\n":
            raise ValueError("a chunk does not end with CRLF")
        return data


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
        return await self._read_head(connection, method, reusable=sent_all)

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

    async def _read_head(
        self, connection: _Connection, method: str, *, reusable: bool
    ) -> UpstreamResponse:
        while True:
            try:
                raw = await connection.readuntil(b"\r\n\r\n", _MAX_HEAD)
            except TimeoutError:
                raise httpx.ReadTimeout(
                    f"the upstream did not answer within {self.timeout:g} s"
                ) from None
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise httpx.RemoteProtocolError(
                        "the upstream closed the connection in the middle of the response head"
                    ) from exc
                raise httpx.RemoteProtocolError(
                    "the upstream disconnected without sending a response"
                ) from exc
            except asyncio.LimitOverrunError as exc:
                raise httpx.RemoteProtocolError("the upstream's response head is too long") from exc
            except OSError as exc:
                raise httpx.ReadError(f"reading the response failed: {exc!r}") from exc
            if len(raw) > _MAX_HEAD:
                raise httpx.RemoteProtocolError("the upstream's response head is too long")
            status, version, headers = _parse_head(raw)
            if 100 <= status < 200 and status != 101:
                continue  # 100 Continue, 103 Early Hints: informational, not forwarded
            break
        length: int | None = None
        chunked = False
        keep_alive = version == b"HTTP/1.1"
        for name, value in headers:
            if name == b"content-length":
                length = _content_length(value, length)
            elif name == b"transfer-encoding":
                chunked = value.split(b",")[-1].strip().lower() == b"chunked"
                if not chunked:
                    keep_alive = False  # delimited by the end of the connection
            elif name == b"connection":
                tokens = {t.strip().lower() for t in value.split(b",")}
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens:
                    keep_alive = True
        if chunked:
            length = None
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            length, chunked = 0, False
        elif length is None and not chunked:
            keep_alive = False
        return UpstreamResponse(
            self,
            connection,
            status,
            headers,
            length=length,
            chunked=chunked,
            keep_alive=keep_alive and reusable,
        )


def _content_length(value: bytes, previous: int | None) -> int:
    text = value.split(b",")[0].strip()
    if not text.isdigit() or any(v.strip() != text for v in value.split(b",")):
        raise httpx.RemoteProtocolError(f"bad Content-Length in the response: {value!r}")
    length = int(text)
    if previous is not None and previous != length:
        raise httpx.RemoteProtocolError("conflicting Content-Length headers in the response")
    return length


def _parse_head(raw: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    lines = raw[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"not an HTTP/1.1 status line: {lines[0][:100]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise httpx.RemoteProtocolError(f"malformed response header line: {line[:100]!r}")
        headers.append((name.lower(), value.strip(b" \t")))
    return int(parts[1]), parts[0], headers
