"""`imgtrace reduce` against real reference servers with planted bugs, and its bad inputs."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reduce_support import FAST, planted_trace, warm_up

from traces import TraceReader

Run = Callable[..., subprocess.CompletedProcess[str]]
MASK_BUG = ("--plant", "mask-after-size:2")


@pytest.fixture
def buggy(spawn_server: Callable[..., Any]) -> Any:
    server = spawn_server(*FAST, *MASK_BUG)
    warm_up(server.url)
    return server


def ids(path: Path) -> list[str]:
    with TraceReader(path) as reader:
        assert reader.kind == "trace"
        return [request.id for request in reader.requests()]


def reduced(
    imgtrace: Run, trace: Path, target: str, flags: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`imgtrace reduce TRACE --target TARGET --until status>=500 --speed 50 FLAGS` (a command
    line) into min.imgtrace beside the trace, which must succeed: the result and that file."""
    out = trace.with_name("min.imgtrace")
    args = ("--until", "status>=500", "--speed", "50", *shlex.split(flags), "-o", str(out))
    done = imgtrace("reduce", str(trace), "--target", target, *args)
    assert done.returncode == 0, done.stderr
    return done, out


def test_finds_the_two_interacting_requests(tmp_path: Path, buggy: Any, imgtrace: Run) -> None:
    trace = planted_trace(tmp_path / "prod.imgtrace", 24, big=9, masked=10)
    summary = tmp_path / "summary.json"
    done, out = reduced(imgtrace, trace, buggy.url, f"--tries 2 --json {shlex.quote(str(summary))}")
    assert ids(out) == ["r0009", "r0010"]
    result = json.loads(summary.read_text())
    assert result["kept"] == ["r0009", "r0010"]
    assert result["original_requests"] == 24
    assert result["attempts"] == result["search_attempts"] + result["confirmations"]
    assert 0 < result["reproduced"] <= result["confirmations"] == 3
    assert result["hits"] == ["r0010"]
    assert "24 -> 2 requests (r0009, r0010)" in done.stdout
    assert f"reproduction rate: {result['reproduced']} of 3 replays" in done.stdout
    # Progress on stderr names the size, the attempts and the time.
    assert "attempt 1: 24 of 24 requests reproduced" in done.stderr
    assert "smallest so far 2;" in done.stderr
    # Relative timing kept: the pair is 300 ms apart, the first request at time zero.
    with TraceReader(out) as reader:
        offsets = [request.offset_ns for request in reader.requests()]
        assert reader.metadata()["predicate"] == "status>=500"
    assert offsets == [0, 300_000_000]
    # The exact command it prints replays the result, as an ordinary trace, K times.
    command = shlex.split(result["reproduce"])
    assert command[:3] == ["imgtrace", "replay", str(out)]
    again = imgtrace(*command[1:])
    assert again.returncode == 0, again.stderr
    run = Path(command[command.index("-o") + 1])
    with TraceReader(run) as reader:
        outcomes = list(reader.outcomes())
    failed = {o.repeat for o in outcomes if o.status == 500}
    assert {o.repeat for o in outcomes} == set(range(10))
    assert f"status 500: {len(failed)} of 10 repetitions, request r0010" in again.stdout + (
        again.stderr
    )
    exported = imgtrace("export", "aiperf-input", str(out), "-o", str(tmp_path / "min.jsonl"))
    assert exported.returncode == 0, exported.stderr


def test_compress_gaps_shortens_idle_time(tmp_path: Path, buggy: Any, imgtrace: Run) -> None:
    trace = planted_trace(tmp_path / "prod.imgtrace", 12, big=3, masked=4, gap_ms=3000)
    _, out = reduced(imgtrace, trace, buggy.url, "--compress-gaps 0.5s --tries 2 --confirm 0")
    with TraceReader(out) as reader:
        offsets = [request.offset_ns for request in reader.requests()]
    assert ids(out) == ["r0003", "r0004"]
    assert offsets == [0, 300_000_000]  # under the cap: kept as recorded


def test_max_attempts_keeps_the_smallest_so_far(tmp_path: Path, buggy: Any, imgtrace: Run) -> None:
    trace = planted_trace(tmp_path / "prod.imgtrace", 24, big=9, masked=10)
    done, out = reduced(imgtrace, trace, buggy.url, "--max-attempts 3 --tries 2 --confirm 0")
    assert "stopped early by --max-attempts" in done.stdout
    kept = ids(out)
    assert {"r0009", "r0010"} <= set(kept) and len(kept) <= 24


def test_ctrl_c_keeps_the_smallest_so_far(tmp_path: Path, buggy: Any) -> None:
    trace = planted_trace(tmp_path / "prod.imgtrace", 80, big=37, masked=38)
    out = tmp_path / "min.imgtrace"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "imgtrace", "reduce", str(trace), "--target", buggy.url,
            "--until", "status>=500", "--speed", "50", "--tries", "2", "-o", str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # the full trace reproduced: the search has begun
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stdout + stderr
    assert "stopped early by Ctrl-C" in stdout
    assert {"r0037", "r0038"} <= set(ids(out))


def test_image_changed_with_reset_and_baseline(
    tmp_path: Path, spawn_server: Callable[..., Any], imgtrace: Run
) -> None:
    """A poisoned cache: once seed 1005 (request r0005) is served, later outputs change."""
    good = spawn_server(*FAST)
    bad = spawn_server(*FAST, "--plant", "image-after-seed:1005")
    trace = planted_trace(tmp_path / "prod.imgtrace", 10, big=-1, masked=-1, gap_ms=200)
    baseline = tmp_path / "good.imgtrace"
    made = imgtrace(
        "replay", str(trace), "--target", good.url, "--speed", "50", "-o", str(baseline)
    )
    assert made.returncode == 0, made.stderr
    reset = f"{shlex.quote(sys.executable)} -c \"import httpx; httpx.post('{bad.url}/v1/planted/reset').raise_for_status()\""  # noqa: E501
    out = tmp_path / "min.imgtrace"
    done = imgtrace(
        "reduce", str(trace), "--target", bad.url, "--until", "image:changed", "--speed", "50",
        "--baseline", str(baseline), "--reset", reset, "--confirm", "1", "-o", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    kept = ids(out)
    assert len(kept) == 2 and kept[0] == "r0005", kept
    assert "reproduction rate: 1 of 1 replays" in done.stdout


# -- bad input: one line, exit 2, nothing written or lost -----------------------------------


def one_line_error(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("imgtrace: error:")]
    assert len(errors) == 1 and expected in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def reduce_fails(
    tmp_path: Path,
    imgtrace: Run,
    target: str,
    flags: str,
    expected: str,
    *,
    requests: int = 3,
    existing: bytes | None = None,
) -> subprocess.CompletedProcess[str]:
    """`imgtrace reduce` of a small planted trace to `target` with FLAGS (a command line; with
    --until status>=500 unless it has its own) fails with one error line holding `expected`; the
    output stays as it was (absent, or still holding `existing`), the trace as recorded."""
    trace = planted_trace(tmp_path / "t.imgtrace", requests, big=1, masked=2)
    recorded = trace.read_bytes()
    out = tmp_path / "min.imgtrace"
    if existing is not None:
        out.write_bytes(existing)
    args = shlex.split(flags)
    until = [] if "--until" in args else ["--until", "status>=500"]
    done = imgtrace("reduce", str(trace), "--target", target, *until, "-o", str(out), *args)
    one_line_error(done, expected)
    assert (out.read_bytes() if out.exists() else None) == existing
    assert trace.read_bytes() == recorded
    return done


def test_a_predicate_that_does_not_parse(tmp_path: Path, imgtrace: Run) -> None:
    expected = "predicate 'status>>500' does not parse"
    reduce_fails(
        tmp_path, imgtrace, "http://127.0.0.1:9", "--until status>>500", expected, requests=4
    )


def test_a_trace_that_does_not_reproduce(
    tmp_path: Path, spawn_server: Callable[..., Any], imgtrace: Run
) -> None:
    healthy = spawn_server(*FAST)
    expected = "the full trace (6 requests) does not satisfy 'status>=500'"
    done = reduce_fails(tmp_path, imgtrace, healthy.url, "--speed 50", expected, requests=6)
    assert "seen status 200: 6" in done.stderr
    assert "attempt 2" not in done.stderr  # said before any search


def test_a_target_that_is_down(tmp_path: Path, imgtrace: Run, refused: str) -> None:
    reduce_fails(tmp_path, imgtrace, refused, "--speed 50", f"the target {refused} is down")


def test_a_failing_reset(tmp_path: Path, buggy: Any, imgtrace: Run) -> None:
    reset = "--reset 'echo cannot restart >&2; exit 3'"
    reduce_fails(tmp_path, imgtrace, buggy.url, reset, "failed with exit status 3: cannot restart")


def counting_reset(folder: Path, after: int, then: str) -> str:
    """A --reset command that succeeds `after` times, then runs `then` on every later call."""
    count = shlex.quote(str(folder / "resets"))
    return (
        f"n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}; "
        f"if [ $n -gt {after} ]; then {then}; fi"
    )


def kept_so_far(done: subprocess.CompletedProcess[str], out: Path, total: int) -> list[str]:
    """The error says where the smallest reproducer so far is; that file holds it."""
    kept = ids(out)
    assert f"the smallest reproducer so far ({len(kept)} of {total} requests) is kept in {out}" in (
        done.stderr
    )
    assert {"r0009", "r0010"} <= set(kept) and len(kept) < total
    return kept


def fails_mid_search(
    tmp_path: Path, imgtrace: Run, target: str, reset: str, expected: str
) -> subprocess.CompletedProcess[str]:
    """A search of 24 requests with --reset RESET fails with `expected` after it began: the
    smallest reproducer so far is kept, the trace as recorded."""
    trace = planted_trace(tmp_path / "prod.imgtrace", 24, big=9, masked=10)
    recorded = trace.read_bytes()
    out = tmp_path / "min.imgtrace"
    done = imgtrace(
        "reduce", str(trace), "--target", target, "--until", "status>=500", "--speed", "50",
        "--reset", reset, "-o", str(out),
    )  # fmt: skip
    one_line_error(done, expected)
    kept_so_far(done, out, 24)
    assert trace.read_bytes() == recorded
    return done


def test_a_reset_that_fails_mid_search_keeps_the_smallest_so_far(
    tmp_path: Path, buggy: Any, imgtrace: Run
) -> None:
    reset = counting_reset(tmp_path, 3, "echo out of restarts >&2; exit 5")
    fails_mid_search(
        tmp_path, imgtrace, buggy.url, reset, "failed with exit status 5: out of restarts"
    )
    assert not (tmp_path / ".min.imgtrace.partial").exists()


def test_a_target_that_goes_down_mid_search_keeps_the_smallest_so_far(
    tmp_path: Path, buggy: Any, imgtrace: Run
) -> None:
    # The third attempt's reset kills the server (and gives its port time to close).
    reset = counting_reset(tmp_path, 2, f"kill -9 {buggy.process.pid}; sleep 0.5")
    fails_mid_search(tmp_path, imgtrace, buggy.url, reset, f"the target {buggy.url} is down")


def test_existing_output_is_refused(tmp_path: Path, imgtrace: Run) -> None:
    target = "http://127.0.0.1:9"
    reduce_fails(tmp_path, imgtrace, target, "", "already exists", existing=b"keep me")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("--tries 0", "--tries must be >= 1"),
        ("--min-rate 1.5", "--min-rate must be in (0, 1]"),
        ("--budget soon", "--budget takes a duration like 30s"),
        ("--until image:changed", "needs a baseline run"),
    ],
)
def test_bad_options(tmp_path: Path, imgtrace: Run, extra: str, expected: str) -> None:
    reduce_fails(tmp_path, imgtrace, "http://127.0.0.1:9", extra, expected)
