"""Fixtures for replayer tests: echo servers shared by a test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from replay_helpers import Server, start_echo


@pytest.fixture(scope="module")
def echo() -> Iterator[Server]:
    """An echo server that answers at once, shared by a test module."""
    server = start_echo()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def slow_echo() -> Iterator[Server]:
    """An echo server that takes 50 ms per request."""
    server = start_echo(0.05)
    yield server
    server.stop()
