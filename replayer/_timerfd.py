"""Waking the event loop at a deadline from a Linux timerfd: no thread, no self-pipe.

A timerfd is a file descriptor that becomes readable when a kernel high-resolution timer
expires. Registered with the event loop's epoll, it ends the loop's wait at the deadline itself,
which epoll's own millisecond timeout cannot. Against the waker thread of `_waker` it saves, per
deadline, a thread's wake-up, two hand-overs of the GIL and a write and a read of the loop's
self-pipe (about a quarter of a dispatcher's CPU at 1,000 sends a second), and the loop's thread
is the only one that has to be scheduled at the deadline. Python names timerfd only from 3.13,
so it is called through ctypes; where the C library lacks it, `TimerFd.for_loop` says so and
`_waker` serves instead.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import itertools
import os
import time
import weakref

__all__ = ["TimerFd"]

CLOCK_MONOTONIC = 1  # the clock of time.perf_counter_ns on Linux
TFD_TIMER_ABSTIME = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        ]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()
_timers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TimerFd] = weakref.WeakKeyDictionary()


class TimerFd:
    """One timerfd per event loop, armed for the earliest deadline that is waited for."""

    def __init__(self, loop: asyncio.AbstractEventLoop, libc: ctypes.CDLL) -> None:
        fd = libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._libc = libc
        self._fd = fd
        self._due: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._armed_for: int | None = None
        loop.add_reader(fd, self._fired)
        # The loop's end closes the descriptor (a replay in the calling process runs one loop
        # per replay).
        weakref.finalize(loop, os.close, fd)

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop) -> TimerFd | None:
        """The running loop's timer, made on first use; None where timerfd is not available."""
        timer = _timers.get(loop)
        if timer is None and _LIBC is not None:
            try:
                timer = _timers[loop] = cls(loop, _LIBC)
            except (OSError, AttributeError, NotImplementedError):
                return None
        return timer

    def add(self, deadline_ns: int, future: asyncio.Future[None]) -> None:
        heapq.heappush(self._due, (deadline_ns, next(self._order), future))
        if self._armed_for is None or deadline_ns < self._armed_for:
            self._arm(deadline_ns)

    def _arm(self, deadline_ns: int) -> None:
        spec = _Itimerspec()
        # An all-zero value would disarm the timer instead of firing it.
        seconds, nanoseconds = divmod(max(deadline_ns, 1), 1_000_000_000)
        spec.it_value.tv_sec, spec.it_value.tv_nsec = seconds, nanoseconds
        if self._libc.timerfd_settime(self._fd, TFD_TIMER_ABSTIME, ctypes.byref(spec), None):
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")
        self._armed_for = deadline_ns

    def _fired(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            pass  # re-armed for a later deadline after it had expired: nothing to read
        self._armed_for = None
        now = time.perf_counter_ns()
        while self._due and self._due[0][0] <= now:
            _, _, future = heapq.heappop(self._due)
            if not future.done():  # cancelled meanwhile
                future.set_result(None)
        while self._due and self._due[0][2].done():
            heapq.heappop(self._due)
        if self._due:
            self._arm(self._due[0][0])
