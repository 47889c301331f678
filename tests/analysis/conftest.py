"""Fixtures of the analyzer tests; the helpers live in analyzer_runs.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from analyzer_runs import WriteRun, write_run_file


@pytest.fixture
def write_run(tmp_path: Path) -> WriteRun:
    """`write_run("a.run", latencies, ...)` writes a run file under tmp_path."""

    def write(name: str, latencies_ns: Sequence[float] | Any, **options: object) -> Path:
        return write_run_file(tmp_path / name, latencies_ns, **options)  # type: ignore[arg-type]

    return write
