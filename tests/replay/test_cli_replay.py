"""`imgtrace replay` as a user runs it: bad inputs, dry run, JSON summary, Ctrl-C."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from replay_helpers import (
    Run,
    Server,
    interrupted_replay,
    one_line_error,
    png,
    start_echo,
    write_trace,
)
from samples import edit, upload

from traces import Header, TraceReader, TraceWriter


def test_missing_trace(tmp_path: Path, imgtrace: Run, echo: Server) -> None:
    out = tmp_path / "run.imgtrace"
    result = imgtrace(
        "replay", str(tmp_path / "nope.imgtrace"), "--target", echo.url, "-o", str(out)
    )
    one_line_error(result, "nope.imgtrace", "no such file")
    assert not out.exists()


def test_corrupt_trace_fails_before_sending(tmp_path: Path, imgtrace: Run, echo: Server) -> None:
    good = write_trace(tmp_path / "good.imgtrace", [0, 10, 20, 30])
    data = bytearray(good.read_bytes())
    # Damage the frames after the header: a clean file with a damaged middle.
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0xFF
    bad = tmp_path / "bad.imgtrace"
    bad.write_bytes(bytes(data))
    garbage = tmp_path / "garbage.imgtrace"
    garbage.write_bytes(b"not a trace at all")
    for path in (bad, garbage):
        out = tmp_path / f"{path.stem}.run"
        with echo.receives_nothing():
            result = imgtrace("replay", str(path), "--target", echo.url, "-o", str(out))
        one_line_error(result, path.name)
        assert not out.exists()


def test_missing_blob(tmp_path: Path, imgtrace: Run, echo: Server) -> None:
    path = tmp_path / "holes.imgtrace"
    with TraceWriter(path, Header(source="synthetic")) as writer:
        digest = writer.add_blob(png(), "image/png")
        for i, blob in enumerate([digest, "0" * 64]):
            writer.write(edit(f"r{i}", i, upload(blob, 3, "a.png", None), "x"))
    out = tmp_path / "run.imgtrace"
    with echo.receives_nothing():
        result = imgtrace("replay", str(path), "--target", echo.url, "-o", str(out))
    one_line_error(result, "request r1", "0000000000000000")
    assert not out.exists()


def test_unreachable_target_writes_run_and_exits_2(
    trace: Path, tmp_path: Path, imgtrace: Run, refused: str
) -> None:
    out = tmp_path / "run.imgtrace"
    target = refused
    result = imgtrace("replay", str(trace), "--target", target, "-o", str(out), "--no-progress")
    one_line_error(result, "not a single request could connect", target)
    with TraceReader(out) as reader:
        outcomes = list(reader.outcomes())
    assert len(outcomes) == 3
    assert all(o.error is not None and o.error.kind == "connect" for o in outcomes)
    assert all(o.status is None and o.sent_ns is None for o in outcomes)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ("--set num_inference_steps", "--set"),
        ("--set =8", "--set"),
        ("--set image=x", "file part"),
        ("--header 'Authorization Bearer x'", "--header"),
        ("--header 'Authorization: Bearer ${IMGTRACE_TEST_UNSET_VAR}'", "IMGTRACE_TEST_UNSET_VAR"),
        ("--seed sometimes", "--request-seed"),
        ("--request-seed sometimes", "--request-seed"),
        ("--speed 2 --rate 5", "choose one"),
        ("--arrival poisson", "needs --rate"),
        ("--rate 5 --arrival gamma:-1", "--arrival"),
        ("--speed 0", "--speed"),
        ("--concurrency 2 --max-inflight 3", "--max-inflight"),
        ("--window 9:3", "--window"),
        ("--target ftp://x", "--target"),
    ],
)
def test_invalid_options(
    args: str, fragment: str, trace: Path, tmp_path: Path, imgtrace: Run
) -> None:
    out = tmp_path / "run.imgtrace"
    flags = shlex.split(args)
    target = ["--target", "http://127.0.0.1:9"] if "--target" not in flags else []
    result = imgtrace("replay", str(trace), *target, "-o", str(out), *flags)
    one_line_error(result, fragment)
    assert not out.exists()


def test_header_secret_not_in_error(trace: Path, tmp_path: Path, imgtrace: Run) -> None:
    result = imgtrace(
        "replay",
        str(trace),
        "--target",
        "http://127.0.0.1:9",
        "-o",
        str(tmp_path / "r"),
        "--header",
        "X-Key: ${TOKEN}\n",
        env={"TOKEN": "topsecret\nvalue"},
    )
    one_line_error(result, "--header X-Key")
    assert "topsecret" not in result.stderr


def test_existing_output_is_kept(trace: Path, tmp_path: Path, imgtrace: Run, echo: Server) -> None:
    out = tmp_path / "run.imgtrace"
    out.write_bytes(b"precious")
    result = imgtrace("replay", str(trace), "--target", echo.url, "-o", str(out))
    one_line_error(result, "already exists", "--force")
    assert out.read_bytes() == b"precious"
    forced = imgtrace("replay", str(trace), "--target", echo.url, "-o", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    with TraceReader(out) as reader:
        assert len(list(reader.outcomes())) == 3


def test_dry_run(trace: Path, tmp_path: Path, imgtrace: Run) -> None:
    result = imgtrace(
        "replay", str(trace), "--dry-run", "--speed", "2", "--loop", "2", "--json", "-"
    )
    assert result.returncode == 0, result.stderr
    assert "nothing sent" in result.stderr
    assert "peak rate" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["sends"] == 6
    # Two passes of 20 ms plus one 10 ms gap between them, at 2x: 25 ms.
    assert summary["duration_s"] == pytest.approx(0.025)
    assert summary["mix"]["endpoint"] == {"POST /v1/images/edits": 6}


def test_dry_run_text(trace: Path, imgtrace: Run) -> None:
    result = imgtrace("replay", str(trace), "--dry-run", "--rate", "10", "--set", "size=64x64")
    assert result.returncode == 0, result.stderr
    assert "10 req/s, constant arrivals" in result.stdout
    assert "duration      0.200 s" in result.stdout
    assert "size                 64x64: 3" in result.stdout


def test_json_summary_file(trace: Path, tmp_path: Path, imgtrace: Run, echo: Server) -> None:
    summary = tmp_path / "summary.json"
    result = imgtrace(
        "replay",
        str(trace),
        "--target",
        echo.url,
        "-o",
        str(tmp_path / "run"),
        "--json",
        str(summary),
        "--warmup",
        "1",
    )
    assert result.returncode == 0, result.stderr
    assert "lag health: p50" in result.stderr
    data = json.loads(summary.read_text())
    assert data["sent"] == 3 and data["warmup"] == 1 and data["lag"]["sends"] == 2


def test_some_unreachable_is_a_warning(tmp_path: Path, imgtrace: Run) -> None:
    server = start_echo()
    try:
        queries = ["", "exit=1", "", ""]
        trace = write_trace(tmp_path / "t.imgtrace", [0, 10, 400, 410], query=lambda i: queries[i])
        out = tmp_path / "run.imgtrace"
        result = imgtrace("replay", str(trace), "--target", server.url, "-o", str(out))
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    assert "imgtrace: warning: 2 of 4 requests could not connect" in result.stderr
    with TraceReader(out) as reader:
        kinds = [
            o.error.kind if o.error else o.status
            for o in sorted(reader.outcomes(), key=lambda o: o.seq)
        ]
    assert kinds == [200, 200, "connect", "connect"]


@pytest.mark.parametrize("workers", ["1", "2", "0"])
def test_interrupted_run_reads_back(tmp_path: Path, echo: Server, workers: str) -> None:
    out = tmp_path / "run.imgtrace"
    args = ("--target", echo.url, "-o", str(out), "--workers", workers)
    interrupted_replay(tmp_path, *args, started=out)
    with TraceReader(out) as reader:
        assert reader.closed_cleanly
        meta = reader.metadata()
        outcomes = sorted(reader.outcomes(), key=lambda o: o.seq)
    assert meta["interrupted"] is True
    assert meta["workers"] == int(workers) and meta["worker_failures"] == []
    assert 1 < len(outcomes) < 200
    assert meta["completed"] == len(outcomes)
    assert outcomes[0].status == 200 and outcomes[0].error is None
    # Requests sent in the last second before Ctrl-C were still waiting for their answer.
    aborted = [o for o in outcomes if o.error is not None]
    assert aborted
    for outcome in aborted:
        assert outcome.error is not None and outcome.error.kind == "aborted"
        assert outcome.status is None
    assert all(o.status == 200 for o in outcomes if o.error is None)
