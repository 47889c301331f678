"""Fixtures of the source tests: the helpers live in source_fixtures.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from source_fixtures import run_cli

from traces import Request, TraceReader

__all__ = ["cli", "open_trace"]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """`cli("import", "har", ...)` runs imgtrace in-process: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = run_cli(*args)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def open_trace() -> Iterator[Callable[[Path], tuple[TraceReader, list[Request]]]]:
    """`open_trace(path)` -> (reader, requests); every reader is closed after the test."""
    readers: list[TraceReader] = []

    def open_(path: Path) -> tuple[TraceReader, list[Request]]:
        reader = TraceReader(path)
        readers.append(reader)
        return reader, list(reader.requests())

    yield open_
    for reader in readers:
        reader.close()
