"""Append-only trace writer: deduplicated blobs, batched zstd frames, a clean-close index."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import IO

import msgspec
import zstandard

from ._closing import Closing
from ._errors import OutputExists, UsageError
from ._framing import (
    LENGTH_PREFIX,
    SIGNATURE_FRAME,
    BlobLocation,
    FileIndex,
    FrameLocation,
    index_frame,
)
from ._media import sniff_media_type
from ._redact import Redaction
from ._schema import Blob, Header, Note, Outcome, Record, Request
from ._version import __version__

__all__ = ["TraceWriter"]

# Defaults chosen so that a crash loses at most about half a second of records, while a busy
# recorder still writes frames large enough to compress well.
DEFAULT_FLUSH_RECORDS = 512
DEFAULT_FLUSH_INTERVAL = 0.5
DEFAULT_MAX_FRAME_BYTES = 8 << 20


class TraceWriter(Closing):
    """Write a trace or run file record by record.

    Thread-safe: a background thread flushes pending records every `flush_interval` seconds, so a
    quiet recorder still persists what it has. Use as a context manager, or call `close()`; a
    writer that is never closed leaves a file that reads back up to its last flush.

    :param path: the file to create.
    :param header: the first record. Its `metadata` may be amended later with `note()`.
    :param force: overwrite an existing file instead of refusing.
    :param fsync: fsync after every frame, for recordings that must survive a power cut.
    :param redaction: header redaction applied to every request and response before writing.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        header: Header,
        *,
        force: bool = False,
        flush_records: int = DEFAULT_FLUSH_RECORDS,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        fsync: bool = False,
        level: int = 3,
        redaction: Redaction | None = None,
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and not force:
            raise OutputExists(self.path)
        if self.path.is_dir():
            raise UsageError(f"{self.path} is a directory: give a file name for the output")
        if not header.tool_version or not header.created_ns:
            header = msgspec.structs.replace(
                header,
                tool_version=header.tool_version or __version__,
                created_ns=header.created_ns or time.time_ns(),
            )
        self._redaction = redaction if redaction is not None else Redaction()
        self._flush_records = max(1, flush_records)
        self._flush_interval = flush_interval
        self._max_frame_bytes = max_frame_bytes
        self._fsync = fsync
        self._compressor = zstandard.ZstdCompressor(
            level=level, write_checksum=True, write_content_size=True
        )
        self._encoder = msgspec.msgpack.Encoder()
        self._lock = threading.RLock()
        self._pending = bytearray()
        self._pending_records = 0
        self._pending_since = 0.0
        self._pending_blobs: list[tuple[str, int, int, str]] = []
        self._pending_digests: set[str] = set()
        self._index = FileIndex(metadata=dict(header.metadata))
        self._digest = hashlib.sha256()
        self._sorted = True
        self._last_offset = -(2**63)
        self._closed = False
        try:
            self._file: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise UsageError(f"cannot create {self.path}: {exc.strerror}") from exc
        self._offset = 0
        self._write_raw(SIGNATURE_FRAME)
        self._append(header)
        self._flush_locked()  # the header always stands alone, so a reader can open any prefix
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if flush_interval > 0:
            self._flusher = threading.Thread(
                target=self._flush_periodically,
                name=f"imgtrace-flush-{self.path.name}",
                daemon=True,
            )
            self._flusher.start()

    # -- public API -------------------------------------------------------------------------

    @property
    def index(self) -> FileIndex:
        """Counts so far (records, blobs, dedup); complete after `close()`."""
        return self._index

    def add_blob(self, data: bytes, media_type: str | None = None) -> str:
        """Store `data` once and return its sha256 hex digest (the reference records use)."""
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            self._check_open()
            if digest in self._index.blobs or digest in self._pending_digests:
                self._index.dedup_hits += 1
                self._index.dedup_bytes += len(data)
                return digest
            media = media_type or sniff_media_type(data)
            record = Blob(digest=digest, media_type=media, data=data)
            if len(data) + len(self._pending) > self._max_frame_bytes:
                self._flush_locked()
            position = len(self._pending)
            self._append(record)
            self._pending_blobs.append((digest, position, len(data), media))
            self._pending_digests.add(digest)
            self._index.blob_bytes += len(data)
            self._maybe_flush()
        return digest

    def has_blob(self, digest: str) -> bool:
        with self._lock:
            return digest in self._index.blobs or digest in self._pending_digests

    def write(self, record: Request | Outcome) -> None:
        """Append a request or outcome; any blob it refers to must have been added first."""
        with self._lock:
            self._check_open()
            if isinstance(record, Request):
                record = self._redaction.apply_to_request(record)
                self._digest.update(request_identity(record))
                self._index.requests += 1
                self._sorted = self._sorted and record.offset_ns >= self._last_offset
                self._last_offset = record.offset_ns
            elif isinstance(record, Outcome):
                record = self._redaction.apply_to_outcome(record)
                self._index.outcomes += 1
            self._append(record)
            self._maybe_flush()

    def note(self, **metadata: object) -> None:
        """Amend the file's metadata (e.g. counts known only at exit); applied in file order."""
        with self._lock:
            self._check_open()
            self._append(Note(created_ns=time.time_ns(), metadata=dict(metadata)))
            self._index.metadata.update(metadata)
            self._maybe_flush()

    def flush(self) -> None:
        """Write pending records as one frame now."""
        with self._lock:
            if not self._closed:
                self._flush_locked()

    def close(self) -> None:
        """Flush, write the index, and close. Safe to call twice."""
        if self._flusher is not None:
            self._stop.set()
            self._flusher.join()
        with self._lock:
            if self._closed:
                return
            try:
                self._flush_locked()
                self._index.trace_digest = self._digest.hexdigest()
                self._index.arrival_sorted = self._sorted
                self._write_raw(index_frame(self._index, self._offset))
                self._file.flush()
                if self._fsync:
                    os.fsync(self._file.fileno())
            finally:
                self._closed = True
                self._file.close()

    def abandon(self) -> None:
        """Close without the index, as a crash would leave the file (used by tests and tools)."""
        if self._flusher is not None:
            self._stop.set()
            self._flusher.join()
        with self._lock:
            self._closed = True
            self._file.close()

    # -- internals ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"trace writer for {self.path} is closed")

    def _append(self, record: Record) -> None:
        start = len(self._pending)
        self._pending.extend(b"\0\0\0\0")
        self._encoder.encode_into(record, self._pending, start + 4)
        LENGTH_PREFIX.pack_into(self._pending, start, len(self._pending) - start - 4)
        if self._pending_records == 0:
            self._pending_since = time.monotonic()
        self._pending_records += 1
        self._index.records += 1

    def _maybe_flush(self) -> None:
        if (
            self._pending_records >= self._flush_records
            or len(self._pending) >= self._max_frame_bytes
            or time.monotonic() - self._pending_since >= self._flush_interval
        ):
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._pending_records:
            return
        frame = self._compressor.compress(bytes(self._pending))
        frame_offset = self._offset
        self._write_raw(frame)
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())
        self._index.frames.append(FrameLocation(frame_offset, len(frame), self._pending_records))
        for digest, position, size, media in self._pending_blobs:
            self._index.blobs[digest] = BlobLocation(frame_offset, position, size, media)
        self._pending.clear()
        self._pending_blobs.clear()
        self._pending_digests.clear()
        self._pending_records = 0

    def _write_raw(self, data: bytes) -> None:
        self._file.write(data)
        self._offset += len(data)

    def _flush_periodically(self) -> None:
        while not self._stop.wait(self._flush_interval / 2):
            with self._lock:
                if self._closed:
                    return
                due = time.monotonic() - self._pending_since >= self._flush_interval
                if self._pending_records and due:
                    try:
                        self._flush_locked()
                    except OSError:
                        # A full disk must not kill the thread; the next write or close reports it.
                        pass


_identity_encoder = msgspec.msgpack.Encoder()


def request_identity(request: Request) -> bytes:
    """The bytes that identify a request for `trace_digest`: everything but its response."""
    return _identity_encoder.encode(
        (request.id, request.offset_ns, request.method, request.path, request.query, request.body)
    )
