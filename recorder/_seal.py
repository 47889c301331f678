"""Closing a part file whose writer died: what it holds, made a cleanly closed trace again.

A recording process that is killed leaves its current file without the closing index (it reads
back up to its last flush). The proxy then copies the readable records into a new file with
the same header, adds a note that says what happened, and puts it in the old one's place, so the
recording ends as a valid, closed trace with everything that reached the disk.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from traces import (
    Blob,
    Note,
    Outcome,
    Redaction,
    Request,
    TraceError,
    TraceReader,
    TraceRecoveryWarning,
    TraceWriter,
)

__all__ = ["count_requests", "seal"]

NoteFor = Callable[[int, str], Mapping[str, Any]]


def count_requests(path: Path) -> int:
    """The requests in a cleanly closed file (from its index), 0 when it cannot be read."""
    try:
        with TraceReader(path) as reader:
            if reader.index is not None:
                return reader.index.requests
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TraceRecoveryWarning)
                return sum(1 for _ in reader.requests())
    except TraceError:
        return 0


def seal(path: Path, redaction: Redaction, note_for: NoteFor) -> int:
    """Make `path` a closed trace with the records it holds; returns how many requests.

    `note_for(requests, what)` gives the metadata of the closing note (`what` says what was
    kept and dropped). A file that is already closed is left as it is.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TraceRecoveryWarning)
        try:
            reader = TraceReader(path)
        except TraceError:
            return 0  # not even a header on disk: nothing was recorded in it
        with reader:
            if reader.closed_cleanly:
                return reader.index.requests if reader.index is not None else 0
            draft = path.with_name(path.name + ".sealing")
            with TraceWriter(
                draft, reader.header, force=True, redaction=redaction, flush_interval=0
            ) as writer:
                requests = _copy(reader, writer)
                damage = reader.damage
                what = (
                    f"kept {requests} requests; {damage.bytes_dropped} bytes of an unfinished "
                    "frame dropped"
                    if damage is not None
                    else f"kept {requests} requests"
                )
                writer.note(**note_for(requests, what))
    os.replace(draft, path)
    return requests


def _copy(reader: TraceReader, writer: TraceWriter) -> int:
    requests = 0
    try:
        for record in reader.records():
            if isinstance(record, Blob):
                writer.add_blob(record.data, record.media_type)
            elif isinstance(record, Request | Outcome):
                writer.write(record)
                requests += isinstance(record, Request)
            elif isinstance(record, Note):
                writer.note(**record.metadata)
    except TraceError:
        pass  # damage inside the file: keep what came before it
    return requests
