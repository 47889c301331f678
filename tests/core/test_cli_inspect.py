"""`imgtrace show`, `cat` and `extract`, and the bad inputs every command must survive."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from tracefiles import write_run, write_trace

from imgtrace._cli import main
from traces import FORMAT_VERSION, Header, Outcome, TraceReader, TraceWriter

Run = Callable[..., subprocess.CompletedProcess[str]]


def test_show_summarizes_a_trace(trace_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(trace_file)]) == 0
    out = capsys.readouterr().out
    assert "requests    20" in out
    assert "mean rate 10.00 req/s" in out
    assert "dedup" in out and "(x6.67)" in out
    assert "size        512x512 ×20" in out


def test_show_json_reports_responses_and_rates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.imgtrace"
    write_trace(path, 11, with_responses=True)
    assert main(["show", "--json", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["requests"] == 11
    assert summary["statuses"] == {"200": 11}
    assert summary["span_s"] == pytest.approx(1.0)
    assert summary["peak_rate_1s"] == 10
    assert summary["output_sizes"] == {"8x8 png": 11}


def test_show_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.imgtrace"
    write_run(path, 4)
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "kind        run" in out and "outcomes 4" in out and "200 ×4" in out


def test_cat_prints_records_without_blob_bytes(
    trace_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cat", str(trace_file)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["type"] == "header"
    blobs = [line for line in lines if line["type"] == "blob"]
    assert len(blobs) == 3 and set(blobs[0]) == {"type", "digest", "media_type", "size"}
    assert blobs[0]["media_type"] == "image/png"
    assert sum(line["type"] == "request" for line in lines) == 20


def test_cat_type_filter_and_output_file(trace_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "requests.jsonl"
    assert main(["cat", str(trace_file), "--type", "request", "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 20


def test_extract_writes_each_image_once_named_by_content(trace_file: Path, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    assert main(["extract", str(trace_file), "-o", str(folder)]) == 0
    files = sorted(p.name for p in folder.iterdir())
    assert len([f for f in files if f.endswith(".png")]) == 3
    manifest = (folder / "manifest.jsonl").read_text().splitlines()
    assert len(manifest) == 20
    with TraceReader(trace_file) as reader:
        first = next(reader.requests())
        digest = first.body.parts[-1].blob  # type: ignore[union-attr]
        assert (folder / f"{digest[:16]}.png").read_bytes() == reader.blob(digest)


# -- bad input: one line, exit code 2, nothing overwritten -------------------------------------


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("imgtrace: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_not_a_trace_file(tmp_path: Path, imgtrace: Run) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n not a trace")
    line = _one_line_error(imgtrace("show", str(path)))
    assert "not an imgtrace trace" in line and str(path) in line


def test_empty_file(tmp_path: Path, imgtrace: Run) -> None:
    path = tmp_path / "empty.imgtrace"
    path.write_bytes(b"")
    assert "empty file" in _one_line_error(imgtrace("cat", str(path)))


def test_truncated_inside_a_frame_keeps_what_came_before(tmp_path: Path, imgtrace: Run) -> None:
    path = tmp_path / "t.imgtrace"
    write_trace(path, 20, close=False)
    data = path.read_bytes()
    path.write_bytes(data[:-25])
    result = imgtrace("cat", "--type", "request", str(path))
    assert result.returncode == 0
    kept = len(result.stdout.splitlines())
    assert 0 < kept < 20
    [warning] = result.stderr.strip().splitlines()
    assert warning.startswith("imgtrace: warning: ") and "dropped" in warning and "bytes" in warning


def test_flipped_byte_inside_a_frame(tmp_path: Path, imgtrace: Run) -> None:
    path = tmp_path / "t.imgtrace"
    write_trace(path, 20)
    with TraceReader(path) as reader:
        assert reader.index is not None
        frame = reader.index.frames[1]
    data = bytearray(path.read_bytes())
    data[frame.offset + frame.length - 6] ^= 0x01
    path.write_bytes(bytes(data))
    line = _one_line_error(imgtrace("show", str(path)))
    assert f"at byte {frame.offset}" in line and "damaged" in line


def test_future_format_version(tmp_path: Path, imgtrace: Run) -> None:
    path = tmp_path / "future.imgtrace"
    TraceWriter(path, Header(format_version=FORMAT_VERSION + 1)).close()
    line = _one_line_error(imgtrace("show", str(path)))
    assert "upgrade imgtrace" in line


def test_request_referencing_a_missing_blob(tmp_path: Path, imgtrace: Run) -> None:
    path = tmp_path / "r.imgtrace"
    with TraceWriter(path, Header(kind="run")) as writer:
        writer.write(Outcome(request_id="a", seq=0, intended_ns=0, images=("cd" * 32,)))
    line = _one_line_error(imgtrace("extract", str(path), "-o", str(tmp_path / "out")))
    assert "not stored in the file" in line


def test_existing_output_is_not_overwritten(
    trace_file: Path, tmp_path: Path, imgtrace: Run
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("keep me")
    line = _one_line_error(imgtrace("cat", str(trace_file), "-o", str(out)))
    assert "--force" in line
    assert out.read_text() == "keep me"
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep me too")
    _one_line_error(imgtrace("extract", str(trace_file), "-o", str(folder)))
    assert sorted(p.name for p in folder.iterdir()) == ["mine.txt"]
    assert imgtrace("cat", str(trace_file), "-o", str(out), "--force").returncode == 0
    assert out.read_text().startswith('{"type":"header"')


def test_debug_shows_the_traceback(tmp_path: Path, imgtrace: Run) -> None:
    path = tmp_path / "empty.imgtrace"
    path.write_bytes(b"")
    result = imgtrace("--debug", "show", str(path))
    assert result.returncode != 0 and "Traceback" in result.stderr
