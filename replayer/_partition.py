"""The partition of a schedule into N parts: shards on several machines, workers on one.

Send k of the unsharded schedule (its `seq`) belongs to part `k mod N`. Each part therefore
sees the original arrival process thinned evenly, keeps the unsharded intended offsets (never
re-based), and the parts of one schedule are disjoint and complete by construction: a shard is
a pure function of the trace, its index and the count, with no coordinator.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from traces import TraceReader, UsageError

from ._schedule import Plan, Selection, Slot, Timing
from ._shaping import Shaper

__all__ = ["Partition", "PartPlan", "parse_shard", "part_of"]

_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def part_of(seq: int, count: int) -> int:
    """The part that send `seq` (its place in the unsharded schedule) belongs to."""
    return seq % count


@dataclass(frozen=True)
class Partition:
    """Part `index` of `count` (0-based), as `--shard I/N` or a worker's share."""

    index: int
    count: int
    flag: str = "--shard"

    def __post_init__(self) -> None:
        if self.count < 1:
            raise UsageError(f"{self.flag} {self.label}: N must be at least 1")
        if not 0 <= self.index < self.count:
            raise UsageError(
                f"{self.flag} {self.label}: I must be from 0 to {self.count - 1} (I is 0-based)"
            )

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def keeps(self, seq: int) -> bool:
        return part_of(seq, self.count) == self.index

    def size(self, total: int) -> int:
        """How many of `total` sends fall in this part."""
        return len(range(self.index, total, self.count))

    def take(self, slots: Iterable[Slot]) -> Iterator[Slot]:
        """This part's slots, unchanged (seq and intended offset as in the whole schedule)."""
        return (slot for slot in slots if self.keeps(slot.seq))


def parse_shard(text: str, flag: str = "--shard") -> Partition:
    """`I/N` → `Partition(I, N)`; I counts from 0 (Kubernetes' JOB_COMPLETION_INDEX)."""
    match = _SHARD_RE.match(text)
    if match is None:
        raise UsageError(
            f"{flag} {text!r}: expected I/N with 0 <= I < N, e.g. 0/4 "
            "(I is the 0-based index, N the number of shards)"
        )
    return Partition(int(match.group(1)), int(match.group(2)), flag)


class PartPlan(Plan):
    """A plan that yields only one part of the schedule; the survey is of the whole trace."""

    def __init__(
        self,
        reader: TraceReader,
        selection: Selection,
        timing: Timing,
        shaper: Shaper,
        part: Partition,
    ) -> None:
        super().__init__(reader, selection, timing, shaper)
        self.part = part

    @property
    def total(self) -> int:
        return self.part.size(super().total)

    def slots(self) -> Iterator[Slot]:
        return self.part.take(super().slots())
