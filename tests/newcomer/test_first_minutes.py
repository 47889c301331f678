"""What a new user meets first, on real runs against the reference server: tables that fit the
terminal, one lag verdict, sent/completed/sustained rates, a diagnosed target, errors with the
server's reasons, and changes in time beside every ratio."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import start_serve
from testproc import stop_process

from traces import TraceReader


def imgtrace(*args: str | Path, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-m", "imgtrace", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def serve(*args: str) -> tuple[str, subprocess.Popen[bytes]]:
    server = start_serve(
        "--cold-start", "0", "--load-time", "0", "--jitter", "0", *args, stderr=subprocess.DEVNULL
    )
    return server.url, server.process


@dataclass
class Runs:
    folder: Path
    url: str
    failing_url: str
    trace: Path
    a: Path
    b: Path
    a_replay: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Two replays of one trace sent faster than a one-GPU server can edit (it saturates)."""
    folder = tmp_path_factory.mktemp("first_minutes")
    url, server = serve("--speed", "0.5")
    failing_url, failing = serve("--speed", "50", "--error-rate", "0.5", "--random-seed", "3")
    try:
        trace = folder / "t.imgtrace"
        synth = imgtrace(
            "synth", "-o", trace, "--count", "24", "--rate", "30", "--arrival", "constant",
            "--seed", "1", "--image-size", "64x64", "--size", "64x64",
        )  # fmt: skip
        assert synth.returncode == 0, synth.stderr
        a, b = folder / "a.run", folder / "b.run"
        a_replay = imgtrace("replay", trace, "--target", url, "-o", a, "--no-progress")
        assert a_replay.returncode == 0, a_replay.stderr
        b_replay = imgtrace("replay", trace, "--target", url, "-o", b, "--no-progress")
        assert b_replay.returncode == 0, b_replay.stderr
        yield Runs(folder, url, failing_url, trace, a, b, a_replay)
    finally:
        stop_process(server)
        stop_process(failing)


def _lines(text: str) -> list[str]:
    return text.splitlines()


@pytest.mark.parametrize("columns", [100, 80])
def test_report_and_compare_fit_the_terminal(runs: Runs, columns: int) -> None:
    report = imgtrace("report", runs.a, columns=columns)
    compare = imgtrace("compare", runs.a, runs.b, "--jobs", "1", columns=columns)
    assert report.returncode == 0, report.stderr
    assert compare.returncode == 0, compare.stderr
    for result in (report, compare):
        too_wide = [line for line in _lines(result.stdout) if len(line) > columns]
        assert not too_wide, "\n".join(too_wide)
    # The verdict table: the "all" row names its verdict on its own first line.
    lines = _lines(compare.stdout)
    start = lines.index(next(line for line in lines if line.startswith("Latency: ")))
    header = next(line for line in lines[start:] if line.startswith("│ class "))
    row = next(line for line in lines[start:] if line.startswith("│ all "))
    verdict_column = [cell.strip() for cell in header.split("│")].index("verdict")
    verdict = row.split("│")[verdict_column].strip()
    assert verdict.split(" ")[0] in {"faster", "slower", "~", "inconclusive"}, row
    assert any(line.startswith("Output images") for line in lines)  # the image table too


def test_piped_output_tables_fit_100_columns(runs: Runs) -> None:
    report = imgtrace("report", runs.a)
    table_lines = [line for line in _lines(report.stdout) if line[:1] in "┌│├└"]
    assert table_lines and max(len(line) for line in table_lines) <= 100


def test_replay_and_report_give_one_lag_verdict(runs: Runs) -> None:
    replay_warned = "could not keep up" in runs.a_replay.stderr
    report = imgtrace("report", runs.a)
    report_warned = "WARNING sends were late" in report.stdout
    assert replay_warned == report_warned, (runs.a_replay.stderr, report.stdout)
    compare = imgtrace("compare", runs.a, runs.b, "--no-images")
    health = next(line for line in _lines(compare.stdout) if line.startswith(f"{runs.a}: send lag"))
    assert ("WARNING sends were late" in health) == replay_warned, health


def test_replay_says_what_was_sent_completed_and_sustained(runs: Runs) -> None:
    text = runs.a_replay.stderr
    assert "sent rate" in text and "planned" in text
    assert "24 (24 succeeded)" in text
    # 30 req/s into a server that edits about 15 per second: it could not sustain the load.
    assert "the server was saturated" in " ".join(text.replace("│", " ").split())
    report = imgtrace("report", runs.a, columns=200)
    assert "server throughput" in report.stdout
    assert "the server was saturated" in report.stdout


def test_a_doubled_path_prefix_is_diagnosed_and_exits_2(runs: Runs) -> None:
    out = runs.folder / "doubled.run"
    result = imgtrace("replay", runs.trace, "--target", runs.url + "/v1", "-o", out, "--limit", "3")
    assert result.returncode == 2, result.stderr
    errors = [line for line in _lines(result.stderr) if line.startswith("imgtrace: error: ")]
    assert len(errors) == 1, result.stderr
    assert "every one of the 3 requests got HTTP 404" in errors[0]
    assert "doubled path prefix" in errors[0]
    assert f"(--target {runs.url})" in errors[0]
    assert out.is_file()  # the run is kept, as with a target that never answered


def test_report_shows_the_servers_reason_per_error_class(runs: Runs) -> None:
    run = runs.folder / "failing.run"
    replay = imgtrace("replay", runs.trace, "--target", runs.failing_url, "-o", run)
    assert replay.returncode == 0, replay.stderr
    report = imgtrace("report", run, "--json", "-")
    document = json.loads(report.stdout)
    messages = document["error_messages"]
    assert messages and all(m["error"] == "HTTP 500" for m in messages)
    assert messages[0]["message"].startswith("server_error: injected failure")
    text = imgtrace("report", run, columns=200).stdout
    errors_table = text[text.index("Errors") :]
    assert "most common message" in errors_table and "server_error: injected failure" in text
    row = next(line for line in _lines(errors_table) if "HTTP 500" in line)
    assert row.split("│")[5].strip() == str(len(messages))  # distinct messages


def test_a_run_that_failed_entirely_names_the_servers_reason(runs: Runs) -> None:
    run = runs.folder / "bad_size.run"
    replay = imgtrace(
        "replay", runs.trace, "--target", runs.url, "-o", run, "--set", "size=banana",
        "--limit", "2",
    )  # fmt: skip
    assert replay.returncode == 2  # every request rejected the same way
    assert "every one of the 2 requests got HTTP 400" in replay.stderr
    report = imgtrace("report", run)
    assert report.returncode == 2
    assert "'size' must be WIDTHxHEIGHT" in report.stderr


def _latency_by_id(path: Path) -> dict[str, float]:
    with TraceReader(path) as reader:
        return {
            o.request_id: float(o.done_ns - o.intended_ns)
            for o in reader.outcomes()
            if o.status == 200 and o.done_ns is not None
        }


def test_compare_gives_the_change_in_time_beside_every_ratio(runs: Runs) -> None:
    result = imgtrace("compare", runs.a, runs.b, "--no-images", "--json", "-")
    document = json.loads(result.stdout)
    effects = document["comparisons"][0]["effects"]
    typical = next(e for e in effects if e["statistic"] == "typical" and e["stratum"] == "all")
    base, cand = _latency_by_id(runs.a), _latency_by_id(runs.b)
    expected = statistics.median(cand[k] - base[k] for k in base if k in cand) / 1e6
    assert typical["delta_ms"] == pytest.approx(expected, abs=1e-6)
    for effect in effects:
        if effect["kind"] == "log_ratio" and effect["estimate"] is not None:
            assert effect["delta_ms"] is not None, effect
    text = imgtrace("compare", runs.a, runs.b, "--no-images", columns=200).stdout
    all_row = next(line for line in _lines(text) if line.startswith("│ all "))
    assert "ms)" in all_row or "s)" in all_row


def test_an_interleaved_target_with_a_doubled_prefix_is_diagnosed(runs: Runs) -> None:
    out = runs.folder / "side_by_side"
    result = imgtrace(
        "replay", runs.trace, "--target", f"a={runs.url}", "--target", f"b={runs.url}/v1",
        "-o", out, "--limit", "2",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    errors = [line for line in _lines(result.stderr) if line.startswith("imgtrace: error: ")]
    assert len(errors) == 1 and "target b: every one of the 2 requests got HTTP 404" in errors[0]
    assert "doubled path prefix" in errors[0]
