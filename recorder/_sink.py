"""The recorder's back end: a bounded queue and one writer thread per recording.

Recording must never slow down or break the traffic it watches. Producers (the proxy's event
loop, an application's HTTP client) only enqueue finished exchanges, without blocking; when the
queue is full, or the disk fails, the record is dropped and counted. The counts go to stderr, to
the file's metadata (as notes) and to `imgtrace show`.
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import itertools
import os
import queue
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from traces import (
    Header,
    OutputExists,
    Redaction,
    Request,
    TraceWriter,
    UsageError,
)

from ._capture import DEFAULT_PATHS, Exchange, PathMatcher, sample_key, to_request

__all__ = ["RecordOptions", "Recorder", "RecorderStats", "check_output", "part_path"]

WriterFactory = Callable[[Path, Header, Redaction, float], TraceWriter]

_NOTE_EVERY = 5.0


@dataclass(frozen=True)
class RecordOptions:
    """What to record and how; the same options serve the proxy and the transport.

    :param paths: request paths to record (exact, or shell patterns such as ``/v1/images/*``).
    :param sample: fraction of matching requests to keep, decided by a hash of the request's
        content, so the same request is always kept or always skipped.
    :param max_body: bodies larger than this many bytes are recorded without the body.
    :param user_key: key for the pseudonyms of the form field ``user``; a random key (stable
        only within this recording) when None.
    :param redact_headers: header names redacted on top of the default list.
    :param keep_headers: header names removed from the default redaction list.
    :param rotate_size: start a new file once the current one holds about this many bytes.
    :param rotate_time: start a new file after this many seconds.
    :param flush_interval: seconds between flushes; a crash loses at most about this much.
    :param max_queue: exchanges waiting for the writer before new ones are dropped.
    :param max_queue_bytes: bytes held by waiting exchanges before new ones are dropped.
    """

    paths: tuple[str, ...] = DEFAULT_PATHS
    sample: float = 1.0
    max_body: int = 64 << 20
    user_key: bytes | None = None
    redact_headers: tuple[str, ...] = ()
    keep_headers: tuple[str, ...] = ()
    rotate_size: int | None = None
    rotate_time: float | None = None
    flush_interval: float = 0.5
    max_queue: int = 10_000
    max_queue_bytes: int = 512 << 20

    def __post_init__(self) -> None:
        for path in self.paths:
            if not path.startswith("/"):
                raise UsageError(f"--paths takes URL paths starting with '/', not {path!r}")


@dataclass
class RecorderStats:
    """What a recording did; `dropped` counts records lost (queue full, write failures)."""

    seen: int = 0
    recorded: int = 0
    sampled_out: int = 0
    bodies_over_max: int = 0
    dropped_queue_full: int = 0
    dropped_write_failed: int = 0
    dropped_after_close: int = 0
    files: list[str] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return self.dropped_queue_full + self.dropped_write_failed + self.dropped_after_close

    def as_metadata(self) -> dict[str, Any]:
        counts = asdict(self)
        counts.pop("files")
        return {"dropped_records": self.dropped, "recorder": counts}

    def summary(self) -> str:
        text = (
            f"recorded {self.recorded} of {self.seen} matching requests into "
            f"{', '.join(self.files) or 'no file'}"
        )
        if self.sampled_out:
            text += f"; {self.sampled_out} skipped by --sample"
        if self.bodies_over_max:
            text += f"; {self.bodies_over_max} without body (over --max-body)"
        if self.dropped:
            text += (
                f"; DROPPED {self.dropped} records ({self.dropped_queue_full} writer behind, "
                f"{self.dropped_write_failed} write failures)"
            )
        return text


def check_output(path: Path, options: RecordOptions, force: bool) -> None:
    """Refuse bad options and an output that exists (or old rotated parts), before any work."""
    if not 0 < options.sample <= 1:
        raise UsageError(f"--sample must be in (0, 1], not {options.sample}")
    if options.max_body < 0:
        raise UsageError("--max-body must not be negative")
    if path.is_dir():
        raise UsageError(f"{path} is a directory: give a file name for the output")
    if not path.parent.is_dir():
        raise UsageError(f"cannot create {path}: {path.parent} is not a directory")
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"cannot create {path}: {path.parent} is not writable")
    if force:
        return
    if path.exists():
        raise OutputExists(path)
    if options.rotate_size or options.rotate_time:
        stale = sorted(path.parent.glob(f"{path.stem}.[0-9]*{path.suffix}"))
        if stale:
            raise OutputExists(stale[0], state="(a rotated part of an earlier recording) exists")


def part_path(path: Path, part: int) -> Path:
    """The file of rotation part `part`: the output itself, then `STEM.2.SUFFIX`, ..."""
    if part == 1:
        return path
    return path.with_name(f"{path.stem}.{part}{path.suffix}")


def _default_writer(path: Path, header: Header, redaction: Redaction, flush: float) -> TraceWriter:
    return TraceWriter(path, header, force=True, redaction=redaction, flush_interval=flush)


def _warn(message: str) -> None:
    print(f"imgtrace: warning: {message}", file=sys.stderr, flush=True)


_STOP = object()


class Recorder:
    """Turns finished exchanges into a trace file, on its own thread.

    `begin()` stamps an arriving request (or returns None if it is not to be recorded);
    `submit()` hands the finished exchange over without ever blocking; `close()` drains the
    queue, writes the counts as a note and closes the file. Checks on the output (exists,
    directory) happen in the constructor, so a bad `-o` fails before any traffic flows.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        source: str = "proxy",
        options: RecordOptions | None = None,
        force: bool = False,
        metadata: Mapping[str, Any] | None = None,
        writer_factory: WriterFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        warn: Callable[[str], None] = _warn,
    ) -> None:
        self.path = Path(path)
        self.options = options or RecordOptions()
        check_output(self.path, self.options, force)
        self._source = source
        self._metadata = dict(metadata or {})
        self._writer_factory = writer_factory or _default_writer
        self._clock = clock
        self._warn = warn
        self._matcher = PathMatcher(self.options.paths)
        self._user_key = self.options.user_key or secrets.token_bytes(32)
        self._redaction = Redaction(
            redact=self.options.redact_headers, keep=self.options.keep_headers
        )
        self.stats = RecorderStats()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._zero: tuple[int, int] | None = None
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._queued = 0
        self._queued_bytes = 0
        self._closed = False
        self._writer: TraceWriter | None = None
        self._broken = False
        # Record numbers of recent requests, to count the ones a failing disk takes with it.
        self._unflushed: collections.deque[int] = collections.deque(maxlen=100_000)
        self._part = 0
        self._part_started = 0.0
        self._last_note = (0.0, self.stats.as_metadata())
        self._thread = threading.Thread(target=self._run, name="imgtrace-recorder", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- producers (any thread, never blocking) -----------------------------------------------

    def begin(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]]
    ) -> Exchange | None:
        """A new exchange stamped with its arrival time, or None when `path` is not recorded."""
        if not self._matcher(path) or self._closed:
            return None
        now = time.monotonic_ns()
        wall = time.time_ns()
        with self._lock:
            if self._zero is None:
                self._zero = (now, wall)
            seq = next(self._ids)
            self.stats.seen += 1
        return Exchange(
            id=f"{seq:06d}",
            arrival_ns=now,
            wall_ns=wall,
            method=method,
            path=path,
            query=query,
            headers=headers,
            max_body=self.options.max_body,
        )

    def submit(self, exchange: Exchange) -> None:
        """Queue a finished exchange for writing; drop and count it if the writer is behind."""
        size = exchange.held_bytes
        with self._lock:
            if self._closed:
                self.stats.dropped_after_close += 1
                return
            if (
                self._queued >= self.options.max_queue
                or self._queued_bytes + size > self.options.max_queue_bytes
            ):
                self.stats.dropped_queue_full += 1
                return
            self._queued += 1
            self._queued_bytes += size
        self._queue.put((exchange, size))

    def close(self) -> RecorderStats:
        """Write what is queued, note the counts, close the file. Safe to call twice."""
        with self._lock:
            already = self._closed
            self._closed = True
        if not already:
            atexit.unregister(self.close)
            self._queue.put(_STOP)
        self._thread.join()
        return self.stats

    # -- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                self._maybe_note()
                continue
            if item is _STOP:
                break
            assert isinstance(item, tuple)
            exchange, size = item
            try:
                self._record(exchange)
            finally:
                with self._lock:
                    self._queued -= 1
                    self._queued_bytes -= size
            self._maybe_note()
        self._finish()

    def _record(self, exchange: Exchange) -> None:
        assert self._zero is not None
        if self.options.sample < 1:
            self._record_sampled(exchange)
            return
        writer = self._current_writer()
        if writer is None:
            self.stats.dropped_write_failed += 1
            return
        try:
            request = to_request(exchange, writer.add_blob, self._zero[0], self._user_key)
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
        assert self._zero is not None
        staged: list[tuple[bytes, str | None]] = []

        def stage(data: bytes, media_type: str | None) -> str:
            staged.append((data, media_type))
            return hashlib.sha256(data).hexdigest()

        try:
            request = to_request(exchange, stage, self._zero[0], self._user_key)
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

    def _open_part(self) -> TraceWriter | None:
        self._part += 1
        path = part_path(self.path, self._part)
        zero_wall = self._zero[1] if self._zero is not None else None
        metadata = {**self._metadata, **self._recording_metadata()}
        if self.options.rotate_size or self.options.rotate_time:
            metadata["part"] = self._part
        header = Header(source=self._source, metadata=metadata, start_wall_ns=zero_wall)
        try:
            writer = self._writer_factory(
                path, header, self._redaction, self.options.flush_interval
            )
        except (OSError, UsageError) as exc:
            self._fail(exc)
            return None
        self._writer = writer
        self._unflushed.clear()
        self._part_started = self._clock()
        self.stats.files.append(str(path))
        return writer

    def _recording_metadata(self) -> dict[str, Any]:
        options = self.options
        return {
            "paths": list(options.paths),
            "sample": options.sample,
            "max_body": options.max_body,
            "redacted_headers": sorted(self._redaction.names),
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

    def _maybe_note(self) -> None:
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

    def _finish(self) -> None:
        # Anything still queued was submitted before close(): write it (the STOP came after it).
        if self._writer is None and not self._broken and self.stats.recorded == 0:
            self._open_part()  # an empty recording still leaves a valid (empty) trace
        if self._writer is not None:
            self._close_writer(self._writer)
