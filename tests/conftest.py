"""Fixtures shared by every test: the anyio backend, free ports, server processes, the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def port() -> int:
    return free_port()


@dataclass
class ServerProcess:
    """A server started as its own process on 127.0.0.1."""

    url: str
    port: int
    process: subprocess.Popen[bytes]

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()  # else a ResourceWarning fails a later test
        return self.process.returncode


def wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout} s")


SpawnServer = Callable[..., ServerProcess]


@pytest.fixture
def spawn_server() -> Iterator[SpawnServer]:
    """Start `imgtrace serve ARGS` (the bundled reference server) on a free port; stopped after.

    `spawn_server("--speed", "50")` returns once GET /health answers 200.
    """
    started: list[ServerProcess] = []

    def spawn(*args: str, command: str = "serve", timeout: float = 30.0) -> ServerProcess:
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imgtrace",
                command,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        server = ServerProcess(f"http://127.0.0.1:{port}", port, process)
        started.append(server)
        wait_until_ready(server.url + "/health", process, timeout)
        return server

    yield spawn
    for server in started:
        server.stop()


def run_imgtrace(
    *args: str,
    input: bytes | None = None,
    timeout: float = 120.0,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the `imgtrace` command in a subprocess, as a user would; text output."""
    return subprocess.run(
        [sys.executable, "-m", "imgtrace", *args],
        input=input.decode() if input is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def imgtrace() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`imgtrace("show", path)` runs the command in a subprocess and returns the result."""
    return run_imgtrace
