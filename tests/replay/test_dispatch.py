"""Dispatch workers: the schedule split over processes, merged runs, dying workers, bounds."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from replay_helpers import Server, write_trace

from replayer import ReplayConfig, ReplayError, Timing, replay
from replayer._backlog import Backlog
from replayer._outcomes import OutcomeSink
from replayer._partition import part_of
from replayer._sender import Exchange
from traces import Header, TraceReader, TraceWriter, UsageError


def _exchange(seq: int, body: bytes) -> Exchange:
    return Exchange(
        seq=seq,
        request_id=f"r{seq:04d}",
        loop=0,
        warmup=False,
        intended_ns=seq,
        attempt_ns=seq,
        sent_ns=seq,
        done_ns=seq + 1,
        status=200,
        content_type="image/png",
        body=body,
    )


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_every_worker_count_sends_each_request_once_into_one_run(
    tmp_path: Path, echo: Server, workers: int
) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [i * 2 for i in range(30)])
    out = tmp_path / "run.imgtrace"
    before = echo.stats()["count"]
    result = replay(ReplayConfig(trace=trace, target=echo.url, output=out, workers=workers))
    assert echo.stats()["count"] - before == 30
    assert result.stats.sent == result.stats.done == 30 and result.workers == workers
    with TraceReader(out) as reader:
        assert reader.closed_cleanly
        assert reader.header.metadata["workers"] == workers
        outcomes = list(reader.outcomes())
        meta = reader.metadata()
    assert sorted(o.seq for o in outcomes) == list(range(30))
    assert sorted(o.request_id for o in outcomes) == [f"r{i:04d}" for i in range(30)]
    assert all(o.status == 200 and o.sent_ns is not None for o in outcomes)
    # Each send keeps its intended offset of the whole schedule, whichever worker sent it.
    assert sorted(o.intended_ns for o in outcomes) == [i * 2_000_000 for i in range(30)]
    assert meta["sent"] == 30 and meta["not_stored"] == 0 and meta["worker_failures"] == []


def test_workers_split_by_the_shard_partition() -> None:
    assert [part_of(seq, 3) for seq in range(7)] == [0, 1, 2, 0, 1, 2, 0]


@pytest.mark.parametrize("workers", [-1, True, 1.5])
def test_bad_worker_counts_are_usage_errors(tmp_path: Path, workers: object) -> None:
    with pytest.raises(UsageError, match="--workers"):
        ReplayConfig(trace=tmp_path / "t", target="http://x", workers=workers)  # type: ignore[arg-type]


def test_a_closed_loop_runs_in_one_worker(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="closed loop"):
        ReplayConfig(
            trace=tmp_path / "t",
            target="http://x",
            timing=Timing("closed", concurrency=2),
            workers=2,
        )


def test_a_dying_worker_is_reported_and_the_run_closes_valid(tmp_path: Path, echo: Server) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [i * 10 for i in range(300)])
    out = tmp_path / "run.imgtrace"

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not out.exists():
            time.sleep(0.02)
        time.sleep(0.5)
        children = multiprocessing.active_children()
        assert children
        os.kill(children[0].pid or 0, signal.SIGKILL)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    try:
        with pytest.raises(ReplayError, match=r"dispatch worker \d .*exited with code -9"):
            replay(ReplayConfig(trace=trace, target=echo.url, output=out, workers=2, drain=0.5))
    finally:
        killer.join()
    with TraceReader(out) as reader:
        assert reader.closed_cleanly
        meta = reader.metadata()
        outcomes = list(reader.outcomes())
    assert meta["interrupted"] is True
    assert len(meta["worker_failures"]) == 1 and "exited with code -9" in meta["worker_failures"][0]
    assert 0 < len(outcomes) < 300
    assert meta["completed"] == len(outcomes)


def test_the_backlog_leaves_bodies_out_past_its_budget_and_counts_them() -> None:
    backlog: Backlog[int] = Backlog(budget=10)
    first, second, third = _exchange(0, b"x" * 6), _exchange(1, b"y" * 6), _exchange(2, b"")
    for tag, exchange in enumerate((first, second, third)):
        backlog.put(tag, exchange)
    assert backlog.dropped == 1 and len(backlog) == 3
    assert first.body == b"x" * 6 and not first.body_dropped
    assert second.body == b"" and second.body_dropped
    assert backlog.take() == (0, first)
    # Taking frees the budget again.
    fourth = _exchange(3, b"z" * 9)
    backlog.put(3, fourth)
    assert fourth.body == b"z" * 9 and backlog.dropped == 1


def test_storing_that_falls_behind_never_holds_more_than_its_budget(tmp_path: Path) -> None:
    writer = TraceWriter(tmp_path / "run.imgtrace", Header(kind="run", source="replay"))
    sink = OutcomeSink(writer, thread=False, budget=2500)
    for seq in range(5):
        sink.put(_exchange(seq, bytes([seq]) * 1000))
    sink.close()
    writer.close()
    assert sink.dropped == 3
    with TraceReader(tmp_path / "run.imgtrace") as reader:
        outcomes = sorted(reader.outcomes(), key=lambda o: o.seq)
    assert [o.seq for o in outcomes] == [0, 1, 2, 3, 4]
    assert [o.body_blob is not None for o in outcomes] == [True, True, False, False, False]
    assert all(o.status == 200 for o in outcomes)
