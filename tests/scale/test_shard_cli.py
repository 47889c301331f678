"""`imgtrace replay --shard I/N --start-at TIME`: bad inputs, and a real sharded replay."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from scale_support import one_line_error, reference_server, write_trace

from imgtrace import main
from traces import TraceReader, shard_of


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    return write_trace(tmp_path / "t.imgtrace", [0, 10, 20, 30])


def replay(trace: Path, out: Path, *flags: str) -> int:
    return main(["replay", str(trace), "--target", "http://127.0.0.1:9", "-o", str(out), *flags])


@pytest.mark.parametrize(
    ("flags", "fragments"),
    [
        (["--shard", "2/2"], ["--shard 2/2", "I must be from 0 to 1"]),
        (["--shard", "0/0"], ["--shard 0/0", "N must be at least 1"]),
        (["--shard", "1of2"], ["--shard '1of2'", "expected I/N"]),
        (["--start-at", "soon"], ["--start-at 'soon'", "ISO 8601"]),
        (["--start-at", "2026-12-01 10:00"], ["give a UTC offset"]),
        (["--start-grace", "2"], ["--start-grace applies to --start-at"]),
        (["--group", "x"], ["--group", "needs --shard"]),
        (["--start-at", "1700000000", "--start-grace", "-1"], ["--start-grace -1"]),
    ],
)
def test_bad_scale_out_flags(
    trace: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    fragments: list[str],
) -> None:
    out = tmp_path / "run.imgtrace"
    one_line_error(capsys, replay(trace, out, *flags), *fragments)
    assert not out.exists()


def test_a_start_time_already_past_is_refused(
    trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run.imgtrace"
    past = datetime.fromtimestamp(time.time() - 5, tz=timezone.utc).isoformat()
    code = replay(trace, out, "--shard", "0/2", "--start-at", past)
    one_line_error(capsys, code, "passed", "ago (grace 1 s)", "--start-grace")
    assert not out.exists()
    # A grace longer than the delay lets it start.
    code = replay(
        trace, tmp_path / "dry.imgtrace", "--start-at", past, "--start-grace", "60", "--dry-run"
    )
    assert code == 0


def test_two_shards_reproduce_the_unsharded_schedule(tmp_path: Path) -> None:
    """Two shards run side by side from one start time; merged, they are the whole schedule."""
    import anyio

    from replayer import Partition, ReplayConfig, StartAt, replay, replay_async

    trace = write_trace(tmp_path / "t.imgtrace", [i * 7.5 for i in range(11)])
    with reference_server() as url:
        replay(ReplayConfig(trace, url, output=tmp_path / "u.imgtrace"))
        # Far enough ahead for two dispatch processes to start on a busy machine.
        start = StartAt(time.time_ns() + 4_000_000_000)

        async def both() -> None:
            async with anyio.create_task_group() as group:
                for index in range(2):
                    config = ReplayConfig(
                        trace,
                        url,
                        output=tmp_path / f"s{index}.imgtrace",
                        shard=Partition(index, 2),
                        start_at=start,
                    )
                    group.start_soon(replay_async, config)

        anyio.run(both)
    groups = set()
    for index in range(2):
        with TraceReader(tmp_path / f"s{index}.imgtrace") as reader:
            shard = shard_of(reader.header.metadata)
            assert shard is not None and (shard.index, shard.count) == (index, 2)
            groups.add(shard.group)
            assert reader.header.start_wall_ns == start.wall_ns
            assert reader.header.metadata["clock"]["t0_wall_ns"] == start.wall_ns
            assert reader.header.options["shard"] == f"{index}/2"
            assert sorted(o.seq for o in reader.outcomes()) == list(range(index, 11, 2))
    assert len(groups) == 1
    merged = tmp_path / "m.imgtrace"
    assert (
        main(
            [
                "merge",
                str(tmp_path / "s0.imgtrace"),
                str(tmp_path / "s1.imgtrace"),
                "-o",
                str(merged),
            ]
        )
        == 0
    )
    assert intended(merged) == intended(tmp_path / "u.imgtrace")


def intended(path: Path) -> dict[tuple[str, int], int]:
    """(request id, seq) → intended offset, to the nanosecond."""
    with TraceReader(path) as reader:
        return {(o.request_id, o.seq): o.intended_ns for o in reader.outcomes()}
