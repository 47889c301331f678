"""`imgtrace replay --repeat K`: K repetitions in one run file, and how often failures came back."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from replay_helpers import MS, Server, write_trace

from analyzer import join_rows, load_rows
from replayer import ReplayConfig, Timing, replay_repeated
from traces import Outcome, TraceReader, reproductions

Run = Callable[..., subprocess.CompletedProcess[str]]
FAST = ("--speed", "200", "--cold-start", "0", "--load-time", "0", "--jitter", "0")


def small(i: int) -> dict[str, str]:
    return {"size": "64x64"}


def outcomes(path: Path) -> list[Outcome]:
    with TraceReader(path) as reader:
        return list(reader.outcomes())


def test_repetitions_share_one_schedule_and_one_time_axis(tmp_path: Path, echo: Server) -> None:
    offsets = [0, 15, 40]
    trace = write_trace(tmp_path / "t.imgtrace", offsets)
    out = tmp_path / "run.imgtrace"
    config = ReplayConfig(trace=trace, target=echo.url, output=out, timing=Timing(speed=2.0))
    seen: list[int] = []
    result = replay_repeated(config, 3, seen.append)
    assert seen == [0, 1, 2]
    assert len(result.results) == 3 and not result.interrupted
    found = outcomes(out)
    assert [o.repeat for o in found] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [o.seq for o in found] == list(range(9))
    by_repeat = [[o for o in found if o.repeat == k] for k in range(3)]
    starts = [group[0].intended_ns for group in by_repeat]
    for group, start in zip(by_repeat, starts, strict=True):
        # The same schedule from each repetition's own start.
        assert [o.intended_ns - start for o in group] == [x * MS // 2 for x in offsets]
        assert all(o.sent_ns is not None and o.sent_ns >= o.intended_ns for o in group)
    assert starts[0] < starts[1] < starts[2]
    # Each repetition ends before the next one starts.
    assert max(o.done_ns or 0 for o in by_repeat[0]) < starts[1]
    with TraceReader(out) as reader:
        assert reader.header.options["repeat"] == 3
        meta = reader.metadata()
    assert meta["completed_repetitions"] == 3 and meta["sent"] == 9
    assert [note["repeat"] for note in meta["repetitions"]] == [0, 1, 2]
    assert not list(tmp_path.glob(".run.imgtrace.*"))  # scratch files are gone


def test_compare_pairs_repetitions(tmp_path: Path, echo: Server) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0, 10, 20, 30])
    runs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.imgtrace"
        replay_repeated(ReplayConfig(trace=trace, target=echo.url, output=out), 2)
        runs.append(load_rows(out))
    joined = join_rows(runs[0], runs[1])
    assert joined.pairs == 8 and joined.duplicates == 0
    assert runs[0].repeat.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_show_and_report_count_reproductions(
    tmp_path: Path, spawn_server: Callable[..., Any], imgtrace: Run
) -> None:
    server = spawn_server(*FAST, "--error-rate", "0.4", "--random-seed", "3")
    trace = write_trace(tmp_path / "t.imgtrace", [0, 30, 60, 90, 120, 150], fields=small)
    out = tmp_path / "run.imgtrace"
    done = imgtrace(
        "replay", str(trace), "--target", server.url, "--speed", "4", "--repeat", "5",
        "-o", str(out), "--no-progress", "--json", str(tmp_path / "s.json"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = outcomes(out)
    failing = [o for o in found if o.status == 500]
    assert failing, "the server injected no error: the test would prove nothing"
    repeats = {o.repeat for o in failing}
    requests = list(dict.fromkeys(o.request_id for o in failing))
    noun = "request" if len(requests) == 1 else "requests"
    expected = f"status 500: {len(repeats)} of 5 repetitions, {noun} {', '.join(requests[:8])}"
    assert [r.line() for r in reproductions(found, 5)] == [expected]
    assert expected in done.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["completed_repetitions"] == 5
    assert summary["reproductions"][0]["repetitions"] == len(repeats)

    shown = imgtrace("show", str(out))
    assert shown.returncode == 0, shown.stderr
    assert f"repeated    5 times; {expected}" in shown.stdout
    assert "meta.repetitions" not in shown.stdout

    reported = imgtrace("report", str(out))
    assert reported.returncode == 0, reported.stderr
    assert "Reproduced across 5 repetitions" in reported.stdout
    # The table may wrap a long line; its start is on one line.
    assert f"status 500: {len(repeats)} of 5 repetitions" in reported.stdout
    statuses = Counter(o.status for o in found)
    assert statuses[500] + statuses[200] == 30


def test_repeat_must_be_positive(tmp_path: Path, echo: Server, imgtrace: Run) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0])
    done = imgtrace(
        "replay", str(trace), "--target", echo.url, "-o", str(tmp_path / "r"), "--repeat", "0"
    )
    assert done.returncode == 2
    assert "imgtrace: error: --repeat" in done.stderr
