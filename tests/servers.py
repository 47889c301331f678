"""The one way the tests start a server: it binds port 0 and says which port it got.

A process (`imgtrace serve`, `imgtrace record`, the replayer's echo server) is started with port
0 and the bound port is read from the line it prints once it listens; an ASGI app that needs no
process of its own runs under uvicorn in a thread, and its port is read from uvicorn's sockets.
No port is ever chosen first and used later, so two tests can never race for one.

A plain module beside tests/conftest.py (pytest puts tests/ on sys.path), so helper modules in
the sub-folders and the benchmarks can import it too.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from testproc import stop_process

# What each server prints once it listens; group 1 is its URL, group 2 its port.
SERVE_READY = re.compile(r"imgtrace serve: ready on (http://[^\s:]+:(\d+)) ")
RECORD_READY = re.compile(r"imgtrace: recording (http://[^\s:]+:(\d+)) -> ")
ECHO_READY = re.compile(r"echo server: ready on (http://[^\s:]+:(\d+))")
# `imgtrace serve` on stderr once bound, before it is warm.
SERVE_LISTENING = re.compile(r"imgtrace serve: listening on (http://[^\s:]+:(\d+)), ")
# A helper server process of the tests or benchmarks (`print_ready`).
HELPER_READY = re.compile(r"helper server: ready on (http://[^\s:]+:(\d+))")

ECHO = Path(__file__).parent / "replay" / "echo_server.py"
FAST_SERVE = ("--speed", "1000", "--load-time", "0", "--cold-start", "0")


@dataclass
class Started:
    """A server process on 127.0.0.1 and what it printed up to saying where it listens."""

    url: str
    port: int
    process: subprocess.Popen[Any]
    lines: list[str] = field(default_factory=list)

    def stop(self, timeout: float = 10.0) -> int:
        return stop_process(self.process, timeout)


def imgtrace_argv(command: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "imgtrace", command, *args]


def start_process(
    argv: Sequence[str],
    ready: re.Pattern[str],
    *,
    watch: Literal["stdout", "stderr"] = "stdout",
    timeout: float = 30.0,
    **popen: Any,
) -> Started:
    """Start `argv`, wait until `watch` prints a line matching `ready`; its URL and port.

    The watched stream is a pipe, read only up to the readiness line (the rest stays for the
    test to read); the other stream is whatever `popen` says (default: discarded).
    """
    popen.setdefault("stdout" if watch == "stderr" else "stderr", subprocess.DEVNULL)
    popen[watch] = subprocess.PIPE
    process: subprocess.Popen[Any] = subprocess.Popen(list(argv), **popen)
    stream = process.stdout if watch == "stdout" else process.stderr
    assert stream is not None
    try:
        match, lines = wait_for_line(process, stream, ready, timeout)
    except BaseException:
        stop_process(process)
        raise
    return Started(match.group(1), int(match.group(2)), process, lines)


def wait_for_line(
    process: subprocess.Popen[Any], stream: IO[Any], ready: re.Pattern[str], timeout: float
) -> tuple[re.Match[str], list[str]]:
    """Read lines in a thread (a blocking read cannot time out) until one matches `ready`."""
    lines: list[str] = []
    found: list[re.Match[str]] = []
    done = threading.Event()

    def read() -> None:
        try:
            while raw := stream.readline():
                line = raw.decode() if isinstance(raw, bytes) else raw
                lines.append(line)
                if match := ready.search(line):
                    found.append(match)
                    return
        finally:
            done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(timeout):
        process.kill()  # ends the read: the pipe closes
        done.wait(5)
    if not found:
        code = process.wait(5)
        raise RuntimeError(
            f"{process.args!r} (exit {code}) printed no line like "
            f"{ready.pattern!r} within {timeout} s; it printed: {''.join(lines)[-2000:]!r}"
        )
    return found[0], lines


def start_serve(*args: str, timeout: float = 30.0, **popen: Any) -> Started:
    """`imgtrace serve --host 127.0.0.1 --port 0 ARGS`, ready once it says so on stdout."""
    popen.setdefault("stderr", subprocess.PIPE)
    argv = imgtrace_argv("serve", "--host", "127.0.0.1", "--port", "0", *args)
    return start_process(argv, SERVE_READY, timeout=timeout, **popen)


def start_record(*args: str, timeout: float = 30.0, **popen: Any) -> Started:
    """`imgtrace record --listen 127.0.0.1:0 ARGS`, listening once it says so on stderr."""
    popen.setdefault("stdout", subprocess.PIPE)
    argv = imgtrace_argv("record", "--listen", "127.0.0.1:0", *args)
    return start_process(argv, RECORD_READY, watch="stderr", timeout=timeout, **popen)


def start_helper(argv: Sequence[str], timeout: float = 30.0, **popen: Any) -> Started:
    """A helper server process that says where it listens with `print_ready`."""
    return start_process(argv, HELPER_READY, timeout=timeout, **popen)


def listening_socket(backlog: int = 2048) -> socket.socket:
    """A TCP socket listening on 127.0.0.1 at a port the system picked (port 0)."""
    # IPPROTO_TCP: asyncio turns Nagle off only on sockets that say TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)  # before the ready line: a client that reads it may connect at once
    return sock


def print_ready(sock: socket.socket) -> None:
    """The line `start_helper` waits for, naming the port `sock` got."""
    print(f"helper server: ready on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)


def serve_asgi(app: Any, **settings: Any) -> None:
    """Serve `app` with uvicorn in this process (a helper server) until SIGTERM or Ctrl-C."""
    import uvicorn

    sock = listening_socket()
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, **settings)
    print_ready(sock)
    uvicorn.Server(config).run(sockets=[sock])


async def read_body(receive: Any) -> bytes:
    """The whole body of an ASGI request; ConnectionError when the client went away."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def respond(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """An ASGI response in one piece (chunked unless `headers` give its content-length)."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def json_app(answer: Callable[[dict[str, Any]], bytes]) -> Any:
    """An ASGI app that reads each request whole and answers 200 with `answer(scope)` as JSON."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        body = answer(scope)
        length = str(len(body)).encode()
        json_type = (b"content-type", b"application/json")
        await respond(send, 200, body, [json_type, (b"content-length", length)])

    return app


def start_echo(delay: float = 0.0, timeout: float = 20.0) -> Started:
    """The replayer tests' echo server (tests/replay/echo_server.py) on a port of its own."""
    argv = [sys.executable, str(ECHO), "0", str(delay)]
    return start_process(argv, ECHO_READY, timeout=timeout)


@contextmanager
def refused_url() -> Iterator[str]:
    """A URL on 127.0.0.1 that refuses connections: its port is held, bound but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


class ThreadServer:
    """uvicorn serving an ASGI app on 127.0.0.1, port 0, from a background thread."""

    def __init__(self, app: Any, **settings: Any) -> None:
        import uvicorn

        self.port = 0
        self.url = ""
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            **{"http": "h11", **settings},
            ws="none",
            lifespan="auto",
            log_level="critical",
            access_log=False,
            proxy_headers=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 10.0) -> ThreadServer:
        self.thread.start()
        _wait(lambda: self.server.started, self.thread.is_alive, timeout)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _wait(condition: Callable[[], bool], alive: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline or not alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
