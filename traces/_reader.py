"""Streaming trace reader: constant memory, blob lookup by digest, recovery before a torn tail."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

import msgspec
import zstandard

from ._closing import Closing
from ._errors import (
    MissingBlobError,
    TraceFormatError,
    TraceRecoveryWarning,
    UnsupportedTraceVersion,
)
from ._foreign import SNIFF_BYTES, foreign_file_hint
from ._framing import (
    INDEX_MAGIC,
    INDEX_MARKER,
    INDEX_TRAILER,
    LENGTH_PREFIX,
    SIGNATURE_FRAME,
    SKIPPABLE_HEADER,
    ZSTD_MAGIC,
    BlobLocation,
    FileIndex,
    is_skippable,
)
from ._order import ArrivalOrder, arrival_order
from ._schema import READABLE_VERSIONS, Blob, Header, Note, Outcome, Record, Request
from ._writer import request_identity

__all__ = ["Damage", "RecordKind", "TraceReader"]

RecordKind = Literal["header", "blob", "request", "outcome", "note"]
"""The `type` tag of a record; `TraceReader.records(kinds=...)` filters on it."""

_CHUNK = 1 << 20
_FRAME_CACHE_BYTES = 64 << 20
_FRAME_HEADER_MAX = 18  # the longest zstd frame header, with its content size
_record_decoder = msgspec.msgpack.Decoder(Record)
_any_decoder = msgspec.msgpack.Decoder()
_index_decoder = msgspec.msgpack.Decoder(FileIndex)
_KNOWN_TAGS = frozenset({"header", "blob", "request", "outcome", "note"})
# msgspec writes a tagged Struct as a map whose first key is "type": the tag can be read from
# the first bytes of a record without decoding it (and without copying a blob's bytes).
_TAG_KEY = b"\xa4type"
_TAGS_BY_BYTES = {tag.encode(): tag for tag in _KNOWN_TAGS}


class Damage(msgspec.Struct, frozen=True):
    """Where reading stopped early and what was kept."""

    offset: int
    reason: str
    records_kept: int
    bytes_dropped: int

    def describe(self, path: str) -> str:
        return (
            f"{path}: stopped at byte {self.offset} ({self.reason}); kept the "
            f"{self.records_kept} records before it, dropped {self.bytes_dropped} bytes"
        )


class _FrameProblem(Exception):
    def __init__(self, offset: int, reason: str, torn: bool) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason
        self.torn = torn


class TraceReader(Closing):
    """Read a trace or run file.

    Opening checks the signature, the header and the format version, so a bad file fails before
    any work starts. `records()` streams; `blob()` finds bytes by digest without reading the whole
    file (through the index a clean close writes, else by scanning once).

    A file whose writer died (no index) is read up to its last complete frame, with a
    `TraceRecoveryWarning`. Damage inside a cleanly closed file is a `TraceFormatError`, unless
    `salvage=True`, which keeps what comes before it, with the same warning.
    """

    def __init__(self, path: str | os.PathLike[str], *, salvage: bool = False) -> None:
        self.path = Path(path)
        self.salvage = salvage
        self.damage: Damage | None = None
        try:
            self._file: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except FileNotFoundError:
            raise TraceFormatError(self.path, None, "no such file") from None
        except IsADirectoryError:
            raise TraceFormatError(self.path, None, "is a directory, not a trace file") from None
        except OSError as exc:
            raise TraceFormatError(self.path, None, f"cannot open: {exc.strerror}") from None
        try:
            self._size = os.fstat(self._file.fileno()).st_size
            self._decompressor = zstandard.ZstdDecompressor()
            self._frame_cache: OrderedDict[int, bytes] = OrderedDict()
            self._frame_cache_bytes = 0
            self._blobs: dict[str, BlobLocation] = {}
            self._scanned = False
            self._yielded = 0
            self._seen = 0
            self._check_signature()
            self.index: FileIndex | None = self._read_index()
            self._data_end = self._index_offset if self.index is not None else self._size
            self._trace_digest: str | None = None
            self._arrival: ArrivalOrder | None = None
            self._frame_lengths: dict[int, int] = {}
            if self.index is not None:
                self._frame_lengths = {frame.offset: frame.length for frame in self.index.frames}
                self._blobs = dict(self.index.blobs)
                self._scanned = True
                self._trace_digest = self.index.trace_digest or None
            self.header = self._read_header()
        except BaseException:
            self._file.close()
            raise

    # -- public API -------------------------------------------------------------------------

    @property
    def closed_cleanly(self) -> bool:
        """True when the writer closed the file (its index is present)."""
        return self.index is not None

    @property
    def kind(self) -> str:
        return self.header.kind

    @property
    def size(self) -> int:
        return self._size

    def records(self, kinds: Iterable[RecordKind] | None = None) -> Iterator[Record]:
        """Every record in file order, the header first; only those of `kinds` when given.

        Records of other kinds are skipped undecoded, so `kinds={"request"}` never copies an
        image blob's bytes.
        """
        for _, _, record in self._located(kinds):
            yield record

    def _located(self, kinds: Iterable[RecordKind] | None) -> Iterator[tuple[int, int, Record]]:
        """`records()` with where each record is: (frame offset, position in the frame, record)."""
        wanted = None if kinds is None else frozenset(kinds)
        self._yielded = self._seen = 0
        # A file without index learns its trace digest from any full pass over its requests.
        digest = hashlib.sha256() if self._trace_digest is None else None
        if wanted is not None and "request" not in wanted:
            digest = None
        for frame_offset, content in self._frames():
            for position, record in self._decode_frame(frame_offset, content, wanted):
                if digest is not None and isinstance(record, Request):
                    digest.update(request_identity(record))
                if isinstance(record, Blob):
                    if record.digest not in self._blobs:
                        self._blobs[record.digest] = BlobLocation(
                            frame_offset, position, len(record.data), record.media_type
                        )
                    if wanted is not None and "blob" not in wanted:
                        continue  # decoded only to learn where it is
                self._yielded += 1
                yield frame_offset, position, record
        if digest is not None:
            self._trace_digest = digest.hexdigest()
        if self.damage is None:
            self._scanned = True

    def requests(self) -> Iterator[Request]:
        """The requests in file order (a recording writes them as they finish)."""
        for record in self.records(kinds=("request",)):
            assert isinstance(record, Request)
            yield record

    def requests_by_arrival(self) -> Iterator[Request]:
        """The requests in arrival order: by `offset_ns`, ties in file order.

        A file already in that order streams; any other holds one small entry per request,
        never the records (see `traces._order`).
        """
        if self._arrival is None:
            self._arrival = arrival_order(self)
        return self._arrival.requests(self)

    def outcomes(self) -> Iterator[Outcome]:
        for record in self.records(kinds=("outcome",)):
            assert isinstance(record, Outcome)
            yield record

    def metadata(self) -> dict[str, Any]:
        """The header's metadata with every later note applied (scans a file without index)."""
        if self.index is not None:
            return dict(self.index.metadata)
        merged = dict(self.header.metadata)
        for record in self.records(kinds=("note",)):
            if isinstance(record, Note):
                merged.update(record.metadata)
        return merged

    def has_blob(self, digest: str) -> bool:
        return self._locate(digest) is not None

    def blob_media_type(self, digest: str) -> str:
        location = self._locate(digest)
        if location is None:
            raise self._missing(digest)
        return location.media_type

    def blob(self, digest: str) -> bytes:
        """The bytes stored under `digest`; `MissingBlobError` if the file does not hold them."""
        location = self._locate(digest)
        if location is None:
            raise self._missing(digest)
        record = self._record_at(location.frame_offset, location.position)
        if not isinstance(record, Blob) or record.digest != digest:
            raise TraceFormatError(
                self.path, location.frame_offset, f"index points to the wrong record for {digest}"
            )
        return record.data

    def trace_digest(self) -> str:
        """Digest of the requests (ids, timing, bodies), which names this trace in run headers."""
        if self._trace_digest is None:
            for _ in self.requests():
                pass
        assert self._trace_digest is not None
        return self._trace_digest

    def close(self) -> None:
        self._file.close()
        self._frame_cache.clear()

    # -- opening ------------------------------------------------------------------------------

    def _check_signature(self) -> None:
        if self._size == 0:
            raise TraceFormatError(self.path, 0, "empty file, not an imgtrace trace")
        head = self._read_at(0, len(SIGNATURE_FRAME))
        if head != SIGNATURE_FRAME:
            if SIGNATURE_FRAME.startswith(head):
                raise TraceFormatError(self.path, len(head), "file ends inside its signature")
            problem = "not an imgtrace trace (no IMGTRACE signature at the start)"
            hint = foreign_file_hint(self._read_at(0, min(self._size, SNIFF_BYTES)))
            raise TraceFormatError(self.path, 0, f"{problem}: {hint}" if hint else problem)

    def _read_index(self) -> FileIndex | None:
        self._index_offset = self._size
        if self._size < len(SIGNATURE_FRAME) + SKIPPABLE_HEADER.size + INDEX_TRAILER.size:
            return None
        offset, marker = INDEX_TRAILER.unpack(self._read_at(self._size - INDEX_TRAILER.size, 16))
        if marker != INDEX_MARKER or not len(SIGNATURE_FRAME) <= offset < self._size:
            return None
        magic, length = SKIPPABLE_HEADER.unpack(self._read_at(offset, SKIPPABLE_HEADER.size))
        if magic != INDEX_MAGIC or offset + SKIPPABLE_HEADER.size + length != self._size:
            return None
        payload = self._read_at(offset + SKIPPABLE_HEADER.size, length - INDEX_TRAILER.size)
        try:
            index = _index_decoder.decode(payload)
        except msgspec.DecodeError:
            return None
        self._index_offset = offset
        return index

    def _read_header(self) -> Header:
        offset = len(SIGNATURE_FRAME)
        try:
            content, _ = self._read_frame(offset)
        except _FrameProblem as problem:
            raise TraceFormatError(
                self.path, problem.offset, f"cannot read the header: {problem.reason}"
            ) from None
        records = self._decode_frame(offset, content, None)
        first = next(records, None)
        if first is None:
            raise TraceFormatError(self.path, offset, "the first frame holds no records")
        record = first[1]
        if not isinstance(record, Header):
            raise TraceFormatError(self.path, offset, "the first record is not a header")
        if record.format_version not in READABLE_VERSIONS:
            raise UnsupportedTraceVersion(
                f"{self.path} uses trace format version {record.format_version}; this imgtrace "
                f"reads version {max(READABLE_VERSIONS)}: upgrade imgtrace to read it"
            )
        return record

    # -- frames -------------------------------------------------------------------------------

    def _frames(self) -> Iterator[tuple[int, bytes]]:
        offset = len(SIGNATURE_FRAME)
        while offset < self._data_end:
            try:
                content, length = self._read_frame(offset)
            except _FrameProblem as problem:
                self._stop_at(problem, self._seen)
                return
            if content:
                self._remember_frame(offset, content)
                yield offset, content
            offset += length

    def _stop_at(self, problem: _FrameProblem, records_kept: int) -> None:
        if self.index is not None and not self.salvage:
            raise TraceFormatError(
                self.path,
                problem.offset,
                f"{problem.reason}; the file is damaged (pass --salvage to keep the "
                f"{records_kept} records before it)",
            )
        damage = Damage(problem.offset, problem.reason, records_kept, self._size - problem.offset)
        if self.damage is None:
            self.damage = damage
            warnings.warn(damage.describe(str(self.path)), TraceRecoveryWarning, stacklevel=4)

    def _read_frame(self, offset: int) -> tuple[bytes, int]:
        """Decompressed content and on-disk length of the frame at `offset` (b"" if skippable)."""
        magic_bytes = self._read_at(offset, _FRAME_HEADER_MAX)
        if len(magic_bytes) < 4:
            raise _FrameProblem(offset, "file ends inside a frame header", torn=True)
        if magic_bytes[:4] != ZSTD_MAGIC:
            magic = int.from_bytes(magic_bytes[:4], "little")
            if not is_skippable(magic):
                raise _FrameProblem(offset, "no frame starts here", torn=False)
            if len(magic_bytes) < 8:
                raise _FrameProblem(offset, "file ends inside a frame header", torn=True)
            _, length = SKIPPABLE_HEADER.unpack(magic_bytes[:8])
            if offset + 8 + length > self._size:
                raise _FrameProblem(offset, "file ends inside a skippable frame", torn=True)
            return b"", 8 + length
        known_length = self._frame_lengths.get(offset)
        if known_length is not None and _states_content_size(magic_bytes):
            return self._read_known_frame(offset, known_length), known_length
        self._file.seek(offset)
        stream = self._decompressor.decompressobj()
        parts: list[bytes] = []
        consumed = 0
        while not stream.eof:
            chunk = self._file.read(min(_CHUNK, self._data_end - offset - consumed))
            if not chunk:
                raise _FrameProblem(offset, "file ends inside a frame", torn=True)
            try:
                parts.append(stream.decompress(chunk))
            except zstandard.ZstdError as exc:
                raise _FrameProblem(offset, f"damaged frame ({exc})", torn=False) from None
            consumed += len(chunk)
        return b"".join(parts), consumed - len(stream.unused_data)

    def _read_known_frame(self, offset: int, length: int) -> bytes:
        """The content of a frame the index locates: one read, one decompression to its size."""
        self._file.seek(offset)
        compressed = self._file.read(length)
        if len(compressed) < length:
            raise _FrameProblem(offset, "file ends inside a frame", torn=True)
        try:
            return self._decompressor.decompress(compressed)
        except zstandard.ZstdError as exc:
            raise _FrameProblem(offset, f"damaged frame ({exc})", torn=False) from None

    def _decode_frame(
        self, frame_offset: int, content: bytes, wanted: frozenset[str] | None
    ) -> Iterator[tuple[int, Record]]:
        """(position, record) of each record of the frame that is `wanted` (all when None).

        Every record counts toward `Damage.records_kept`, skipped or not. A blob that is not
        wanted is still decoded while the file's blobs are not all located (no index).
        """
        view = memoryview(content)
        position = 0
        while position < len(content):
            if position + 4 > len(content):
                raise TraceFormatError(self.path, frame_offset, "a record length is cut off")
            (length,) = LENGTH_PREFIX.unpack_from(content, position)
            start = position + 4
            if start + length > len(content):
                raise TraceFormatError(self.path, frame_offset, "a record runs past its frame")
            payload = view[start : start + length]
            self._seen += 1
            if wanted is None or self._wanted(payload, wanted):
                record = self._decode_record(frame_offset, payload)
                if record is not None:
                    yield position, record
            position = start + length

    def _wanted(self, payload: memoryview, wanted: frozenset[str]) -> bool:
        tag = _peek_tag(payload)
        if tag is None or tag in wanted:
            return True  # unknown or unreadable tags are left to the decoder to judge
        return tag == "blob" and not self._scanned

    def _decode_record(self, frame_offset: int, payload: memoryview) -> Record | None:
        try:
            record: Record = _record_decoder.decode(payload)
            return record
        except msgspec.ValidationError as exc:
            # A newer writer may add record types; skip those, refuse broken known ones.
            try:
                raw = _any_decoder.decode(payload)
            except msgspec.DecodeError:
                raw = None
            if isinstance(raw, dict) and raw.get("type") not in _KNOWN_TAGS:
                return None
            raise TraceFormatError(self.path, frame_offset, f"invalid record: {exc}") from None
        except msgspec.DecodeError as exc:
            raise TraceFormatError(self.path, frame_offset, f"undecodable record: {exc}") from None

    def _remember_frame(self, offset: int, content: bytes) -> None:
        if offset in self._frame_cache:
            self._frame_cache.move_to_end(offset)
            return
        self._frame_cache[offset] = content
        self._frame_cache_bytes += len(content)
        while self._frame_cache_bytes > _FRAME_CACHE_BYTES and len(self._frame_cache) > 1:
            _, dropped = self._frame_cache.popitem(last=False)
            self._frame_cache_bytes -= len(dropped)

    def _cached_frame(self, offset: int) -> bytes:
        cached = self._frame_cache.get(offset)
        if cached is not None:
            self._frame_cache.move_to_end(offset)
            return cached
        try:
            content, _ = self._read_frame(offset)
        except _FrameProblem as problem:
            raise TraceFormatError(self.path, problem.offset, problem.reason) from None
        self._remember_frame(offset, content)
        return content

    def _locate(self, digest: str) -> BlobLocation | None:
        location = self._blobs.get(digest)
        if location is None and not self._scanned:
            for _ in self.records(kinds=("blob",)):
                pass
            self._scanned = True
            location = self._blobs.get(digest)
        return location

    def _record_at(self, frame_offset: int, position: int) -> Record:
        """The record whose length prefix starts at `position` in the frame at `frame_offset`."""
        content = self._cached_frame(frame_offset)
        (length,) = LENGTH_PREFIX.unpack_from(content, position)
        start = position + 4
        record: Record = _record_decoder.decode(content[start : start + length])
        return record

    def _missing(self, digest: str) -> MissingBlobError:
        return MissingBlobError(
            self.path, None, f"blob {digest[:16]}… is referenced but not stored in the file"
        )

    def _read_at(self, offset: int, length: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(length)


def _states_content_size(frame_start: bytes) -> bool:
    """Whether a zstd frame's header states its content size (one-shot decompression needs it)."""
    try:
        return bool(zstandard.frame_content_size(frame_start) >= 0)
    except zstandard.ZstdError:
        return False


def _peek_tag(payload: memoryview) -> str | None:
    """The `type` tag at the start of an encoded record, or None if it is not there."""
    if not payload:
        return None
    first = payload[0]
    if 0x80 <= first <= 0x8F:
        start = 1  # fixmap
    elif first == 0xDE:
        start = 3  # map 16
    elif first == 0xDF:
        start = 5  # map 32
    else:
        return None
    if payload[start : start + 5] != _TAG_KEY or len(payload) <= start + 5:
        return None
    size = payload[start + 5] - 0xA0
    if not 0 <= size <= 31:
        return None
    return _TAGS_BY_BYTES.get(bytes(payload[start + 6 : start + 6 + size]))
