"""The lag-health rule: when a replay's send lag means its latencies measure the replayer."""

from __future__ import annotations

from pathlib import Path

import pytest
from analyzer_runs import write_run_file

from analyzer._load import load_rows
from analyzer._report import health_line, run_summary


@pytest.mark.parametrize(
    ("latency_ms", "lag_ms", "healthy"),
    [
        (30, 2, True),  # under the 5 ms floor, however fast the server
        (1000, 20, True),  # over the floor but 2% of the latency
        (1000, 80, False),  # over the floor and over 5% of the latency
        (5000, 150, False),  # over 100 ms, whatever the latency
    ],
)
def test_lag_health_rule(tmp_path: Path, latency_ms: int, lag_ms: int, healthy: bool) -> None:
    path = write_run_file(
        tmp_path / "run.imgtrace", [latency_ms * 1e6] * 50, lag_ns=lag_ms * 1_000_000
    )
    rows = load_rows(path)
    assert run_summary(rows).healthy is healthy
    assert ("WARNING" in health_line(rows)) is not healthy
