"""One voice on the command line: one-line argparse errors, one meaning per flag (old spellings
warn), one lag rule, one diagnosis of a target that fails every request, checked sizes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from analyzer._render import render_text
from analyzer._table import Table
from replayer._diagnose import diagnose
from traces import lag_matters

Run = Callable[..., subprocess.CompletedProcess[str]]
MS = 1e6


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["replay"], "imgtrace: error: replay: the following arguments are required: TRACE"),
        (["replay", "t", "--speed", "x"], "imgtrace: error: replay: argument --speed: invalid"),
        (["bogus"], "imgtrace: error: argument COMMAND: invalid choice: 'bogus'"),
        (["compare", "a"], "imgtrace: error: compare: the following arguments are required"),
    ],
)
def test_argparse_errors_are_one_line_and_a_hint(
    args: list[str], fragment: str, imgtrace: Run
) -> None:
    result = imgtrace(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(fragment), result.stderr
    assert len(lines) == 2 and lines[1].startswith("run `imgtrace") and "--help" in lines[1]
    assert "usage:" not in result.stderr


@pytest.mark.parametrize(
    ("value", "accepted"),
    [("512x", False), ("x512", False), ("0x64", False), ("64x64,128x", False),
     ("64x64", True), ("auto", True), ("64x64@3,128x128@1", True)],
)  # fmt: skip
def test_synth_checks_the_output_size(
    value: str, accepted: bool, tmp_path: Path, imgtrace: Run
) -> None:
    out = tmp_path / "t.imgtrace"
    result = imgtrace("synth", "-o", str(out), "--count", "2", "--image-size", "16x16",
                      "--size", value)  # fmt: skip
    if accepted:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if line.startswith("imgtrace: error:")
    ]
    assert "is not a size WIDTHxHEIGHT" in result.stderr and "--size" in result.stderr
    assert not out.exists()


def test_replay_request_seed_and_its_old_spelling(tmp_path: Path, imgtrace: Run) -> None:
    trace = tmp_path / "t.imgtrace"
    assert (
        imgtrace("synth", "-o", str(trace), "--count", "2", "--image-size", "16x16").returncode == 0
    )
    new = imgtrace("replay", str(trace), "--dry-run", "--request-seed", "fixed:3")
    assert new.returncode == 0 and "deprecated" not in new.stderr
    old = imgtrace("replay", str(trace), "--dry-run", "--seed", "fixed:3")
    assert old.returncode == 0
    assert "imgtrace: warning: --seed is deprecated here: use --request-seed" in old.stderr
    bad = imgtrace("replay", str(trace), "--dry-run", "--seed", "sometimes")
    assert bad.returncode == 2 and "--request-seed 'sometimes'" in bad.stderr


def test_show_json_takes_a_file_like_every_command(tmp_path: Path, imgtrace: Run) -> None:
    trace = tmp_path / "t.imgtrace"
    assert (
        imgtrace("synth", "-o", str(trace), "--count", "2", "--image-size", "16x16").returncode == 0
    )
    out = tmp_path / "show.jsonl"
    assert imgtrace("show", str(trace), str(trace), "--json", str(out)).returncode == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["kind"] == "trace"
    again = imgtrace("show", str(trace), "--json", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert out.read_text().splitlines() == lines  # nothing overwritten
    to_stdout = imgtrace("show", str(trace), "--json")
    assert json.loads(to_stdout.stdout)["kind"] == "trace"
    old = imgtrace("show", "--json", str(trace))  # the switch before the files, as it was
    assert json.loads(old.stdout)["kind"] == "trace"
    assert "deprecated" in old.stderr


@pytest.mark.parametrize(
    ("lag_ms", "median_ms", "matters"),
    [
        (31.6, 3800.0, False),  # image edits of seconds: 30 ms of lag is noise
        (20.0, 60.0, True),  # a third of the latency
        (4.0, 10.0, False),  # under the 5 ms floor
        (150.0, 10_000.0, True),  # over 100 ms whatever the latency
        (50.0, float("nan"), False),  # nothing succeeded: only the absolute limit
        (float("nan"), 10.0, False),
    ],
)
def test_one_lag_rule(lag_ms: float, median_ms: float, matters: bool) -> None:
    assert lag_matters(lag_ms * MS, median_ms * MS) is matters


def test_diagnose_names_the_likely_mistake() -> None:
    doubled = diagnose(
        {"404": 5}, {}, 5, connected=5, target="http://h:30000/v1", target_path="/v1"
    )
    assert doubled is not None and "doubled path prefix" in doubled
    assert "(--target http://h:30000)" in doubled
    plain = diagnose({"404": 5}, {}, 5, connected=5, target="http://h:30000")
    assert plain is not None and "no route" in plain
    refused = diagnose({}, {"connect": 3}, 3, connected=0, target="http://h:9")
    assert refused is not None and "not a single request could connect" in refused
    creds = diagnose({"401": 2}, {}, 2, connected=2, target="http://h")
    assert creds is not None and "credentials" in creds
    rejected = diagnose({"400": 2}, {}, 2, connected=2, target="http://h")
    assert rejected is not None and "imgtrace report" in rejected
    # Measurements, not mistakes: server errors, mixed outcomes, partial failures.
    assert diagnose({"500": 4}, {}, 4, connected=4, target="http://h") is None
    assert diagnose({"404": 3, "200": 1}, {}, 4, connected=4, target="http://h") is None
    assert diagnose({"404": 3}, {"timeout": 1}, 4, connected=4, target="http://h") is None
    assert diagnose({}, {}, 0, connected=0, target="http://h") is None


def test_render_text_fits_any_width_and_keeps_figures_whole() -> None:
    table = Table(
        title="A title long enough to need wrapping when the terminal is narrow enough",
        columns=["class", "a long header that wraps", "verdict"],
        rows=[["size=512x512", "+12.5% [+3.0, +20.1] (+15.4ms)", "inconclusive (noise ±48%)"]],
        footnotes=["a footnote " * 12],
    )
    for width in (100, 60):
        text = render_text(table, width)
        assert max(len(line) for line in text.splitlines()) <= width, text
        row = next(line for line in text.splitlines() if line.startswith("│ size=512x512"))
        assert "inconclusive" in row and "+12.5%" in row
    # Narrower than the longest words: they break rather than run over the edge.
    assert max(len(line) for line in render_text(table, 40).splitlines()) <= 40
