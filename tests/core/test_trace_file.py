"""The trace file: round trips, deduplication, blob lookup, flushing, recovery, versions."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import msgspec
import pytest
import zstandard
from tracefiles import png, write_run, write_trace

from traces import (
    FORMAT_VERSION,
    Blob,
    Header,
    MissingBlobError,
    Note,
    Outcome,
    Request,
    TraceFormatError,
    TraceReader,
    TraceRecoveryWarning,
    TraceWriter,
    UnsupportedTraceVersion,
    UsageError,
)
from traces._framing import SIGNATURE_FRAME


def test_round_trip_keeps_every_request(tmp_path: Path) -> None:
    path = tmp_path / "t.imgtrace"
    written = write_trace(path, 30)
    with TraceReader(path) as reader:
        assert reader.header.kind == "trace"
        assert reader.header.format_version == FORMAT_VERSION
        assert reader.header.tool_version
        read = list(reader.requests())
    assert [r.id for r in read] == [r.id for r in written]
    assert read[5].body == written[5].body


def test_secret_headers_are_redacted_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "t.imgtrace"
    write_trace(path, 5)
    everything = b"".join(_all_frames(path))
    assert b"make it blue" in everything  # the frames were really decompressed
    assert b"sk-secret-value" not in everything
    with TraceReader(path) as reader:
        request = next(reader.requests())
    assert dict(request.headers)["Authorization"] == "[redacted]"
    assert dict(request.headers)["User-Agent"] == "test"


def _all_frames(path: Path) -> list[bytes]:
    data = path.read_bytes()[len(SIGNATURE_FRAME) :]
    out = []
    while data[:4] == b"\x28\xb5\x2f\xfd":
        stream = zstandard.ZstdDecompressor().decompressobj()
        out.append(stream.decompress(data))
        data = stream.unused_data
    return out


def test_each_image_is_stored_once(tmp_path: Path) -> None:
    path = tmp_path / "t.imgtrace"
    write_trace(path, 30, distinct_images=3)
    with TraceReader(path) as reader:
        blobs = [r for r in reader.records() if isinstance(r, Blob)]
        assert reader.index is not None
        assert reader.index.dedup_hits == 27
    assert len(blobs) == 3
    assert len({b.digest for b in blobs}) == 3


def test_blob_lookup_uses_the_index_without_scanning(tmp_path: Path) -> None:
    path = tmp_path / "t.imgtrace"
    written = write_trace(path, 10)
    digest = written[-1].body.parts[-1].blob  # type: ignore[union-attr]
    with TraceReader(path) as reader:
        assert reader.closed_cleanly
        data = reader.blob(digest)
        assert reader._yielded == 0  # answered from the index, no record was iterated
    assert data.startswith(b"\x89PNG")


def test_blob_lookup_in_a_file_without_index_scans_once(tmp_path: Path) -> None:
    path = tmp_path / "t.imgtrace"
    written = write_trace(path, 10, close=False)
    digest = written[3].body.parts[-1].blob  # type: ignore[union-attr]
    with TraceReader(path) as reader:
        assert not reader.closed_cleanly
        assert reader.blob(digest).startswith(b"\x89PNG")
        assert reader.trace_digest() == _digest_of_closed(tmp_path)


def _digest_of_closed(tmp_path: Path) -> str:
    path = tmp_path / "closed.imgtrace"
    write_trace(path, 10)
    with TraceReader(path) as reader:
        assert reader.index is not None and reader.index.trace_digest
        return reader.trace_digest()


def test_run_file_with_outcomes(tmp_path: Path) -> None:
    path = tmp_path / "r.imgtrace"
    outcomes = write_run(path, 7)
    with TraceReader(path) as reader:
        assert reader.kind == "run"
        read = list(reader.outcomes())
        assert read == outcomes
        assert reader.blob(read[2].images[0]).startswith(b"\x89PNG")


def test_quiet_writer_still_flushes_within_its_interval(tmp_path: Path) -> None:
    path = tmp_path / "t.imgtrace"
    writer = TraceWriter(path, Header(), flush_records=1000, flush_interval=0.1)
    try:
        writer.write(Request(id="only", offset_ns=0, path="/v1/images/edits"))
        deadline = time.monotonic() + 5
        seen: list[Request] = []
        while time.monotonic() < deadline and not seen:
            time.sleep(0.05)
            with TraceReader(path) as reader:
                seen = list(reader.requests())
        assert [r.id for r in seen] == ["only"]
    finally:
        writer.close()


def test_notes_amend_metadata(tmp_path: Path) -> None:
    path = tmp_path / "t.imgtrace"
    with TraceWriter(path, Header(metadata={"a": 1, "dropped": 0})) as writer:
        writer.note(dropped=3)
    with TraceReader(path) as reader:
        assert reader.metadata() == {"a": 1, "dropped": 3}
        assert any(isinstance(r, Note) for r in reader.records())


def test_writer_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "t.imgtrace"
    path.write_bytes(b"precious")
    with pytest.raises(UsageError, match="already exists"):
        TraceWriter(path, Header())
    assert path.read_bytes() == b"precious"
    TraceWriter(path, Header(), force=True).close()
    with TraceReader(path) as reader:
        assert list(reader.requests()) == []


def test_torn_tail_keeps_records_before_it(tmp_path: Path) -> None:
    path = tmp_path / "t.imgtrace"
    write_trace(path, 20, flush_records=4, close=False)
    data = path.read_bytes()
    torn = tmp_path / "torn.imgtrace"
    torn.write_bytes(data[:-30])
    with pytest.warns(TraceRecoveryWarning, match="dropped") as caught, TraceReader(torn) as reader:
        requests = list(reader.requests())
        assert reader.damage is not None
        assert reader.damage.bytes_dropped > 0
    assert 0 < len(requests) < 20
    assert [r.id for r in requests] == [f"req-{i:04d}" for i in range(len(requests))]
    assert "kept the" in str(caught[0].message)


def test_flipped_byte_in_a_closed_file_is_an_error_naming_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "t.imgtrace"
    write_trace(path, 20, flush_records=4)
    data = bytearray(path.read_bytes())
    with TraceReader(path) as reader:
        assert reader.index is not None
        frame = reader.index.frames[2]
    data[frame.offset + frame.length // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with TraceReader(path) as reader, pytest.raises(TraceFormatError) as info:
        list(reader.records())
    assert f"at byte {frame.offset}" in str(info.value)
    assert "--salvage" in str(info.value)
    with pytest.warns(TraceRecoveryWarning), TraceReader(path, salvage=True) as reader:
        kept = list(reader.requests())
    assert 0 < len(kept) < 20


def test_empty_and_foreign_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.imgtrace"
    empty.write_bytes(b"")
    with pytest.raises(TraceFormatError, match="empty file"):
        TraceReader(empty)
    foreign = tmp_path / "foreign.imgtrace"
    foreign.write_bytes(b"PK\x03\x04 not a trace at all")
    with pytest.raises(TraceFormatError, match="not an imgtrace trace"):
        TraceReader(foreign)
    with pytest.raises(TraceFormatError, match="no such file"):
        TraceReader(tmp_path / "missing.imgtrace")


def test_future_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.imgtrace"
    TraceWriter(path, Header(format_version=FORMAT_VERSION + 6)).close()
    with pytest.raises(UnsupportedTraceVersion, match="version 7.*upgrade imgtrace"):
        TraceReader(path)


def test_missing_blob_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "t.imgtrace"
    with TraceWriter(path, Header()) as writer:
        writer.write(Outcome(request_id="a", seq=0, intended_ns=0, images=("ab" * 32,)))
    with TraceReader(path) as reader:
        outcome = next(reader.outcomes())
        with pytest.raises(MissingBlobError, match="not stored in the file"):
            reader.blob(outcome.images[0])


class FutureRecord(msgspec.Struct, tag="hologram"):
    depth: int


def test_unknown_record_types_from_newer_writers_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "t.imgtrace"
    writer = TraceWriter(path, Header())
    writer.write(Request(id="a", offset_ns=0, path="/x"))
    writer._append(FutureRecord(depth=3))  # type: ignore[arg-type]
    writer.write(Request(id="b", offset_ns=1, path="/x"))
    writer.close()
    with TraceReader(path) as reader:
        assert [r.id for r in reader.requests()] == ["a", "b"]


def test_large_blob_gets_its_own_frame(tmp_path: Path) -> None:
    path = tmp_path / "t.imgtrace"
    big = png(1500, 1500, (1, 2, 3)) + bytes(range(256)) * 40_000
    with TraceWriter(path, Header(), max_frame_bytes=1 << 20) as writer:
        small = writer.add_blob(b"small blob")
        digest = writer.add_blob(big)
    with TraceReader(path) as reader:
        assert reader.blob(digest) == big
        assert reader.blob(small) == b"small blob"


def test_reading_never_warns_on_a_clean_file(trace_file: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with TraceReader(trace_file) as reader:
            assert len(list(reader.records())) > 20
