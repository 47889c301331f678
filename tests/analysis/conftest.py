"""Fixtures of the analyzer tests; the helpers live in analyzer_runs.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from analyzer_runs import Run, WriteRun, write_run_file

from imgtrace._cli import main


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run `imgtrace ARGS` in-process; returns (exit code, stdout, stderr)."""

    def invoke(*args: str | Path) -> tuple[int, str, str]:
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


@pytest.fixture
def write_run(tmp_path: Path) -> WriteRun:
    """`write_run("a.run", latencies, ...)` writes a run file under tmp_path."""

    def write(name: str, latencies_ns: Sequence[float] | Any, **options: object) -> Path:
        return write_run_file(tmp_path / name, latencies_ns, **options)  # type: ignore[arg-type]

    return write
