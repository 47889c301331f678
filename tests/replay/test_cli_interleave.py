"""`imgtrace replay --target NAME=URL ...` and `imgtrace compare` of its runs, as users run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from replay_helpers import Run, Server, interrupted_replay, one_line_error, write_trace

from traces import TraceReader


def test_interleaved_replay_writes_one_run_per_target(
    trace: Path, tmp_path: Path, imgtrace: Run, echo: Server
) -> None:
    out = tmp_path / "ab"
    summary = tmp_path / "summary.json"
    result = imgtrace(
        "replay", str(trace),
        "--target", f"a={echo.url}", "--target", f"a2={echo.url}", "--target", f"b={echo.url}",
        "-o", str(out), "--order-seed", "42", "--json", str(summary), "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.imgtrace", "a2.imgtrace", "b.imgtrace"]
    assert result.stderr.count("replay summary") == 3  # one per run
    assert result.stderr.count("lag health: p50") == 3
    data = json.loads(summary.read_text())
    assert data["order_seed"] == 42 and sorted(data["targets"]) == ["a", "a2", "b"]
    assert all(entry["sent"] == 3 for entry in data["targets"].values())
    with TraceReader(out / "b.imgtrace") as reader:
        assert reader.header.interleave is not None
        assert reader.header.interleave.group == data["group"]


@pytest.mark.parametrize(
    ("targets", "fragments"),
    [
        (["a=URL", "a=URL"], ["two targets are named 'a'"]),
        (["a/b=URL", "c=URL"], ["'a/b' is not a valid file name"]),
        ([".hidden=URL", "c=URL"], ["'.hidden' is not a valid file name"]),
        (["URL", "b=URL"], ["cannot be mixed with NAME=URL"]),
        (["a=URL", "URL"], ["cannot be mixed with NAME=URL"]),
        (["a=ftp://host", "b=URL"], ["--target a:", "http:// or https://"]),
    ],
    ids=["same-name", "slash-in-name", "dot-name", "url-then-named", "named-then-url", "bad-url"],
)
def test_bad_targets(
    trace: Path,
    tmp_path: Path,
    imgtrace: Run,
    echo: Server,
    targets: list[str],
    fragments: list[str],
) -> None:
    out = tmp_path / "out"
    args = [arg for text in targets for arg in ("--target", text.replace("URL", echo.url))]
    with echo.receives_nothing():
        result = imgtrace("replay", str(trace), *args, "-o", str(out))
    one_line_error(result, *fragments)
    assert not out.exists()


def test_output_must_be_a_directory(
    trace: Path, tmp_path: Path, imgtrace: Run, echo: Server
) -> None:
    existing = tmp_path / "file.imgtrace"
    existing.write_bytes(b"keep me")
    result = imgtrace(
        "replay", str(trace), "--target", f"a={echo.url}", "--target", f"b={echo.url}",
        "-o", str(existing),
    )  # fmt: skip
    one_line_error(result, str(existing), "directory")
    assert existing.read_bytes() == b"keep me"


def test_existing_run_in_directory_needs_force(
    trace: Path, tmp_path: Path, imgtrace: Run, echo: Server
) -> None:
    out = tmp_path / "ab"
    out.mkdir()
    (out / "b.imgtrace").write_bytes(b"an earlier run")
    args = ["--target", f"a={echo.url}", "--target", f"b={echo.url}", "-o", str(out)]
    with echo.receives_nothing():
        result = imgtrace("replay", str(trace), *args)
    one_line_error(result, str(out / "b.imgtrace"), "--force")
    assert (out / "b.imgtrace").read_bytes() == b"an earlier run"
    assert not (out / "a.imgtrace").exists()
    result = imgtrace("replay", str(trace), *args, "--force", "--no-progress")
    assert result.returncode == 0, result.stderr
    with TraceReader(out / "b.imgtrace") as reader:
        assert len(list(reader.outcomes())) == 3


def test_order_seed_needs_named_targets(trace: Path, tmp_path: Path, imgtrace: Run) -> None:
    result = imgtrace(
        "replay", str(trace), "--target", "http://127.0.0.1:1", "--order-seed", "3",
        "-o", str(tmp_path / "r.imgtrace"),
    )  # fmt: skip
    one_line_error(result, "--order-seed", "NAME=URL")


def test_dead_target_exits_2_after_writing_every_run(
    trace: Path, tmp_path: Path, imgtrace: Run, echo: Server, refused: str
) -> None:
    out = tmp_path / "ab"
    dead = refused
    result = imgtrace(
        "replay", str(trace), "--target", f"a={echo.url}", "--target", f"b={dead}",
        "-o", str(out), "--no-progress",
    )  # fmt: skip
    one_line_error(result, "not a single request could connect to b", dead)
    with TraceReader(out / "a.imgtrace") as reader:
        assert [o.status for o in reader.outcomes()] == [200, 200, 200]
    with TraceReader(out / "b.imgtrace") as reader:
        assert reader.closed_cleanly
        kinds = [o.error.kind if o.error else None for o in reader.outcomes()]
        assert kinds == ["connect"] * 3


def test_ctrl_c_closes_every_run_marked_interrupted(tmp_path: Path, echo: Server) -> None:
    # The long trace to three targets.
    out = tmp_path / "group"
    names = ["a", "a2", "b"]
    targets = [arg for name in names for arg in ("--target", f"{name}={echo.url}")]
    interrupted_replay(tmp_path, "-o", str(out), *targets, started=out / "b.imgtrace")
    for name in names:
        with TraceReader(out / f"{name}.imgtrace") as reader:
            assert reader.closed_cleanly, name
            meta = reader.metadata()
            outcomes = sorted(reader.outcomes(), key=lambda o: o.seq)
        assert meta["interrupted"] is True, name
        assert 1 < len(outcomes) < 200
        assert meta["completed"] == len(outcomes)
        assert outcomes[0].status == 200 and outcomes[0].error is None
        aborted = [o for o in outcomes if o.error is not None]
        assert aborted and all(o.error and o.error.kind == "aborted" for o in aborted)


NOT_INTERLEAVED = "not measured in one interleaved replay"


def test_compare_notes_runs_not_measured_together(
    tmp_path: Path, imgtrace: Run, echo: Server
) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [i * 5 for i in range(40)])
    group = tmp_path / "ab"
    targets = [arg for name in ("a", "a2", "b") for arg in ("--target", f"{name}={echo.url}")]
    result = imgtrace("replay", str(trace), *targets, "-o", str(group), "--no-progress")
    assert result.returncode == 0, result.stderr
    alone = tmp_path / "alone.imgtrace"
    result = imgtrace("replay", str(trace), "--target", echo.url, "-o", str(alone))
    assert result.returncode == 0, result.stderr
    a, a2, b = (str(group / f"{name}.imgtrace") for name in ("a", "a2", "b"))

    together = imgtrace("compare", a, b, "--noise", a2, "--json", "-")
    assert together.returncode in (0, 1), together.stderr
    assert NOT_INTERLEAVED not in together.stdout + together.stderr
    assert json.loads(together.stdout)["notes"] == []

    html = tmp_path / "report.html"
    apart = imgtrace("compare", a, str(alone), "--noise", a2, "--html", str(html))
    assert apart.returncode in (0, 1), apart.stderr
    assert f"CAND {alone} and BASE {a} were {NOT_INTERLEAVED}" in apart.stdout
    assert "NOISE" not in apart.stdout.split(NOT_INTERLEAVED)[-1]  # A/A was measured with BASE
    assert NOT_INTERLEAVED in html.read_text()
    apart_json = imgtrace("compare", a, str(alone), "--json", "-")
    notes = json.loads(apart_json.stdout)["notes"]
    assert len(notes) == 1 and NOT_INTERLEAVED in notes[0]


def test_dry_run_with_named_targets_sends_and_writes_nothing(
    trace: Path, tmp_path: Path, imgtrace: Run, echo: Server
) -> None:
    out = tmp_path / "ab"
    with echo.receives_nothing():
        result = imgtrace(
            "replay", str(trace), "--target", f"a={echo.url}", "--target", f"b={echo.url}",
            "-o", str(out), "--dry-run",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sends         3" in result.stdout
    assert not out.exists()
