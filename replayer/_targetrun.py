"""One target's side of a replay: its lanes, counts, queued sends and run file.

In an open loop the dispatcher hands each send to its target with `submit` at the slot's
deadline: it starts at once on a free lane, or waits in the target's own queue behind its
--max-inflight cap, in order, without holding back the sends to other targets.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import anyio
import httpx
from anyio.abc import TaskGroup

from traces import TraceWriter

from ._outcomes import OutcomeSink
from ._progress import Stats
from ._schedule import Slot
from ._sender import Clock, Exchange, LanePool, send_one
from ._shaping import Prepared, Shaper

__all__ = ["BACKLOG", "TargetRun"]

# Sends one target may queue behind its --max-inflight cap before the dispatcher waits for it
# (which then delays every target, visibly, as lag): bounds the bodies held in memory.
BACKLOG = 16


class TargetRun:
    """One target's side of a replay: its lanes, counts, queued sends and run file."""

    def __init__(
        self, name: str | None, shaper: Shaper, output: Path, limit: int | None, planned: int
    ) -> None:
        self.name = name
        self.shaper = shaper
        self.output = output
        self.lanes = LanePool(limit)
        self.stats = Stats(planned=planned)
        self.waited = 0
        self.writer: TraceWriter | None = None
        self.sink: OutcomeSink | None = None
        self.clock = Clock()
        self.timeout = 300.0
        self.stopped = False
        self._backlog: deque[tuple[Slot, Prepared, int]] = deque()
        self._working = False
        self._room: anyio.Event | None = None

    # -- open loop: send now, or queue behind the cap -------------------------------------------

    def submit(self, slot: Slot, prepared: Prepared, intended: int, senders: TaskGroup) -> None:
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
        client: httpx.AsyncClient,
        slot: Slot,
        prepared: Prepared,
        intended: int,
        senders: TaskGroup,
    ) -> None:
        exchange = Exchange(
            seq=slot.seq,
            request_id=slot.request.id,
            loop=slot.loop,
            warmup=slot.warmup,
            intended_ns=intended,
            attempt_ns=self.clock.now(),
        )
        self.stats.on_dispatch()
        senders.start_soon(self._send, client, prepared, exchange)

    async def _send(
        self, client: httpx.AsyncClient, prepared: Prepared, exchange: Exchange
    ) -> None:
        try:
            await send_one(client, prepared, exchange, self.clock, self.timeout)
        finally:
            self.lanes.release(client)
            self.stats.on_done(exchange)
            assert self.sink is not None
            self.sink.put(exchange)
