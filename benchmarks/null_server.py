"""The replay benchmarks' null server: reads each request, answers a fixed response at once.

    python benchmarks/null_server.py [--response-bytes N] [--delay S] [--log FILE]

An asyncio protocol in a process of its own, so the server costs the replayer nothing. httptools
(uvicorn's C parser) reads the requests, keep-alive and pipelined; each body is discarded and
answered with one fixed JSON: `{"created":0,"data":[]}`, or with --response-bytes N one base64
image of about N bytes, as image-edit servers return; with --delay S each answer waits S seconds.
With --log, when the server ends (SIGTERM) it writes the monotonic time in ns at which each
request's first bytes arrived, one per line. It listens on 127.0.0.1 at a port the system picks
and prints it (tests/servers.py `print_ready`); `start_null_server` starts it and reads the port.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
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


class ArrivalLog(NullHTTP):
    """`NullHTTP` that also notes when each request's first bytes arrived."""

    def __init__(self, answer: bytes, delay: float, arrivals: list[int]) -> None:
        self.arrivals = arrivals
        super().__init__(answer, delay)

    def on_message_begin(self) -> None:
        # Called as the request's first bytes are parsed, in the turn they arrived in (for a
        # pipelined request: as the one before it ends).
        self.arrivals.append(time.monotonic_ns())


def serve(response_bytes: int, delay: float, log: Path | None) -> None:
    answer = answer_bytes(response_bytes)
    arrivals: list[int] = []

    def connection() -> NullHTTP:
        if log is None:
            return NullHTTP(answer, delay)
        return ArrivalLog(answer, delay, arrivals)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        sock = listening_socket(backlog=1024)
        server = await loop.create_server(connection, sock=sock, backlog=1024)
        print_ready(sock)
        async with server:
            await stop.wait()

    asyncio.run(main())
    if log is not None:
        log.write_text("\n".join(map(str, arrivals)))


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
    serve(args.response_bytes, args.delay, args.log)


if __name__ == "__main__":
    main()
