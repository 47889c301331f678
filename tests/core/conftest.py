from __future__ import annotations

from pathlib import Path

import pytest
from tracefiles import write_trace


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.imgtrace"
    write_trace(path)
    return path
