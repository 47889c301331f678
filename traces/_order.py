"""Arrival order: the one place that puts a file's requests in the order they arrived.

A recorder writes each request when its exchange *finishes* (so a crash loses nothing older than
the last flush), and under concurrency a long request lands after shorter ones that arrived
later. Files are never rewritten to fix that. Readers that need arrival order (the replayer's
schedule, exports) ask `TraceReader.requests_by_arrival()`: one pass notes each request's
`offset_ns` and location, and the requests are then decoded in order from their frames (the
reader's frame cache keeps the few frames a local disorder spans). A file whose index says it
is in order (`FileIndex.arrival_sorted`) or that turns out to be in order just streams.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._schema import Request

if TYPE_CHECKING:
    from ._reader import TraceReader

__all__ = ["ArrivalOrder", "arrival_order"]


class ArrivalOrder:
    """Where each request is, in arrival order; `None` locations: the file is in order."""

    def __init__(self, frames: array[int] | None, positions: array[int] | None) -> None:
        self.frames = frames
        self.positions = positions

    @property
    def in_file_order(self) -> bool:
        return self.frames is None

    def requests(self, reader: TraceReader) -> Iterator[Request]:
        if self.frames is None or self.positions is None:
            yield from reader.requests()
            return
        for frame_offset, position in zip(self.frames, self.positions, strict=True):
            record = reader._record_at(frame_offset, position)
            assert isinstance(record, Request)
            yield record


def arrival_order(reader: TraceReader) -> ArrivalOrder:
    """Learn the arrival order of `reader`'s requests (one pass, unless the index knows)."""
    if reader.index is not None and reader.index.arrival_sorted:
        return ArrivalOrder(None, None)
    offsets: array[int] = array("q")
    frames: array[int] = array("q")
    positions: array[int] = array("q")
    in_order = True
    for frame_offset, position, record in reader._located(("request",)):
        assert isinstance(record, Request)
        if offsets and record.offset_ns < offsets[-1]:
            in_order = False
        offsets.append(record.offset_ns)
        frames.append(frame_offset)
        positions.append(position)
    if in_order:
        return ArrivalOrder(None, None)
    order = sorted(range(len(offsets)), key=offsets.__getitem__)  # stable: ties keep file order
    return ArrivalOrder(
        array("q", (frames[i] for i in order)), array("q", (positions[i] for i in order))
    )
