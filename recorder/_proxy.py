"""The recording reverse proxy: a raw ASGI app that streams to an upstream.

Every request is forwarded whatever its path; bodies stream both ways chunk by chunk (the upload
reaches the upstream while it is still arriving, and each server-sent event reaches the client as
soon as the upstream sends it). Requests on recorded paths are teed into an `Exchange` (references
to the very chunks forwarded, no copies) and handed to a recorder, which never blocks this loop:
`imgtrace record` uses a `RecorderProcess`, so parsing, hashing and writing run in another
process and never hold this loop's GIL. The upstream leg is a lean HTTP/1.1 client
(`traces.Http1Pool`): httptools parses the response head and chunked framing, and a sized body is
relayed in the pieces the socket gives.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, NamedTuple

import anyio
import httpx
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from traces import HEAD_TOO_LARGE, ErrorKind, Http1Error, Http1Pool, Http1Response, Http1Timeout

from ._capture import HOP_BY_HOP, Exchange, error_kind
from ._intake import CaptureSink

__all__ = ["RecordingProxy"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_error_encoder = msgspec.json.Encoder()
# Not forwarded upstream: connection-level headers, `expect` (the proxy answers 100-continue
# itself; the upstream sees an ordinary upload), and the framing, which is per hop.
_DROP_UPSTREAM = HOP_BY_HOP | {"host", "expect", "content-length"}
_HOP_BYTES = frozenset(name.encode("latin-1") for name in HOP_BY_HOP)
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})
# Upload chunks read ahead of the upstream writes (uvicorn's reads are at most 256 KiB, so this
# bounds the upload's memory per request to a few MiB).
_AHEAD = 8
# Responses up to this size (by Content-Length) are read whole and written in one piece.
_SMALL = 256 << 10


class _ClientGone(Exception):
    """The client disconnected before its upload was complete."""


class _Request(NamedTuple):
    """The arguments of `Http1Pool.request`."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes | AsyncIterator[bytes]
    content_length: int | None


def _declared_length(headers: list[tuple[str, str]]) -> int | None:
    """The client's Content-Length when the body is framed by it (passed on as is), else None."""
    if any(name == "transfer-encoding" for name, _ in headers):
        return None
    for name, value in headers:
        if name == "content-length" and value.strip().isdigit():
            return int(value)
    return None


class _Flow:
    """Per-request state shared by the upload, the response pump and the disconnect watcher."""

    __slots__ = ("aborted", "bytes_up", "finished", "upload_done_ns")

    def __init__(self) -> None:
        self.finished = False
        self.aborted: str | None = None
        self.bytes_up = 0
        self.upload_done_ns: int | None = None


def _error_body(status: int, message: str) -> bytes:
    kind, code = {
        504: ("upstream_timeout", "gateway_timeout"),
        431: ("invalid_request_error", "request_header_fields_too_large"),
    }.get(status, ("upstream_error", "bad_gateway"))
    return _error_encoder.encode(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}
    )


class RecordingProxy:
    """An ASGI app forwarding to `upstream` and recording matching exchanges into `recorder`.

    :param upstream: base URL of the real server, e.g. ``http://127.0.0.1:30000``.
    :param recorder: where exchanges go (a `RecorderProcess` or a `Recorder`); the proxy never
        closes it.
    :param timeout: seconds the upstream may take to connect, to accept the next piece of the
        upload, or to send the next bytes of its response (504 when exceeded before the
        response started).
    :param max_connections: upstream connection pool size (idle ones are kept alive).

    A request head over the HTTP server's limit (marked with `traces.HEAD_TOO_LARGE`, see
    `--max-header-size`) is answered 431, never forwarded, and recorded with
    only the headers that fitted.
    """

    def __init__(
        self,
        upstream: str,
        recorder: CaptureSink,
        *,
        timeout: float = 600.0,
        max_connections: int = 1000,
    ) -> None:
        url = httpx.URL(upstream)
        self.upstream = url
        self._prefix = url.raw_path.rstrip(b"/").decode("ascii")
        self.recorder = recorder
        self._timeout = timeout
        self._max_connections = max_connections
        # Made on first use, inside the event loop that serves the proxy.
        self._pool: Http1Pool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    def _upstream_pool(self) -> Http1Pool:
        if self._pool is None:
            self._pool = Http1Pool(
                str(self.upstream), timeout=self._timeout, max_connections=self._max_connections
            )
        return self._pool

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- one request --------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        query: bytes = scope.get("query_string", b"")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        exchange = self.recorder.begin(method, scope["path"], query.decode("latin-1"), headers)
        refused = scope.get("extensions", {}).get(HEAD_TOO_LARGE)
        if refused is not None:
            await self._refuse_head(send, exchange, refused)
            return
        flow = _Flow()
        target = self._prefix + raw_path.decode("latin-1")
        if query:
            target += "?" + query.decode("latin-1")
        has_body = method not in _BODYLESS or any(
            name in ("content-length", "transfer-encoding") for name, _ in headers
        )
        content: bytes | AsyncIterator[bytes] = b""
        length: int | None = None
        chunks_in: MemoryObjectSendStream[bytes] | None = None
        chunks_out: MemoryObjectReceiveStream[bytes] | None = None
        first: Message | None = None
        if has_body:
            first = await receive()
            if first["type"] == "http.request" and not first.get("more_body", False):
                # The whole body came at once (small uploads): no read-ahead machinery needed.
                whole: bytes = first.get("body", b"")
                content, flow.bytes_up = whole, len(whole)
                if exchange is not None:
                    exchange.add_request_chunk(whole)
                flow.upload_done_ns = time.monotonic_ns()
                first = None
            else:
                # A longer upload is read by its own task, a few chunks ahead of the upstream
                # writes, so both legs move at once.
                chunks_in, chunks_out = anyio.create_memory_object_stream[bytes](_AHEAD)
                content = self._upload(chunks_out, flow)
                length = _declared_length(headers)
        request = _Request(method, target, self._forward_headers(scope, headers), content, length)
        async with anyio.create_task_group() as group:
            group.start_soon(
                self._read_client, receive, first, chunks_in, exchange, flow, group.cancel_scope
            )
            await self._exchange(request, send, exchange, flow)
            group.cancel_scope.cancel()
        if isinstance(content, AsyncGenerator):
            await content.aclose()
        if chunks_out is not None:
            chunks_out.close()
        if exchange is not None:
            if flow.aborted is not None:
                exchange.fail("aborted", f"client disconnected {flow.aborted}")
                exchange.notes["aborted"] = flow.aborted
            exchange.upload_done_ns = flow.upload_done_ns
            self.recorder.submit(exchange)

    def _forward_headers(
        self, scope: Scope, headers: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        connection_tokens = {
            token.strip().lower()
            for name, value in headers
            if name == "connection"
            for token in value.split(",")
        }
        out = [
            (name, value)
            for name, value in headers
            if name not in _DROP_UPSTREAM and name not in connection_tokens
        ]
        client = scope.get("client")
        if client:
            prior = [v for n, v in headers if n == "x-forwarded-for"]
            out = [(n, v) for n, v in out if n != "x-forwarded-for"]
            out.append(("x-forwarded-for", ", ".join([*prior, client[0]])))
        if not any(n == "x-forwarded-proto" for n, _ in headers):
            out.append(("x-forwarded-proto", scope.get("scheme", "http")))
        host = next((v for n, v in headers if n == "host"), None)
        if host is not None and not any(n == "x-forwarded-host" for n, _ in headers):
            out.append(("x-forwarded-host", host))
        return out

    async def _read_client(
        self,
        receive: Receive,
        first: Message | None,
        chunks: MemoryObjectSendStream[bytes] | None,
        exchange: Exchange | None,
        flow: _Flow,
        scope: anyio.CancelScope,
    ) -> None:
        """Feed the rest of the upload to `chunks`, then cancel `scope` if the client leaves."""
        if chunks is not None and first is not None:
            with chunks:
                message = first
                while True:
                    if message["type"] == "http.disconnect":
                        flow.aborted = f"during the upload, after {flow.bytes_up} bytes"
                        scope.cancel()
                        return
                    chunk: bytes = message.get("body", b"")
                    if chunk:
                        flow.bytes_up += len(chunk)
                        if exchange is not None:
                            exchange.add_request_chunk(chunk)
                        await chunks.send(chunk)
                    if not message.get("more_body", False):
                        break
                    message = await receive()
            flow.upload_done_ns = time.monotonic_ns()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not flow.finished:
                    flow.aborted = "while waiting for the response"
                    scope.cancel()
                return

    async def _upload(
        self, chunks: MemoryObjectReceiveStream[bytes], flow: _Flow
    ) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            yield chunk
        if flow.aborted is not None:
            raise _ClientGone

    async def _exchange(
        self, request: _Request, send: Send, exchange: Exchange | None, flow: _Flow
    ) -> None:
        try:
            response = await self._upstream_pool().request(*request)
        except _ClientGone:
            return
        except Http1Error as exc:
            await self._fail(send, exchange, flow, exc)
            return
        try:
            first_byte = time.monotonic_ns()
            headers = [(name, value) for name, value in response.headers if name not in _HOP_BYTES]
            start = {"type": "http.response.start", "status": response.status, "headers": headers}
            if exchange is not None:
                exchange.status = response.status
                exchange.first_byte_ns = first_byte
                exchange.response_headers = [
                    (n.decode("latin-1"), v.decode("latin-1")) for n, v in headers
                ]
            if response.length is not None and response.length <= _SMALL:
                await self._relay_small(response, start, send, exchange, flow)
            else:
                await self._relay_stream(response, start, send, exchange, flow)
        finally:
            await response.aclose()

    async def _relay_small(
        self,
        response: Http1Response,
        start: Message,
        send: Send,
        exchange: Exchange | None,
        flow: _Flow,
    ) -> None:
        """A short response in one piece: one write to the client."""
        try:
            body = await response.aread()
        except Http1Error as exc:
            await self._fail(send, exchange, flow, exc)
            return
        if exchange is not None:
            exchange.done_ns = time.monotonic_ns()
            exchange.add_response_chunk(body)
        flow.finished = True
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})
        if exchange is not None:
            exchange.client_done_ns = time.monotonic_ns()

    async def _relay_stream(
        self,
        response: Http1Response,
        start: Message,
        send: Send,
        exchange: Exchange | None,
        flow: _Flow,
    ) -> None:
        """A long or open-ended response (images, SSE), forwarded piece by piece as it comes.

        No read-ahead task is needed: the upstream connection's buffer keeps filling (up to
        `READ_SIZE` twice over) while a piece is being written to the client.
        """
        failure: Http1Error | None = None
        try:
            await send(start)
            while True:
                try:
                    chunk = await response.read()
                except Http1Error as exc:
                    failure = exc
                    break
                if not chunk:
                    break
                if exchange is not None:
                    exchange.add_response_chunk(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            if exchange is not None:
                exchange.done_ns = time.monotonic_ns()
        if failure is not None:
            # Too late for a 502: the client sees the connection close mid-response.
            if exchange is not None:
                exchange.fail(error_kind(failure), f"upstream failed mid-response: {failure!r}")
            return
        flow.finished = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if exchange is not None:
            exchange.client_done_ns = time.monotonic_ns()

    async def _refuse_head(
        self, send: Send, exchange: Exchange | None, refused: dict[str, int]
    ) -> None:
        """431 for a head over the limit; the upstream never sees the request."""
        message = (
            f"imgtrace record: the request head is larger than the proxy's limit of "
            f"{refused['limit']:,} bytes (request line and headers); it was not forwarded"
        )
        if exchange is not None:
            exchange.notes["head_too_large"] = refused
        await self._answer(send, exchange, _Flow(), "protocol", 431, message)
        if exchange is not None:
            self.recorder.submit(exchange)

    async def _fail(
        self, send: Send, exchange: Exchange | None, flow: _Flow, exc: Http1Error
    ) -> None:
        kind = error_kind(exc)
        status = 504 if isinstance(exc, Http1Timeout) else 502
        what = "did not answer in time" if status == 504 else "failed"
        message = f"imgtrace record: the upstream {self.upstream} {what}: {exc!r}"
        await self._answer(send, exchange, flow, kind, status, message)

    async def _answer(
        self,
        send: Send,
        exchange: Exchange | None,
        flow: _Flow,
        kind: ErrorKind,
        status: int,
        message: str,
    ) -> None:
        """The proxy's own error response, recorded as the exchange's error."""
        body = _error_body(status, message)
        if exchange is not None:
            exchange.fail(kind, message)
            exchange.status = status
            exchange.done_ns = time.monotonic_ns()
            exchange.response_headers = [("content-type", "application/json")]
            exchange.add_response_chunk(body)
        flow.finished = True
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
        if exchange is not None:
            exchange.client_done_ns = time.monotonic_ns()
