"""The writing side of a recording: exchanges become records in the trace file and its parts.

A `TraceSink` works on one thread (the `Recorder`'s writer thread, or the proxy's recording
process): it parses, hashes and writes each exchange (`to_request`), rotates the file, applies
`--sample`, writes the counts as notes, and turns a failing disk into counted drops. Recording
must never break the traffic it watches, so nothing here raises to the producer.
"""

from __future__ import annotations

import collections
import hashlib
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from traces import Header, Redaction, Request, TraceWriter, UsageError

from ._capture import Exchange, sample_key, to_request
from ._options import RecorderStats, RecordOptions, part_path

__all__ = ["TraceSink", "WriterFactory", "default_writer", "warn"]

WriterFactory = Callable[[Path, Header, Redaction, float], TraceWriter]

_NOTE_EVERY = 5.0


def default_writer(path: Path, header: Header, redaction: Redaction, flush: float) -> TraceWriter:
    return TraceWriter(path, header, force=True, redaction=redaction, flush_interval=flush)


def warn(message: str) -> None:
    print(f"imgtrace: warning: {message}", file=sys.stderr, flush=True)


class TraceSink:
    """Writes finished exchanges into `path` (and its rotated parts), counting into `stats`.

    `zero` (the recording's time zero, from `Intake`) must be set before the first `record`.
    `on_open` hears of each part file as it is created.
    """

    def __init__(
        self,
        path: Path,
        *,
        source: str,
        options: RecordOptions,
        stats: RecorderStats,
        metadata: Mapping[str, Any] | None = None,
        writer_factory: WriterFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        warn: Callable[[str], None] = warn,
        on_open: Callable[[Path], None] | None = None,
    ) -> None:
        self.path = path
        self.options = options
        self.stats = stats
        self.zero: tuple[int, int] | None = None
        self._source = source
        self._metadata = dict(metadata or {})
        self._writer_factory = writer_factory or default_writer
        self._clock = clock
        self._warn = warn
        self._on_open = on_open
        self._user_key = options.user_key or secrets.token_bytes(32)
        self.redaction = Redaction(redact=options.redact_headers, keep=options.keep_headers)
        self._writer: TraceWriter | None = None
        self._broken = False
        # Record numbers of recent requests, to count the ones a failing disk takes with it.
        self._unflushed: collections.deque[int] = collections.deque(maxlen=100_000)
        self._part = 0
        self._part_started = 0.0
        self._last_note = (0.0, self.stats.as_metadata())

    def record(self, exchange: Exchange) -> None:
        """Write one exchange, or count why it was not written."""
        assert self.zero is not None
        if self.options.sample < 1:
            self._record_sampled(exchange)
            return
        writer = self._current_writer()
        if writer is None:
            self.stats.dropped_write_failed += 1
            return
        try:
            request = to_request(exchange, writer.add_blob, self.zero[0], self._user_key)
            if exchange.request_over:
                self.stats.bodies_over_max += 1
            writer.write(request)
        except OSError as exc:
            self._fail(exc)
            self.stats.dropped_write_failed += 1
            return
        except Exception as exc:  # a capture bug must not stop the recording
            self._warn(f"could not record request {exchange.id}: {exc!r}")
            self.stats.dropped_write_failed += 1
            return
        self._written(writer, request)

    def _record_sampled(self, exchange: Exchange) -> None:
        """Build the record first (blobs staged in memory): the sample key needs its content."""
        assert self.zero is not None
        staged: list[tuple[bytes, str | None]] = []

        def stage(data: bytes, media_type: str | None) -> str:
            staged.append((data, media_type))
            return hashlib.sha256(data).hexdigest()

        try:
            request = to_request(exchange, stage, self.zero[0], self._user_key)
        except Exception as exc:  # a capture bug must not stop the recording
            self._warn(f"could not record request {exchange.id}: {exc!r}")
            self.stats.dropped_write_failed += 1
            return
        if sample_key(request) >= self.options.sample:
            self.stats.sampled_out += 1
            return
        if exchange.request_over:
            self.stats.bodies_over_max += 1
        writer = self._current_writer()
        if writer is None:
            self.stats.dropped_write_failed += 1
            return
        try:
            for data, media_type in staged:
                writer.add_blob(data, media_type)
            writer.write(request)
        except OSError as exc:
            self._fail(exc)
            self.stats.dropped_write_failed += 1
            return
        self._written(writer, request)

    def _written(self, writer: TraceWriter, request: Request) -> None:
        self.stats.recorded += 1
        # Exchanges finish out of arrival order and are written so: readers that need arrival
        # order ask for it (`TraceReader.requests_by_arrival`), and the file is never rewritten.
        self._unflushed.append(writer.index.records)

    def _current_writer(self) -> TraceWriter | None:
        if self._broken:
            return None
        writer = self._writer
        if writer is not None and self._due_for_rotation(writer):
            self._close_writer(writer)
            writer = None
        if writer is None:
            writer = self._open_part()
        return writer

    def _due_for_rotation(self, writer: TraceWriter) -> bool:
        options = self.options
        if options.rotate_time and self._clock() - self._part_started >= options.rotate_time:
            return True
        if options.rotate_size:
            try:
                return writer.path.stat().st_size >= options.rotate_size
            except OSError:
                return False
        return False

    def header(self) -> Header:
        """The header of the next part (with the options and the time zero known so far)."""
        zero_wall = self.zero[1] if self.zero is not None else None
        metadata = {**self._metadata, **self._recording_metadata()}
        if self.options.rotate_size or self.options.rotate_time:
            metadata["part"] = self._part
        return Header(source=self._source, metadata=metadata, start_wall_ns=zero_wall)

    def _open_part(self) -> TraceWriter | None:
        self._part += 1
        path = part_path(self.path, self._part)
        try:
            writer = self._writer_factory(
                path, self.header(), self.redaction, self.options.flush_interval
            )
        except (OSError, UsageError) as exc:
            self._fail(exc)
            return None
        self._writer = writer
        self._unflushed.clear()
        self._part_started = self._clock()
        self.stats.files.append(str(path))
        if self._on_open is not None:
            self._on_open(path)
        return writer

    def _recording_metadata(self) -> dict[str, Any]:
        options = self.options
        return {
            "paths": list(options.paths),
            "sample": options.sample,
            "max_body": options.max_body,
            "redacted_headers": sorted(self.redaction.names),
            "user_field": "pseudonymised (HMAC-SHA256"
            + (")" if options.user_key else ", key random per recording)"),
        }

    def _fail(self, exc: BaseException) -> None:
        """The disk failed: stop writing (the file reads back to its last flush), keep counting."""
        if self._broken:
            return
        self._broken = True
        reason = getattr(exc, "strerror", None) or str(exc)
        self._warn(
            f"cannot write the trace any more ({reason}); traffic is still forwarded, and "
            "records from now on are dropped and counted"
        )
        writer, self._writer = self._writer, None
        if writer is not None:
            # Requests accepted by the writer but not yet in a frame on disk are lost too.
            on_disk = sum(frame.records for frame in writer.index.frames)
            lost = sum(1 for number in self._unflushed if number > on_disk)
            self.stats.recorded -= lost
            self.stats.dropped_write_failed += lost
            try:
                writer.abandon()
            except OSError:
                pass

    def maybe_note(self) -> None:
        """Write the counts as a note when they changed and the last one is old enough."""
        writer = self._writer
        if writer is None or self._broken:
            return
        metadata = self.stats.as_metadata()
        last_time, last = self._last_note
        if metadata == last or self._clock() - last_time < _NOTE_EVERY:
            return
        try:
            writer.note(**metadata)
        except OSError as exc:
            self._fail(exc)
            return
        self._last_note = (self._clock(), metadata)

    def _close_writer(self, writer: TraceWriter) -> None:
        try:
            writer.note(**self.stats.as_metadata())
            writer.close()
        except OSError as exc:
            self._fail(exc)
        self._writer = None

    def finish(self) -> None:
        """Note the final counts and close the file (an idle recording leaves an empty trace)."""
        if self._writer is None and not self._broken and self.stats.recorded == 0:
            self._open_part()
        if self._writer is not None:
            self._close_writer(self._writer)
