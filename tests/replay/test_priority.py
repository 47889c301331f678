"""Real-time scheduling of the dispatch workers: asked for by default, reported either way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from replay_helpers import Server, write_trace
from testproc import run_imgtrace

from replayer import ReplayConfig, replay
from replayer._priority import REALTIME, raise_to_realtime
from traces import TraceReader

# Run in a fresh interpreter: the test process itself must keep its normal scheduling.
PROBE = """
import json, os, threading
from replayer._priority import raise_to_realtime
got = raise_to_realtime()
seen = {}
thread = threading.Thread(target=lambda: seen.update(policy=os.sched_getscheduler(0)))
thread.start()
thread.join()
print(json.dumps({"got": got, "main": os.sched_getscheduler(0), "thread": seen["policy"]}))
"""


def _probe() -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    probe: dict[str, object] = json.loads(done.stdout)
    return probe


def test_what_a_worker_reports_is_what_it_got() -> None:
    probe = _probe()
    if probe["got"] == REALTIME:
        # The worker's later threads (the waker among them) inherit the policy.
        assert probe["main"] == probe["thread"] == os.SCHED_FIFO
    else:
        assert str(probe["got"]).startswith("normal (")
        assert probe["main"] == probe["thread"] == os.SCHED_OTHER


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            PermissionError(1, "Operation not permitted"),
            "not permitted: needs root or CAP_SYS_NICE",
        ),
        (OSError(22, "Invalid argument"), "refused: Invalid argument"),
    ],
)
def test_a_refusal_leaves_normal_priority_and_says_why(
    monkeypatch: pytest.MonkeyPatch, error: OSError, reason: str
) -> None:
    def refuse(pid: int, policy: int, param: os.sched_param) -> None:
        raise error

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    assert raise_to_realtime() == f"normal (real-time scheduling {reason})"


def test_a_system_without_real_time_scheduling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_setscheduler")
    assert raise_to_realtime() == "normal (this system has no real-time scheduling)"


CORES = len(os.sched_getaffinity(0))


def test_the_run_header_says_how_the_workers_ran(tmp_path: Path, echo: Server) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0, 1, 2])
    expected = _probe()["got"] if CORES > 1 else "normal (--workers 1 with 1 core: real-time "
    "scheduling only with a core left for the rest)"
    for realtime, wanted in ((True, expected), (False, "normal (--no-realtime)")):
        out = tmp_path / f"run-{realtime}.imgtrace"
        config = ReplayConfig(trace=trace, target=echo.url, output=out, realtime=realtime)
        result = replay(config)
        assert result.scheduling == wanted
        with TraceReader(out) as reader:
            assert reader.header.metadata["dispatch_scheduling"] == wanted
            assert reader.metadata()["dispatch_scheduling"] == wanted


def test_no_realtime_from_the_command_line(tmp_path: Path, echo: Server) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0, 1])
    out = tmp_path / "run.imgtrace"
    summary = tmp_path / "summary.json"
    args = ("--target", echo.url, "-o", str(out), "--no-realtime", "--json", str(summary))
    done = run_imgtrace("replay", str(trace), *args)
    assert done.returncode == 0, done.stderr
    assert json.loads(summary.read_text())["dispatch_scheduling"] == "normal (--no-realtime)"
    assert "--no-realtime" in run_imgtrace("replay", "--help").stdout


def test_as_many_workers_as_cores_stay_at_normal_priority(tmp_path: Path, echo: Server) -> None:
    # Real-time workers on every core would leave the coordinator only the gaps between sends.
    trace = write_trace(tmp_path / "t.imgtrace", [0, 1, 2, 3])
    out = tmp_path / "run.imgtrace"
    args = ("--target", echo.url, "-o", str(out), "--workers", str(CORES), "--no-progress")
    done = run_imgtrace("replay", str(trace), *args)
    assert done.returncode == 0, done.stderr
    plural = "s" * (CORES != 1)
    wanted = (
        f"normal (--workers {CORES} with {CORES} core{plural}: real-time scheduling only with "
        "a core left for the rest)"
    )
    assert f"the dispatch ran at {wanted}" in " ".join((done.stdout + done.stderr).split())
    with TraceReader(out) as reader:
        assert reader.header.metadata["dispatch_scheduling"] == wanted


@pytest.mark.skipif(CORES < 2, reason="one core: no worker asks for real-time scheduling")
def test_a_replay_without_the_privilege_says_so(tmp_path: Path, echo: Server) -> None:
    unprivileged: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv(1): cannot drop CAP_SYS_NICE here")
        unprivileged = ["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice"]
    trace = write_trace(tmp_path / "t.imgtrace", [0, 1])
    out = tmp_path / "run.imgtrace"
    command = [*unprivileged, sys.executable, "-m", "imgtrace", "replay", str(trace)]
    command += ["--target", echo.url, "-o", str(out), "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = " ".join((done.stdout + done.stderr).split())
    assert "the dispatch ran at normal (real-time scheduling not permitted" in printed
    with TraceReader(out) as reader:
        assert reader.header.metadata["dispatch_scheduling"].startswith("normal (real-time")
