"""The HTTP/1.1 client (the proxy's upstream leg, the replay's sends) against scripted servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from traces import Http1Error, Http1Pool, Http1Timeout, error_kind
from traces import _http1_errors as errors

Broken = errors.RemoteProtocolError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Scripted:
    """An asyncio server on 127.0.0.1 running `handler` for each connection; counts them."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body) as received
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Http1Pool:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.pool = Http1Pool(f"http://127.0.0.1:{port}", timeout=2.0, max_connections=10)
        return self.pool

    async def __aexit__(self, *exc: object) -> None:
        await self.pool.aclose()
        assert self.server is not None
        self.server.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bool:
        """Read one request (any framing) into `requests`; False at the end of the connection."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lower = head.lower()
        body = b""
        if b"transfer-encoding: chunked" in lower:
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                body += (await reader.readexactly(size + 2))[:-2] if size else b""
                if not size:
                    await reader.readuntil(b"\r\n")
                    break
        elif b"content-length:" in lower:
            length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
        self.requests.append((head, body))
        return True


def answering(*responses: bytes, close: bool = False) -> Callable[[Scripted], Handler]:
    """A handler that reads each request and answers with the next response in turn."""

    def make(scripted: Scripted) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for response in responses:
                if not await scripted.read_request(reader):
                    return
                writer.write(response)
                await writer.drain()
                if close:
                    return
            await reader.read()  # keep the connection open until the client closes it

        return handler

    return make


def scripted(make: Callable[[Scripted], Handler]) -> Scripted:
    server = Scripted(lambda r, w: asyncio.sleep(0))
    server.handler = make(server)
    return server


async def _get(pool: Http1Pool, method: str = "GET", body: bytes = b"") -> tuple[int, bytes]:
    response = await pool.request(method, "/x?q=1", [("x-a", "1")], body)
    try:
        return response.status, await response.aread()
    finally:
        await response.aclose()


async def test_chunked_response_with_extensions_and_trailers_keeps_alive() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: A\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    server = scripted(answering(chunked, chunked))
    async with server as pool:
        assert await _get(pool) == (200, b"hello world")
        response = await pool.request("POST", "/y", [], b"data")
        assert (b"x-up", b"A") in response.headers  # names in lower case, values as sent
        assert await response.aread() == b"hello world"
        await response.aclose()
    assert server.connections == 1
    first, second = server.requests
    assert first[0].startswith(b"GET /x?q=1 HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"x-a: 1\r\n" in first[0] and b"content-length" not in first[0].lower()
    assert b"content-length: 4\r\n" in second[0] and second[1] == b"data"


async def test_informational_then_close_delimited_body() -> None:
    response = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX: y\r\n\r\nuntil the end"
    server = scripted(answering(response, close=True))
    async with server as pool:
        assert await _get(pool) == (200, b"until the end")
        assert await _get(pool) == (200, b"until the end")
    assert server.connections == 2  # a body delimited by the close ends the connection


async def test_head_and_204_have_no_body_and_keep_alive() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"
    empty = b"HTTP/1.1 204 No Content\r\n\r\n"
    server = scripted(answering(head, empty, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    async with server as pool:
        assert await _get(pool, "HEAD") == (200, b"")
        assert await _get(pool, "DELETE") == (204, b"")
        assert await _get(pool) == (200, b"ok")
    assert server.connections == 1


async def test_streamed_uploads_are_chunked_or_sized() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    server = scripted(answering(ok, ok))

    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b"one,", b"", b"two"):
            yield piece

    async with server as pool:
        for length in (None, 7):
            response = await pool.request("POST", "/u", [], pieces(), length)
            assert response.status == 200 and await response.aread() == b""
            await response.aclose()
    (chunked_head, chunked), (sized_head, sized) = server.requests
    assert b"transfer-encoding: chunked" in chunked_head and chunked == b"one,two"
    assert b"content-length: 7" in sized_head and sized == b"one,two"


async def test_an_idle_connection_the_upstream_closed_is_not_reused() -> None:
    # Claims keep-alive, then closes anyway (as servers do after their idle timeout).
    server = scripted(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", close=True))
    async with server as pool:
        assert await _get(pool) == (200, b"1")
        await asyncio.sleep(0.1)  # the close reaches the idle connection
        assert await _get(pool) == (200, b"1")
    assert server.connections == 2


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (b"", errors.RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", errors.RemoteProtocolError),
        (b"SPDY/3 200 OK\r\n\r\n", errors.RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", errors.RemoteProtocolError),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            errors.RemoteProtocolError,
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", errors.ReadError),
    ],
)
async def test_broken_responses_raise_client_errors(
    response: bytes, error: type[Http1Error]
) -> None:
    async with scripted(answering(response, close=True)) as pool:
        with pytest.raises(error):
            await _get(pool)


async def test_a_connection_idle_past_the_expiry_is_not_reused() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"
    server = scripted(answering(ok, ok, ok))
    async with server as pool:
        pool.keepalive_expiry = 0.2
        assert await _get(pool) == (200, b"1")
        assert await _get(pool) == (200, b"1")  # at once: the same connection
        await asyncio.sleep(0.3)
        assert await _get(pool) == (200, b"1")
    assert server.connections == 2


async def test_phases_come_once_connected_and_once_sent() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = scripted(answering(ok))
    heard: list[tuple[str, int]] = []
    async with server as pool:

        def phase(name: str) -> None:
            heard.append((name, server.connections))

        response = await pool.request("POST", "/p", [], b"x" * 200_000, on_phase=phase)
        heard.append(("head", len(server.requests)))
        assert await response.aread() == b"ok"
        await response.aclose()
    # "sending" once the connection was accepted, then "sent", then the response head.
    assert [name for name, _ in heard] == ["sending", "sent", "head"]
    assert heard[0][1] == 1


async def test_silent_upstream_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = Scripted(silent)
    async with server as pool:
        pool.timeout = 0.2
        with pytest.raises(errors.ReadTimeout) as raised:
            await _get(pool)
    assert isinstance(raised.value, Http1Timeout) and error_kind(raised.value) == "timeout"


async def test_refused_connection_is_a_connect_error() -> None:
    pool = Http1Pool("http://127.0.0.1:1", timeout=2.0, max_connections=1)
    with pytest.raises(errors.ConnectError) as raised:
        await _get(pool)
    await pool.aclose()
    assert error_kind(raised.value) == "connect"


async def test_a_response_split_anywhere_is_read_whole() -> None:
    response = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"
    )

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        for start in range(0, len(response), 3):  # heads and size lines cut across pieces
            writer.write(response[start : start + 3])
            await writer.drain()
            await asyncio.sleep(0.002)
        await reader.read()

    server = Scripted(trickle)
    async with server as pool:
        assert await _get(pool) == (200, b"abc0123456789abcdef")


LARGE = bytes(range(256)) * (12 << 10)  # 3 MiB: more than a connection reads ahead


def _chunked(body: bytes) -> bytes:
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 65536]), body[i : i + 65536])
        for i in range(0, len(body), 65536)
    )
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("response", "length"),
    [
        (_chunked(LARGE), None),
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(LARGE), LARGE), len(LARGE)),
    ],
    ids=["chunked", "sized"],
)
async def test_a_large_body_read_late_arrives_intact_and_keeps_alive(
    response: bytes, length: int | None
) -> None:
    server = scripted(answering(response, response))
    async with server as pool:
        first = await pool.request("GET", "/big", [], b"")
        if length is not None:
            assert first.length == length
        await asyncio.sleep(0.2)  # the upstream fills the read-ahead, then has to wait
        assert await first.aread() == LARGE
        await first.aclose()
        assert await _get(pool) == (200, LARGE)
    assert server.connections == 1


async def test_chunked_events_are_handed_on_one_by_one() -> None:
    events = [b"data: %d\n\n" % i for i in range(3)]
    sent = asyncio.Event()

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for event in events:
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await sent.wait()  # the next event only after the client has seen this one
            sent.clear()
        writer.write(b"0\r\nX-Trailer: late\r\n\r\n")
        await reader.read()

    server = Scripted(stream)
    async with server as pool:
        response = await pool.request("GET", "/events", [], b"")
        for event in events:
            assert await response.read() == event
            sent.set()
        assert await response.read() == b""
        assert all(name != b"x-trailer" for name, _ in response.headers)
        await response.aclose()


async def test_bytes_beyond_the_response_spoil_the_connection() -> None:
    extra = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokSURPLUS"
    server = scripted(answering(extra, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"))
    async with server as pool:
        assert await _get(pool) == (200, b"ok")
        assert await _get(pool) == (200, b"ok")  # a fresh connection, answered anew
    assert server.connections == 2


async def test_a_body_coded_but_not_chunked_ends_with_the_connection() -> None:
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw bytes"
    async with scripted(answering(response, close=True)) as pool:
        assert await _get(pool) == (200, b"raw bytes")
