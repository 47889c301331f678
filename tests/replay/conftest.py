"""Fixtures for replayer tests: echo servers shared by a test module, a small trace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from replay_helpers import Server, start_echo, write_trace


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    """Three image edits, 10 ms apart."""
    return write_trace(tmp_path / "t.imgtrace", [0, 10, 20])


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
