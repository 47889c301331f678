"""`RecordingTransport`: record an application's own httpx (or `openai` SDK) traffic.

It wraps a sync or async httpx transport. Requests on recorded paths have their upload teed as
the inner transport sends it, and their response teed as the application reads it; the exchange
is handed to the recorder's writer thread when the response is closed. Nothing is buffered or
re-sent, so the application sees exactly what it would without the wrapper.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import httpx

from ._capture import Exchange, error_kind
from ._sink import Recorder, RecordOptions

__all__ = ["RecordingTransport"]

_Inner = TypeVar("_Inner", httpx.BaseTransport, httpx.AsyncBaseTransport)


class RecordingTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport that records image-edit calls into a trace file.

    Works with both `httpx.Client` and `httpx.AsyncClient`, and so with the `openai` SDK::

        transport = RecordingTransport("app.imgtrace")
        client = openai.OpenAI(http_client=httpx.Client(transport=transport))
        ...
        transport.close()  # or close the client; the file is complete once closed

    :param output: the trace file to write, or a shared `Recorder`.
    :param transport: the transport to wrap; by default a new `httpx.HTTPTransport` (sync use)
        or `httpx.AsyncHTTPTransport` (async use).
    :param options: what to record (paths, sampling, redaction, ...), as for the proxy.
    :param force: overwrite `output` if it exists.
    """

    def __init__(
        self,
        output: str | os.PathLike[str] | Recorder,
        *,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        options: RecordOptions | None = None,
        force: bool = False,
    ) -> None:
        if isinstance(output, Recorder):
            self.recorder = output
            self._owns_recorder = False
        else:
            self.recorder = Recorder(output, source="transport", options=options, force=force)
            self._owns_recorder = True
        self._inner = transport

    # -- sync ---------------------------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        inner = self._wrapped(httpx.BaseTransport, httpx.HTTPTransport, "an async", "AsyncClient")
        exchange = self._begin(request)
        if exchange is None:
            return inner.handle_request(request)
        teed = _rebuild(request, _SyncTee(request.stream, exchange))
        try:
            response = inner.handle_request(teed)
        except httpx.HTTPError as exc:
            self._failed(exchange, exc)
            raise
        self._started(exchange, response)
        return _rebuild_response(response, _SyncRecordedStream(response, exchange, self.recorder))

    def close(self) -> None:
        if isinstance(self._inner, httpx.BaseTransport):
            self._inner.close()
        if self._owns_recorder:
            self.recorder.close()

    # -- async --------------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        inner = self._wrapped(
            httpx.AsyncBaseTransport, httpx.AsyncHTTPTransport, "a sync", "Client"
        )
        exchange = self._begin(request)
        if exchange is None:
            return await inner.handle_async_request(request)
        teed = _rebuild(request, _AsyncTee(request.stream, exchange))
        try:
            response = await inner.handle_async_request(teed)
        except httpx.HTTPError as exc:
            self._failed(exchange, exc)
            raise
        self._started(exchange, response)
        return _rebuild_response(response, _AsyncRecordedStream(response, exchange, self.recorder))

    async def aclose(self) -> None:
        if isinstance(self._inner, httpx.AsyncBaseTransport):
            await self._inner.aclose()
        if self._owns_recorder:
            self.recorder.close()

    # -- shared -------------------------------------------------------------------------------

    def _wrapped(
        self, kind: type[_Inner], default: Callable[[], _Inner], other: str, client: str
    ) -> _Inner:
        """The wrapped transport, made on first use; a sync one for sync use, async for async."""
        if self._inner is None:
            self._inner = default()
        if not isinstance(self._inner, kind):
            raise TypeError(f"RecordingTransport wraps {other} transport: use httpx.{client}")
        return self._inner

    def _begin(self, request: httpx.Request) -> Exchange | None:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        return self.recorder.begin(
            request.method, request.url.path, request.url.query.decode("latin-1"), headers
        )

    def _failed(self, exchange: Exchange, exc: httpx.HTTPError) -> None:
        exchange.fail(error_kind(exc), repr(exc))
        exchange.done_ns = time.monotonic_ns()
        self.recorder.submit(exchange)

    def _started(self, exchange: Exchange, response: httpx.Response) -> None:
        exchange.first_byte_ns = time.monotonic_ns()
        exchange.status = response.status_code
        exchange.response_headers = [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw
        ]


def _rebuild(request: httpx.Request, stream: Any) -> httpx.Request:
    return httpx.Request(
        request.method,
        request.url,
        headers=request.headers,
        stream=stream,
        extensions=request.extensions,
    )


def _rebuild_response(response: httpx.Response, stream: Any) -> httpx.Response:
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=stream,
        extensions=response.extensions,
    )


class _SyncTee(httpx.SyncByteStream):
    def __init__(self, stream: Any, exchange: Exchange) -> None:
        self._stream = stream
        self._exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            self._exchange.add_request_chunk(chunk)
            yield chunk
        self._exchange.upload_done_ns = time.monotonic_ns()


class _AsyncTee(httpx.AsyncByteStream):
    def __init__(self, stream: Any, exchange: Exchange) -> None:
        self._stream = stream
        self._exchange = exchange

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            self._exchange.add_request_chunk(chunk)
            yield chunk
        self._exchange.upload_done_ns = time.monotonic_ns()


class _Recorded:
    """Shared end of a recorded response: submit once, when the application closes it."""

    def __init__(self, response: httpx.Response, exchange: Exchange, recorder: Recorder) -> None:
        self._response = response
        self._exchange = exchange
        self._recorder = recorder
        self._complete = False
        self._submitted = False

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Around reading the body: a transport error fails the exchange, the end completes it."""
        try:
            yield
        except httpx.HTTPError as exc:
            self._exchange.fail(error_kind(exc), repr(exc))
            raise
        self._complete = True

    def _finish(self) -> None:
        if self._submitted:
            return
        self._submitted = True
        exchange = self._exchange
        exchange.done_ns = exchange.client_done_ns = time.monotonic_ns()
        if not self._complete and exchange.error is None:
            exchange.fail("aborted", "the application closed the response before reading it all")
        self._recorder.submit(exchange)


class _SyncRecordedStream(_Recorded, httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        stream = self._response.stream
        assert isinstance(stream, httpx.SyncByteStream)
        with self._reading():
            for chunk in stream:
                self._exchange.add_response_chunk(chunk)
                yield chunk

    def close(self) -> None:
        try:
            self._response.close()
        finally:
            self._finish()


class _AsyncRecordedStream(_Recorded, httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        stream = self._response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        with self._reading():
            async for chunk in stream:
                self._exchange.add_response_chunk(chunk)
                yield chunk

    async def aclose(self) -> None:
        try:
            await self._response.aclose()
        finally:
            self._finish()
