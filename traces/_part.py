"""A part of a file: the requests and outcomes a caller keeps, with the blobs they refer to.

Used to spread work that is per request (e.g. comparing output images) over several machines:
each works on the part of the files that falls to it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from ._inputs import body_blobs
from ._reader import TraceReader
from ._schema import Outcome, Request
from ._writer import TraceWriter

__all__ = ["copy_part"]

Keep = Callable[[str, int], bool]
"""keep(request id, loop) → whether the record belongs to the part."""


def copy_part(source: str | os.PathLike[str], target: str | os.PathLike[str], keep: Keep) -> int:
    """Write to `target` the header of `source` and its records that `keep`; returns how many.

    A run's `trace_path` is made absolute when the trace lies beside the run, so the part still
    finds the trace it replayed wherever it is written.
    """
    source = Path(source)
    with TraceReader(source) as reader:
        kept: list[Request | Outcome] = []
        for record in reader.records():
            if isinstance(record, Outcome):
                key = (record.request_id, record.loop)
            elif isinstance(record, Request):
                key = (record.id, 0)
            else:
                continue
            if keep(*key):
                kept.append(record)
        header = reader.header
        if header.trace_path and not Path(header.trace_path).is_file():
            beside = source.parent / header.trace_path
            if beside.is_file():
                header = msgspec.structs.replace(header, trace_path=str(beside.resolve()))
        with TraceWriter(target, header, force=True) as writer:
            for record in kept:
                for digest in _blobs_of(record):
                    if not writer.has_blob(digest) and reader.has_blob(digest):
                        writer.add_blob(reader.blob(digest), reader.blob_media_type(digest))
                writer.write(record)
    return len(kept)


def _blobs_of(record: Request | Outcome) -> Iterator[str]:
    if isinstance(record, Outcome):
        yield from record.images
        if record.body_blob:
            yield record.body_blob
        return
    yield from body_blobs(record.body)
    if record.response is not None:
        yield from record.response.images
        if record.response.body_blob:
            yield record.response.body_blob
