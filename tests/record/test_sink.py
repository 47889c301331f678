"""The recorder's writer thread: rotation, drops when behind, and the capture helpers."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgtrace._commands._shared import parse_duration, parse_size
from recorder import Recorder, RecordOptions
from recorder._capture import Exchange, pseudonymise
from recorder._sink import part_path
from traces import (
    Header,
    Outcome,
    Redaction,
    Request,
    TraceReader,
    TraceWriter,
    UsageError,
    redact_query,
)


def _exchange(recorder: Recorder, body: bytes = b"{}") -> Exchange:
    exchange = recorder.begin(
        "POST", "/v1/images/generations", "", [("content-type", "application/json")]
    )
    assert exchange is not None
    exchange.add_request_chunk(body)
    exchange.status = 200
    exchange.response_headers = [("content-type", "application/json")]
    exchange.add_response_chunk(b'{"data": []}')
    exchange.done_ns = time.monotonic_ns()
    return exchange


def _count(path: Path) -> int:
    with TraceReader(path) as reader:
        return sum(1 for _ in reader.requests())


def test_rotation_by_time_and_size(tmp_path: Path) -> None:
    now = [0.0]
    out = tmp_path / "rot.imgtrace"
    recorder = Recorder(out, options=RecordOptions(rotate_time=60), clock=lambda: now[0])
    for minute in range(3):
        for _ in range(2):
            recorder.submit(_exchange(recorder))
        recorder.submit(_exchange(recorder))
        # Wait until the writer has taken the records of this "minute" before time moves on.
        while recorder.stats.recorded < 3 * (minute + 1):
            time.sleep(0.005)
        now[0] += 61
    stats = recorder.close()
    assert stats.files == [str(part_path(out, n)) for n in (1, 2, 3)]
    assert [_count(Path(f)) for f in stats.files] == [3, 3, 3]
    with TraceReader(part_path(out, 2)) as reader:
        assert reader.header.metadata["part"] == 2
        # One time zero for all parts: the offsets go on from part to part.
        first = min(r.offset_ns for r in reader.requests())
    with TraceReader(out) as reader:
        assert first > max(r.offset_ns for r in reader.requests())

    def every_record(path: Path, header: Header, redaction: Redaction, _: float) -> TraceWriter:
        # A frame per record, so the size on disk is exact when the recorder looks at it.
        return TraceWriter(path, header, force=True, redaction=redaction, flush_records=1)

    sized = tmp_path / "size.imgtrace"
    recorder = Recorder(sized, options=RecordOptions(rotate_size=3000), writer_factory=every_record)
    for _ in range(6):
        exchange = _exchange(recorder)
        exchange.headers = [("content-type", "application/octet-stream")]
        exchange.request_chunks, exchange.request_size = [os.urandom(1000)], 1000
        recorder.submit(exchange)
    stats = recorder.close()
    # About 1 KB of incompressible body per request: a new part every third request or so.
    assert len(stats.files) >= 2
    assert sum(_count(Path(f)) for f in stats.files) == 6
    assert all(Path(f).stat().st_size < 3000 + 2500 for f in stats.files)


def test_rotated_parts_of_an_old_recording_are_refused(tmp_path: Path) -> None:
    (tmp_path / "old.2.imgtrace").write_bytes(b"x")
    with pytest.raises(UsageError, match="rotated part of an earlier recording"):
        Recorder(tmp_path / "old.imgtrace", options=RecordOptions(rotate_size=1 << 20))
    assert (tmp_path / "old.2.imgtrace").read_bytes() == b"x"


def test_a_writer_that_falls_behind_drops_and_counts(tmp_path: Path) -> None:
    release = threading.Event()

    class SlowWriter(TraceWriter):
        def write(self, record: Request | Outcome) -> None:
            release.wait(10)
            super().write(record)

    def factory(path: Path, header: Header, redaction: Redaction, flush: float) -> TraceWriter:
        return SlowWriter(path, header, force=True, redaction=redaction, flush_interval=flush)

    out = tmp_path / "slow.imgtrace"
    recorder = Recorder(out, options=RecordOptions(max_queue=3), writer_factory=factory)
    for _ in range(10):
        recorder.submit(_exchange(recorder))  # were this to wait for the writer, none would drop
    release.set()
    stats = recorder.close()
    # One in the writer's hands, three queued: the other six were dropped and counted.
    assert stats.recorded + stats.dropped_queue_full == 10
    assert stats.dropped_queue_full >= 6
    with TraceReader(out) as reader:
        assert reader.metadata()["dropped_records"] == stats.dropped
        assert sum(1 for _ in reader.requests()) == stats.recorded


def test_an_idle_recording_leaves_an_empty_trace(tmp_path: Path) -> None:
    out = tmp_path / "idle.imgtrace"
    Recorder(out).close()
    with TraceReader(out) as reader:
        assert reader.closed_cleanly and list(reader.requests()) == []


@given(st.text(min_size=1), st.binary(min_size=1, max_size=32))
def test_pseudonyms_are_stable_and_keyed(value: str, key: bytes) -> None:
    assert pseudonymise(value, key) == pseudonymise(value, key)
    assert pseudonymise(value, key) != pseudonymise(value, key + b"!")
    name = pseudonymise(value, key)
    assert name.startswith("anon-") and len(name) == 29 and name[5:].isalnum()


def test_query_redaction() -> None:
    assert redact_query("size=2&api_key=s3cret") == "size=2&api_key=[redacted]"
    assert redact_query("size=2&monkey=1") == "size=2&monkey=1"


@given(st.integers(min_value=0, max_value=1 << 40), st.sampled_from(["", "k", "M", "G"]))
def test_parse_size(number: int, unit: str) -> None:
    factor = {"": 1, "k": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit]
    assert parse_size(f"{number}{unit}", "--max-body") == number * factor


def test_parse_duration() -> None:
    assert parse_duration("90", "--x") == 90.0
    assert parse_duration("1.5m", "--x") == 90.0
    assert parse_duration("1h", "--x") == 3600.0
    with pytest.raises(UsageError, match="--x takes a duration"):
        parse_duration("soon", "--x")


def test_a_closed_file_reads_back_in_arrival_order_without_a_rewrite(tmp_path: Path) -> None:
    out = tmp_path / "order.imgtrace"
    recorder = Recorder(out, options=RecordOptions(keep_headers=("cookie",)))
    exchanges = [_exchange(recorder, body=b'{"n": %d}' % i) for i in range(5)]
    for exchange in exchanges:
        exchange.headers.append(("cookie", "kept"))
    for exchange in reversed(exchanges):  # the last to arrive finished first
        recorder.submit(exchange)
    recorder.close()
    with TraceReader(out) as reader:
        assert reader.closed_cleanly
        assert reader.index is not None and not reader.index.arrival_sorted
        # The file keeps completion order: nothing was rewritten on close.
        in_file = [r.id for r in reader.requests()]
        assert in_file == [e.id for e in reversed(exchanges)]
        requests = list(reader.requests_by_arrival())
        assert [r.id for r in requests] == [e.id for e in exchanges]
        assert [r.offset_ns for r in requests] == sorted(r.offset_ns for r in requests)
        assert dict(requests[0].headers)["cookie"] == "kept"  # --keep-header is kept
        assert reader.metadata()["recorder"]["recorded"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["order.imgtrace"]
