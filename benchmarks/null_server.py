"""The replay benchmarks' null server: reads each request, answers a fixed response at once.

    python benchmarks/null_server.py [--response-bytes N] [--delay S] [--log FILE]

An asyncio protocol in a process of its own, so the server costs the replayer nothing. httptools
(uvicorn's C parser) reads the requests, keep-alive and pipelined; each body is discarded and
answered with one fixed JSON: `{"created":0,"data":[]}`, or with --response-bytes N one base64
image of about N bytes, as image-edit servers return; with --delay S (not with --log) each
answer waits S seconds.
With --log, when the server ends (SIGTERM) it writes, one line per request, two times in ns at
which the request's first bytes arrived: when this process read them (monotonic clock), and
when the kernel received them on the socket (SO_TIMESTAMPNS, real-time clock). On loopback the
kernel stamps a segment as the client writes it, so the second time leaves out how long this
server waited for a core: it is the client's own lateness. It listens on 127.0.0.1 at a port
the system picks and prints it (tests/servers.py `print_ready`); `start_null_server` starts it
and reads the port.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path

import httptools

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from servers import Started, listening_socket, print_ready, start_helper

HERE = Path(__file__).resolve()


def answer_bytes(response_bytes: int) -> bytes:
    """The one response: an empty `data[]`, or one base64 image of about `response_bytes`."""
    data = []
    if response_bytes:
        data = [{"b64_json": base64.b64encode(os.urandom(response_bytes * 3 // 4)).decode()}]
    body = json.dumps({"created": 0, "data": data}, separators=(",", ":")).encode()
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


class NullHTTP(asyncio.Protocol):
    """One connection: httptools calls back as each request ends."""

    def __init__(self, answer: bytes, delay: float) -> None:
        self.answer = answer
        self.delay = delay
        self.parser = httptools.HttpRequestParser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self._answer)
        else:
            self._answer()

    def _answer(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(self.answer)


# Linux's numbers; Python's socket module does not name them.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("qq")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)
READ_SIZE = 1 << 18


class StampedConnection:
    """One connection read with recvmsg, noting both arrival times of each request.

    Between requests it reads a single byte: the kernel then gives the time of the segment that
    holds the request's first byte, not of the last segment a larger read would end on.
    """

    def __init__(self, sock: socket.socket, answer: bytes, arrivals: list[tuple[int, int]]) -> None:
        self.sock = sock
        self.answer = answer
        self.arrivals = arrivals
        self.parser = httptools.HttpRequestParser(self)
        self.between = True
        self.kernel_ns = 0
        self.unsent = bytearray()
        self.loop = asyncio.get_running_loop()
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.loop.add_reader(sock.fileno(), self.readable)

    def readable(self) -> None:
        try:
            data, ancillary, _, _ = self.sock.recvmsg(1 if self.between else READ_SIZE, _ANCILLARY)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self.kernel_ns = 0  # a read without a stamp must not reuse the last one
        for _, _, raw in ancillary:
            seconds, nanoseconds = _TIMESPEC.unpack(raw[: _TIMESPEC.size])
            self.kernel_ns = seconds * 1_000_000_000 + nanoseconds
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def on_message_begin(self) -> None:
        self.between = False
        self.arrivals.append((time.monotonic_ns(), self.kernel_ns))

    def on_message_complete(self) -> None:
        self.between = True
        waiting = bool(self.unsent)
        self.unsent += self.answer
        if not waiting:
            self.writable()

    def writable(self) -> None:
        try:
            sent = self.sock.send(self.unsent)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.close()
            return
        del self.unsent[:sent]
        if self.unsent:
            self.loop.add_writer(self.sock.fileno(), self.writable)
        else:
            self.loop.remove_writer(self.sock.fileno())

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.loop.remove_writer(self.sock.fileno())
        self.sock.close()


async def serve_stamped(
    sock: socket.socket, answer: bytes, arrivals: list[tuple[int, int]]
) -> None:
    """Accept connections on `sock` until cancelled, each a `StampedConnection`."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    # Set before any connection is accepted: a segment queued before the option has no stamp.
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    while True:
        client, _ = await loop.sock_accept(sock)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        StampedConnection(client, answer, arrivals)


def serve(response_bytes: int, delay: float, log: Path | None) -> None:
    answer = answer_bytes(response_bytes)
    arrivals: list[tuple[int, int]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        sock = listening_socket(backlog=1024)
        if log is not None:
            accepting = asyncio.ensure_future(serve_stamped(sock, answer, arrivals))
            print_ready(sock)
            await stop.wait()
            accepting.cancel()
            return
        server = await loop.create_server(lambda: NullHTTP(answer, delay), sock=sock, backlog=1024)
        print_ready(sock)
        async with server:
            await stop.wait()

    asyncio.run(main())
    if log is not None:
        log.write_text("\n".join(f"{read} {kernel}" for read, kernel in arrivals))


def start_null_server(
    response_bytes: int = 0, delay: float = 0.0, log: Path | None = None
) -> Started:
    """The null server in a process of its own, once it listens; `.stop()` ends it."""
    argv = [sys.executable, str(HERE), "--response-bytes", str(response_bytes)]
    argv += ["--delay", str(delay)] + (["--log", str(log)] if log is not None else [])
    return start_helper(argv, timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--response-bytes", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--log", type=Path)
    args = parser.parse_args()
    if args.log and args.delay:
        parser.error("--delay is for the server without --log")
    serve(args.response_bytes, args.delay, args.log)


if __name__ == "__main__":
    main()
