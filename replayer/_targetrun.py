"""One target's dispatch side: its lanes, counts and queued sends (sockets, deadlines).

Each finished exchange goes to `deliver` at once (to the storing side, in this process or in
the coordinator's). In an open loop the dispatcher hands each send to its target with `submit`
at the slot's deadline: it starts at once on a free lane, or waits in the target's own queue
behind its --max-inflight cap, in order, without holding back the sends to other targets.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup

from traces import Http1Pool

from ._sender import Clock, Exchange, LanePool, send_one
from ._shaping import Prepared
from ._wire import Counts, Ticket

__all__ = ["BACKLOG", "TargetRun"]

# Sends one target may queue behind its --max-inflight cap before the dispatcher waits for it
# (which then delays every target, visibly, as lag): bounds the bodies held in memory.
BACKLOG = 16


class TargetRun:
    """One target's dispatch side: its lanes, counts and queued sends."""

    def __init__(
        self, limit: int | None, timeout: float, deliver: Callable[[Exchange], None], url: str
    ) -> None:
        self.lanes = LanePool(limit, url, timeout)
        self.timeout = timeout
        self.deliver = deliver
        self.sent = 0
        self.waited = 0
        self.clock = Clock()
        self.stopped = False
        self._backlog: deque[tuple[Ticket, Prepared, int]] = deque()
        self._working = False
        self._room: anyio.Event | None = None

    # -- open loop: send now, or queue behind the cap -------------------------------------------

    def submit(self, slot: Ticket, prepared: Prepared, intended: int, senders: TaskGroup) -> None:
        """Start the send now if a lane is free and none of this target's sends waits before it."""
        if not self._backlog:
            client = self.lanes.try_acquire()
            if client is not None:
                self.start(client, slot, prepared, intended, senders)
                return
        # The wait for a lane is lag: the intended time stays the slot's.
        self._backlog.append((slot, prepared, intended))
        self.waited += 1
        if not self._working:
            self._working = True
            senders.start_soon(self._work_backlog, senders)

    async def room(self) -> None:
        """Return once this target's queue behind its cap is below BACKLOG."""
        while len(self._backlog) >= BACKLOG:
            self._room = anyio.Event()
            await self._room.wait()

    async def _work_backlog(self, senders: TaskGroup) -> None:
        try:
            while self._backlog and not self.stopped:
                client = await self.lanes.acquire()
                if self.stopped:
                    self.lanes.release(client)
                    break
                slot, prepared, intended = self._backlog.popleft()
                if self._room is not None:
                    self._room.set()
                self.start(client, slot, prepared, intended, senders)
        finally:
            self._working = False

    # -- sending --------------------------------------------------------------------------------

    def start(
        self,
        client: Http1Pool,
        slot: Ticket,
        prepared: Prepared,
        intended: int,
        senders: TaskGroup,
    ) -> None:
        exchange = Exchange(
            seq=slot.seq,
            request_id=slot.request_id,
            loop=slot.loop,
            warmup=slot.warmup,
            intended_ns=intended,
            attempt_ns=self.clock.now(),
        )
        self.sent += 1
        senders.start_soon(self._send, client, prepared, exchange)

    async def _send(self, client: Http1Pool, prepared: Prepared, exchange: Exchange) -> None:
        try:
            await send_one(client, prepared, exchange, self.clock, self.timeout)
        finally:
            self.lanes.release(client)
            self.deliver(exchange)

    def counts(self) -> Counts:
        lanes = self.lanes
        return Counts(self.sent, lanes.in_flight, lanes.peak, lanes.lanes, self.waited)
