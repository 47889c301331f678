"""Fixtures shared by every test: the anyio backend, free ports, server processes, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from testproc import free_port, stop_process, wait_until_ready


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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
        return stop_process(self.process, timeout)


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
