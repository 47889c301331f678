"""Fixtures shared by every test: the anyio backend, server processes, the CLI."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest
from servers import Started, refused_url, start_serve
from testproc import run_imgtrace


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def refused() -> Iterator[str]:
    """A URL on 127.0.0.1 that refuses connections (its port held, not listening)."""
    with refused_url() as url:
        yield url


ServerProcess = Started
SpawnServer = Callable[..., Started]


@pytest.fixture
def spawn_server() -> Iterator[SpawnServer]:
    """Start `imgtrace serve ARGS` (the bundled reference server) on port 0; stopped after.

    `spawn_server("--speed", "50")` returns once the server says it is ready, with its URL.
    """
    started: list[Started] = []

    def spawn(*args: str, timeout: float = 30.0) -> Started:
        server = start_serve(*args, timeout=timeout)
        started.append(server)
        return server

    yield spawn
    for server in started:
        server.stop()


@pytest.fixture
def imgtrace() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`imgtrace("show", path)` runs the command in a subprocess and returns the result."""
    return run_imgtrace
