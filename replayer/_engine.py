"""The dispatcher: waits for each deadline and starts the sends; nothing else.

It consumes `Item`s from its feeds (built elsewhere: a thread of this process, or the
coordinator process through a pipe), a bounded number ahead, and hands every finished
exchange to its target's `deliver`. It neither builds bodies nor parses responses, so all its
event loop does is keep deadlines and move bytes through sockets.

A replay has one or more targets. Each item carries one body per target and the order drawn
for it; the dispatcher waits for the item's deadline once and starts its sends in that order.
Everything else is per target (`TargetRun`): a target whose cap is full queues its own sends
behind it, and a target that refuses connections records connect errors; neither holds the
others' sends back, and every send's lag is measured against the one intended time of its
slot.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._produce import Feed, Item
from ._schedule import Timing
from ._sender import Clock
from ._targetrun import TargetRun

__all__ = ["Engine"]

# Bodies prepared ahead of the dispatcher: enough to ride out a slow batch (a frame of blobs to
# decompress), and at most AHEAD_BYTES of them (20 512² uploads), which bounds their memory.
AHEAD = 64
AHEAD_BYTES = 16 << 20
# Longest the dispatcher waits for its first bodies before it says it is ready.
PRIME_TIMEOUT = 5.0


def _size(item: Item) -> int:
    return len(item[1][0].content)  # every target's body shares one content


class _Held:
    """Bytes of the bodies waiting in one feed's stream; the producer waits above the bound."""

    def __init__(self) -> None:
        self.bytes = 0
        self._freed: anyio.Event | None = None

    async def room(self) -> None:
        while self.bytes >= AHEAD_BYTES:
            self._freed = anyio.Event()
            await self._freed.wait()

    def taken(self, item: Item) -> None:
        self.bytes -= _size(item)
        if self._freed is not None:
            self._freed.set()


class Engine:
    """Dispatches the items of `feeds` to `runs` (one per target) on time.

    Open loop: one feed for every target. Closed loop: one feed per target, since each target's
    loop runs at its own server's pace and must not wait for the others' bodies.
    """

    def __init__(
        self, timing: Timing, runs: Sequence[TargetRun], feeds: Sequence[Feed], drain: float
    ) -> None:
        self.timing = timing
        self.runs = list(runs)
        self.feeds = list(feeds)
        self.drain = drain
        self.interrupted = False
        self.clock = Clock()
        self._receives: list[MemoryObjectReceiveStream[Item]] = []
        self._held: list[_Held] = []
        self._dispatch_scope = anyio.CancelScope()
        self._senders: TaskGroup | None = None

    async def prime(self, background: TaskGroup) -> None:
        """Start the feeds and wait (a little) until bodies are ready ahead of the first send."""
        primed = []
        for feed in self.feeds:
            send, receive = anyio.create_memory_object_stream[Item](AHEAD)
            event = anyio.Event()
            primed.append(event)
            held = _Held()
            self._held.append(held)
            background.start_soon(self._produce, feed, send, event, held)
            self._receives.append(receive)
        with anyio.move_on_after(PRIME_TIMEOUT):
            for event in primed:
                await event.wait()

    async def _produce(
        self,
        feed: Feed,
        send: MemoryObjectSendStream[Item],
        primed: anyio.Event,
        held: _Held,
    ) -> None:
        async with send:
            while True:
                items = await anyio.to_thread.run_sync(feed, abandon_on_cancel=True)
                if not items:
                    break
                for one in items:
                    full = held.bytes >= AHEAD_BYTES
                    if full or send.statistics().current_buffer_used >= AHEAD - 1:
                        primed.set()
                    await held.room()
                    held.bytes += _size(one)
                    try:
                        await send.send(one)
                    except anyio.BrokenResourceError:
                        return  # the dispatcher stopped (interrupted): nothing more is wanted
        primed.set()

    async def dispatch(self, clock: Clock) -> None:
        """Send everything, from `clock`'s t0 on, until the feeds end or `stop()`."""
        self.clock = clock
        for run in self.runs:
            run.clock = clock
        await clock.wait_until(0)
        try:
            async with anyio.create_task_group() as senders:
                self._senders = senders
                with self._dispatch_scope:
                    if self.timing.closed:
                        async with anyio.create_task_group() as loops:
                            for run, receive, held in zip(
                                self.runs, self._receives, self._held, strict=True
                            ):
                                loops.start_soon(self._closed_loop, run, receive, held, senders)
                    else:
                        await self._open_loop(self._receives[0], self._held[0], senders)
                if self.interrupted:
                    await self._drain(senders)
        finally:
            for run in self.runs:
                await run.lanes.aclose()  # shielded: runs even when cancelled

    async def _open_loop(
        self, receive: MemoryObjectReceiveStream[Item], held: _Held, senders: TaskGroup
    ) -> None:
        runs = self.runs
        with receive:
            async for item in receive:
                held.taken(item)
                ticket, bodies, order = item
                for run in runs:
                    await run.room()
                assert ticket.intended_ns is not None
                intended = ticket.intended_ns
                await self.clock.wait_until(intended)
                for index in order:
                    runs[index].submit(ticket, bodies[index], intended, senders)

    async def _closed_loop(
        self,
        run: TargetRun,
        receive: MemoryObjectReceiveStream[Item],
        held: _Held,
        senders: TaskGroup,
    ) -> None:
        with receive:
            while True:
                # Acquire first: in a closed loop a send is due the moment a slot frees, so a
                # late body from the producer shows up as lag.
                client = await run.lanes.acquire()
                intended = self.clock.now()
                try:
                    item = await receive.receive()
                except anyio.EndOfStream:
                    run.lanes.release(client)
                    break
                held.taken(item)
                ticket, bodies, _ = item
                run.start(client, ticket, bodies[0], intended, senders)

    async def _drain(self, senders: TaskGroup) -> None:
        with anyio.move_on_after(self.drain):
            for run in self.runs:
                await run.lanes.idle()
        # Whatever is still in flight is recorded as aborted by send_one.
        senders.cancel_scope.cancel()

    def stop(self) -> None:
        """Stop sending; requests in flight get the drain time to finish."""
        self.interrupted = True
        for run in self.runs:
            run.stopped = True
        self._dispatch_scope.cancel()

    def abort(self) -> None:
        """Stop at once: requests in flight are recorded as aborted."""
        self.stop()
        if self._senders is not None:
            self._senders.cancel_scope.cancel()

    def halt(self, abort: bool) -> None:
        """`stop()`, or with `abort` `abort()`."""
        if abort:
            self.abort()
        else:
            self.stop()

    def in_flight(self) -> int:
        return sum(run.lanes.in_flight for run in self.runs)
