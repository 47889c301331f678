"""Building the sends of a plan: each slot's body once, retargeted, with its target order.

This is the CPU-heavy half of producing (blobs read and decompressed, multipart bodies
encoded); it runs in a thread of the process that owns the trace, never on a dispatcher's
event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice

from traces import TraceReader

from ._schedule import Plan, Slot
from ._shaping import Prepared, Shaper
from ._targets import send_order
from ._wire import Ticket

__all__ = ["BATCH", "Feed", "Item", "plan_feed", "ticket"]

BATCH = 16

# One send of the plan: its ticket, its body for each target, the order the targets are sent in.
Item = tuple[Ticket, tuple[Prepared, ...], tuple[int, ...]]
Feed = Callable[[], list[Item]]
"""The next few items (blocking; run in a thread); an empty list once the plan is done."""


def ticket(slot: Slot) -> Ticket:
    return Ticket(slot.seq, slot.request.id, slot.loop, slot.warmup, slot.intended_ns)


def plan_feed(plan: Plan, reader: TraceReader, shapers: Sequence[Shaper], order_seed: int) -> Feed:
    """The plan's items, BATCH at a time, each body built once for every target."""
    slots = plan.slots()
    first, others = shapers[0], list(shapers[1:])
    count = len(shapers)

    def item(slot: Slot) -> Item:
        prepared = first.prepare(slot.request, slot.loop, reader.blob)
        bodies = (prepared, *(shaper.retarget(prepared, slot.request) for shaper in others))
        order = send_order(order_seed, slot.seq, count) if count > 1 else (0,)
        return ticket(slot), bodies, order

    def batch() -> list[Item]:
        return [item(slot) for slot in islice(slots, BATCH)]

    return batch
