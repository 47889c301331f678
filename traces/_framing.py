"""Byte-level layout of a trace file: signature, zstd frames of length-prefixed records, index.

    file    := signature frame* [index]
    signature := zstd skippable frame (magic 0x184D2A5E) holding b"IMGTRACE"
    frame   := zstd frame (content size + xxhash checksum) holding record*
    record  := u32 little-endian length, msgpack bytes of one `Record`
    index   := zstd skippable frame (magic 0x184D2A5F) holding msgpack(`FileIndex`),
               u64 little-endian offset of this frame, b"ITRCIDX1"

Frames are independent, so a reader keeps every frame before a torn tail. The index is written
only by a clean close; a reader of a file without one rebuilds it by scanning. Skippable frames
are ignored by the `zstd` command line tool, so `zstd -dc FILE` prints the raw record stream.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec

__all__ = [
    "INDEX_MAGIC",
    "INDEX_MARKER",
    "SIGNATURE",
    "SIGNATURE_FRAME",
    "ZSTD_MAGIC",
    "BlobLocation",
    "FileIndex",
    "FrameLocation",
    "index_frame",
    "is_skippable",
]

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
SIGNATURE = b"IMGTRACE"
_SKIPPABLE_SIGNATURE = 0x184D2A5E
INDEX_MAGIC = 0x184D2A5F
INDEX_MARKER = b"ITRCIDX1"
SIGNATURE_FRAME = struct.pack("<II", _SKIPPABLE_SIGNATURE, len(SIGNATURE)) + SIGNATURE
LENGTH_PREFIX = struct.Struct("<I")
SKIPPABLE_HEADER = struct.Struct("<II")
INDEX_TRAILER = struct.Struct("<Q8s")


class FrameLocation(msgspec.Struct, array_like=True, frozen=True):
    offset: int
    length: int
    records: int


class BlobLocation(msgspec.Struct, array_like=True, frozen=True):
    frame_offset: int
    position: int
    """Start of the record's length prefix inside the decompressed frame."""
    size: int
    media_type: str


class FileIndex(msgspec.Struct, kw_only=True):
    """What a clean close knows about the whole file, so readers need not scan it."""

    frames: list[FrameLocation] = []
    blobs: dict[str, BlobLocation] = {}
    records: int = 0
    requests: int = 0
    outcomes: int = 0
    blob_bytes: int = 0
    dedup_hits: int = 0
    dedup_bytes: int = 0
    """Bytes of blobs that were offered again and not stored twice."""
    trace_digest: str = ""
    metadata: dict[str, Any] = {}
    """The header's metadata with every later `Note` applied."""
    arrival_sorted: bool = False
    """True when every request's `offset_ns` is at or after the one before it in the file."""


_index_encoder = msgspec.msgpack.Encoder()


def is_skippable(magic: int) -> bool:
    return 0x184D2A50 <= magic <= 0x184D2A5F


def index_frame(index: FileIndex, offset: int) -> bytes:
    payload = _index_encoder.encode(index) + INDEX_TRAILER.pack(offset, INDEX_MARKER)
    return SKIPPABLE_HEADER.pack(INDEX_MAGIC, len(payload)) + payload
