"""A damaged trace: `replay` and `export` say how to read it, and --salvage does what it says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from raw_capture import RawCaptureServer
from samples import edit, upload
from testproc import run_imgtrace

from traces import (
    Header,
    TraceReader,
    TraceRecoveryWarning,
    TraceWriter,
)

MS = 1_000_000


def _damaged_trace(path: Path, count: int = 20) -> int:
    """A closed trace with a flipped byte in its third frame; returns the requests before it."""
    with TraceWriter(path, Header(source="test"), flush_records=4) as writer:
        image = upload(writer.add_blob(b"\x89PNG-not-really", "image/png"), 15, "a.png", None)
        for i in range(count):
            writer.write(edit(f"r{i:04d}", i * MS, image, f"edit {i}", boundary="b"))
    with TraceReader(path) as reader:
        assert reader.index is not None
        frame = reader.index.frames[2]
    data = bytearray(path.read_bytes())
    data[frame.offset + frame.length // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.warns(TraceRecoveryWarning), TraceReader(path, salvage=True) as reader:
        return len(list(reader.requests()))


def test_replay_refuses_a_damaged_trace_with_a_hint_it_accepts(tmp_path: Path) -> None:
    trace = tmp_path / "t.imgtrace"
    kept = _damaged_trace(trace)
    assert 0 < kept < 20
    server = RawCaptureServer()
    try:
        run = tmp_path / "run.imgtrace"
        args = ["replay", str(trace), "--target", server.url, "-o", str(run), "--no-progress"]
        refused = run_imgtrace(*args)
        assert refused.returncode == 2
        assert refused.stderr.startswith("imgtrace: error: ")
        assert "--salvage" in refused.stderr
        assert server.requests == []
        salvaged = run_imgtrace(*args, "--salvage", "--speed", "100", "--json", "-")
    finally:
        server.close()
    assert salvaged.returncode == 0, salvaged.stderr
    assert "imgtrace: warning:" in salvaged.stderr and "damage" in salvaged.stderr
    assert json.loads(salvaged.stdout)["completed"] == kept
    assert len(server.requests) == kept


def test_export_refuses_a_damaged_trace_with_a_hint_it_accepts(tmp_path: Path) -> None:
    trace = tmp_path / "t.imgtrace"
    kept = _damaged_trace(trace)
    out = tmp_path / "a.jsonl"
    refused = run_imgtrace("export", "aiperf-input", str(trace), "-o", str(out))
    assert refused.returncode == 2
    assert "--salvage" in refused.stderr and not out.exists()
    salvaged = run_imgtrace("export", "aiperf-input", str(trace), "-o", str(out), "--salvage")
    assert salvaged.returncode == 0, salvaged.stderr
    assert "imgtrace: warning:" in salvaged.stderr
    assert len(out.read_text().splitlines()) == kept
