"""Fixtures for the reference server's tests: a shared server per module and per session."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from server_support import MAX_BODY, Server


@pytest.fixture(scope="module")
def start() -> Iterator[Callable[..., list[Server]]]:
    """Start servers in parallel, shared by a module: `start(["--speed", "9"], [...])`."""
    servers: list[Server] = []

    def run(*arg_lists: list[str]) -> list[Server]:
        started = [Server(*args) for args in arg_lists]
        servers.extend(started)
        for server in started:
            server.wait_ready()
        return started

    yield run
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def fast() -> Iterator[Server]:
    """One fast server shared by the session (simulated compute ~0, 1 MB body limit)."""
    server = Server("--speed", "1000", "--max-body", str(MAX_BODY))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(fast: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fast.url, timeout=30) as http:
        yield http
