"""A lean HTTP/1.1 client on an asyncio protocol: the proxy's upstream leg, the replay's sends.

Both only need to write a request head and body, parse one response head and take the body as
raw pieces. A general client (httpx over httpcore and h11) runs every byte of a multi-megabyte
image response through a state machine in small pieces: about 5 ms of CPU for a 0.8 MB
response, which on a dispatcher's event loop is send lag. Here httptools (llhttp, the C parser
uvicorn uses) reads the response head and decodes chunked bodies as they arrive, so each
server-sent event is handed on as soon as it is complete on the wire; a body framed by
Content-Length bypasses the parser once the head is read, and each piece is the very bytes
object the socket read returned. Connections are kept alive in a small pool. Failures are
`Http1Error`s named as httpx names its own, so `error_kind` classifies them alike.

Runs on asyncio only (uvicorn, which serves the proxy, is asyncio-only too).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

from ._http1_connection import READ_SIZE, Connection, Head
from ._http1_errors import (
    ConnectError,
    ConnectTimeout,
    Http1Timeout,
    PoolTimeout,
    ReadError,
    ReadTimeout,
    WriteTimeout,
)

__all__ = ["READ_SIZE", "Http1Pool", "Http1Response"]

_MAX_IDLE = 256  # idle keep-alive connections kept; more are closed when released


T = TypeVar("T")


async def _within(seconds: float, step: Awaitable[T], error: type[Http1Timeout], what: str) -> T:
    try:
        return await asyncio.wait_for(step, seconds)
    except asyncio.TimeoutError:
        raise error(f"the upstream did not {what} within {seconds:g} s") from None


class Http1Response:
    """A response whose head has been read; the body is read with `read()` and `aread()`.

    Call `aclose()` in every case: it returns the connection to the pool when the body was
    read to its end, and closes it otherwise.
    """

    def __init__(
        self, pool: Http1Pool, connection: Connection, head: Head, *, reusable: bool
    ) -> None:
        self.status = head.status
        self.headers = head.headers
        """Header names in lower case, values as received."""
        self.length = head.length
        self._pool = pool
        self._connection: Connection | None = connection
        self._keep_alive = head.keep_alive and reusable
        self._timeout = connection.timeout

    async def read(self) -> bytes:
        """The next piece of the body as soon as any of it has arrived; b"" at its end."""
        connection = self._connection
        if connection is None:
            raise ReadError("the response was closed")
        try:
            return await connection.read_body()
        except TimeoutError:
            raise ReadTimeout(
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


class Http1Pool:
    """Keep-alive HTTP/1.1 connections to one upstream origin.

    :param url: the upstream's base URL (http or https); its path is not used here.
    :param timeout: seconds allowed to connect, for each write, and between response bytes.
    :param max_connections: connections open at once; more requests wait up to `timeout`.
    :param keepalive_expiry: seconds a connection may stay idle and still be reused; set it
        below the server's own idle timeout (uvicorn 5 s), so that we close first instead of
        racing the server's close with the next request. None keeps them as long as they last.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        max_connections: int,
        keepalive_expiry: float | None = None,
    ) -> None:
        self.timeout = timeout
        self.keepalive_expiry = keepalive_expiry
        parts = urlsplit(url)
        self._host = parts.hostname or ""
        self._tls = parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        self._host_header = parts.netloc.rpartition("@")[2]
        self._ssl: ssl.SSLContext | None = None
        self._idle: collections.deque[Connection] = collections.deque()
        self._slots = asyncio.Semaphore(max_connections) if max_connections > 0 else None

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterator[bytes],
        content_length: int | None = None,
        on_phase: Callable[[str], None] | None = None,
    ) -> Http1Response:
        """Send one request and read its response head.

        `body` is the whole body, or its pieces; pieces go out with `content_length` framing
        when it is given, else chunked. `headers` must not hold framing or `host`. `on_phase`
        hears `"sending"` once connected, just before the head is written, and `"sent"` once
        the whole request is handed to the socket.
        """
        await self._take_slot()
        try:
            connection = await self._connection()
        except BaseException:
            self._free_slot()
            raise
        try:
            return await self._exchange(
                connection, method, target, headers, body, content_length, on_phase
            )
        except BaseException:
            # Cancelled (the client left), failed, or the body iterator gave up: the connection
            # is in an unknown state, and closing it tells the upstream the request is gone.
            self.release(connection, reuse=False)
            raise

    def release(self, connection: Connection, *, reuse: bool) -> None:
        if reuse and connection.usable() and len(self._idle) < _MAX_IDLE:
            connection.idle_since = time.monotonic()
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
        await _within(self.timeout, self._slots.acquire(), PoolTimeout, "free a connection")

    def _free_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def _connection(self) -> Connection:
        while self._idle:
            connection = self._idle.pop()  # the most recently used is the least likely stale
            if connection.usable() and not self._expired(connection):
                return connection
            connection.close()
        if self._tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        loop = asyncio.get_running_loop()
        try:
            connecting = loop.create_connection(
                lambda: Connection(self.timeout),
                self._host,
                self._port,
                ssl=self._ssl if self._tls else None,
                server_hostname=self._host if self._tls else None,
            )
            _, connection = await _within(
                self.timeout, connecting, ConnectTimeout, "accept a connection"
            )
        except OSError as exc:
            raise ConnectError(f"cannot connect: {exc!r}") from exc
        return connection

    def _expired(self, connection: Connection) -> bool:
        expiry = self.keepalive_expiry
        return expiry is not None and time.monotonic() - connection.idle_since > expiry

    async def _exchange(
        self,
        connection: Connection,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterator[bytes],
        content_length: int | None,
        on_phase: Callable[[str], None] | None,
    ) -> Http1Response:
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
        if on_phase is not None:
            on_phase("sending")
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
            if on_phase is not None:
                on_phase("sent")
        except OSError:
            # The upstream may have answered early (e.g. 413) and closed: read what it said.
            pass
        return await self._read_head(connection, reusable=sent_all)

    async def _drain(self, writer: Connection) -> None:
        try:
            await writer.drain()
        except TimeoutError:
            raise WriteTimeout(
                f"the upstream did not take the upload within {self.timeout:g} s"
            ) from None

    async def _send_pieces(
        self, writer: Connection, pieces: AsyncIterator[bytes], *, chunked: bool
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

    async def _read_head(self, connection: Connection, *, reusable: bool) -> Http1Response:
        try:
            head = await connection.read_head()
        except TimeoutError:
            raise ReadTimeout(f"the upstream did not answer within {self.timeout:g} s") from None
        return Http1Response(self, connection, head, reusable=reusable)
