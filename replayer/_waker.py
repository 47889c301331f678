"""Waking the event loop at a deadline to within about 0.1 ms, without spinning.

asyncio's timers wait in epoll, whose timeout is whole milliseconds, so a timer fires up to
1 ms late. Spinning through the last stretch before each deadline is precise, but it keeps the
event loop's thread busy (a core's worth of CPU at 1,000 sends a second) and holds the GIL that
the process's other threads need, the ones that take bodies in and pass responses on. Here a
thread sleeps to the deadline on a condition (a monotonic-clock wait with nanosecond resolution)
and wakes the loop through its self-pipe, which ends the loop's epoll wait at once. The loop's
thread sleeps meanwhile, and the GIL is free.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time

from ._timerfd import TimerFd

__all__ = ["wait_precisely"]

# Idle this long with nothing to wake, a waker's thread ends (a new one starts when needed).
IDLE_S = 1.0

_registry_lock = threading.Lock()
_wakers: dict[asyncio.AbstractEventLoop, _Waker] = {}


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # cancelled meanwhile
        future.set_result(None)


class _Waker:
    """One thread per event loop, waking it for each deadline in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.alive = True
        self._condition = threading.Condition(_registry_lock)
        self._due: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        threading.Thread(target=self._run, name="imgtrace-waker", daemon=True).start()

    def add(self, deadline_ns: int, future: asyncio.Future[None]) -> None:
        """Called with the registry lock held."""
        heapq.heappush(self._due, (deadline_ns, next(self._order), future))
        self._condition.notify()

    def _run(self) -> None:
        with self._condition:
            while True:
                if not self._due:
                    if not self._condition.wait(IDLE_S) and not self._due:
                        self.alive = False
                        if _wakers.get(self.loop) is self:
                            del _wakers[self.loop]
                        return
                    continue
                deadline, _, future = self._due[0]
                remaining = deadline - time.perf_counter_ns()
                if remaining > 0:
                    self._condition.wait(remaining / 1e9)
                    continue
                heapq.heappop(self._due)
                try:
                    self.loop.call_soon_threadsafe(_resolve, future)
                except RuntimeError:
                    pass  # the loop is closed: nobody waits any more


async def wait_precisely(deadline_ns: int) -> None:
    """Return at `deadline_ns` (the `time.perf_counter_ns` clock), never before it: from the
    loop's own timerfd (`_timerfd`) where Linux has one, else from a waker thread."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    timer = TimerFd.for_loop(loop)
    if timer is not None:
        timer.add(deadline_ns, future)
        await future
        return
    with _registry_lock:
        waker = _wakers.get(loop)
        if waker is None or not waker.alive:
            waker = _wakers[loop] = _Waker(loop)
        waker.add(deadline_ns, future)
    await future
