"""Replays against the bundled reference server (`imgtrace serve`), on recorded values."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from replay_helpers import MS, write_trace

from replayer import ReplayConfig, Timing, replay
from traces import Outcome, TraceReader


def small_size(i: int) -> dict[str, str]:
    return {"size": "64x64"}


FAST = ("--speed", "200", "--cold-start", "0", "--load-time", "0", "--jitter", "0")


def run(trace: Path, url: str, out: Path, **options: Any) -> tuple[list[Outcome], dict[str, Any]]:
    replay(ReplayConfig(trace=trace, target=url, output=out, **options))
    with TraceReader(out) as reader:
        return sorted(reader.outcomes(), key=lambda o: o.seq), reader.metadata()


def test_offsets_speed_and_outputs(tmp_path: Path, spawn_server: Callable[..., Any]) -> None:
    server = spawn_server(*FAST, "--gpus", "4")
    offsets = [0, 20, 45, 90, 100, 180]
    trace = write_trace(tmp_path / "t.imgtrace", offsets, fields=small_size)
    outcomes, meta = run(trace, server.url, tmp_path / "run.imgtrace", timing=Timing(speed=2.0))
    assert [o.intended_ns for o in outcomes] == [o * MS // 2 for o in offsets]
    assert all(o.sent_ns is not None and o.sent_ns >= o.intended_ns for o in outcomes)
    assert all(o.status == 200 for o in outcomes), [o.envelope for o in outcomes]
    with TraceReader(tmp_path / "run.imgtrace") as reader:
        for outcome in outcomes:
            assert len(outcome.images) == 1
            assert reader.blob(outcome.images[0])[:4] == b"\x89PNG"
    assert meta["completed"] == len(offsets)


def test_seed_reaches_the_server(tmp_path: Path, spawn_server: Callable[..., Any]) -> None:
    server = spawn_server(*FAST)
    trace = write_trace(tmp_path / "t.imgtrace", [0, 1], fields=small_size)

    def images(seed: str, name: str) -> list[tuple[str, ...]]:
        outcomes, _ = run(trace, server.url, tmp_path / name, seed=seed)
        assert all(o.status == 200 for o in outcomes)
        return [o.images for o in outcomes]

    fixed = images("fixed:7", "a.run")
    assert images("fixed:7", "b.run") == fixed
    assert images("fixed:8", "c.run") != fixed
    # --seed keep sends the trace's own seeds (100, 101): other outputs than seed 7's.
    kept = images("keep", "d.run")
    assert kept[0] != fixed[0] and kept[1] != fixed[1]


def test_error_and_timeout_faults_recorded(
    tmp_path: Path, spawn_server: Callable[..., Any]
) -> None:
    server = spawn_server(
        *FAST, "--gpus", "8", "--error-rate", "0.3", "--timeout-rate", "0.2", "--random-seed", "3"
    )
    trace = write_trace(tmp_path / "t.imgtrace", list(range(24)), fields=small_size)
    outcomes, meta = run(trace, server.url, tmp_path / "run.imgtrace", timeout=1.0)
    assert len(outcomes) == 24
    kinds = []
    for o in outcomes:
        if o.error is not None:
            assert o.error.kind == "timeout" and o.status is None and o.done_ns is not None
            kinds.append("timeout")
        elif o.status == 500:
            assert o.images == () and o.envelope is not None
            kinds.append("500")
        else:
            assert o.status == 200 and len(o.images) == 1
            kinds.append("ok")
    assert kinds.count("500") >= 1 and kinds.count("timeout") >= 1 and kinds.count("ok") >= 1
    assert meta["error_kinds"] == {"timeout": kinds.count("timeout")}
    assert meta["statuses"].get("500") == kinds.count("500")
    assert meta["errors"] == kinds.count("500") + kinds.count("timeout")


@pytest.mark.parametrize("concurrency", [2])
def test_closed_loop_against_reference(
    concurrency: int, tmp_path: Path, spawn_server: Callable[..., Any]
) -> None:
    server = spawn_server(*FAST, "--gpus", "4")
    trace = write_trace(tmp_path / "t.imgtrace", [0] * 10, fields=small_size)
    outcomes, meta = run(
        trace,
        server.url,
        tmp_path / "run.imgtrace",
        timing=Timing("closed", concurrency=concurrency),
    )
    events = sorted([(o.sent_ns, 1) for o in outcomes] + [(o.done_ns, -1) for o in outcomes])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert peak <= concurrency
    assert meta["peak_in_flight"] == concurrency
