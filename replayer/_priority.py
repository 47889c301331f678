"""Real-time scheduling for a dispatch worker, where the system grants it.

On a machine whose cores are all busy (the server under test, the coordinator storing
responses, anything else), the kernel's fair scheduler lets a waking thread wait for a core
until the running one's share is used up: about 1-2% of sends left 1.5-4 ms late that way at
100 requests a second on 2 cores, though the worker itself was idle before each one. A thread
under SCHED_FIFO takes a core as soon as it wakes. The worker only ever runs in short bursts
(it sleeps until shortly before each deadline), so it leaves the rest of the machine its time;
the kernel also caps real-time threads at 95% of each second by default.

Granting it needs root or CAP_SYS_NICE (or an RLIMIT_RTPRIO above 0); without it the worker runs
at normal priority and the run's header says so.
"""

from __future__ import annotations

import os

__all__ = ["NOT_ASKED", "REALTIME", "normal", "raise_to_realtime"]

REALTIME = "realtime"
"""What a worker under real-time scheduling reports."""
REALTIME_PRIORITY = 1
"""The lowest real-time priority: above every normal thread, below the kernel's own."""


def normal(why: str) -> str:
    """What a worker at normal priority reports."""
    return f"normal ({why})"


NOT_ASKED = normal("--no-realtime")
"""What a worker reports when the replay said not to ask (`--no-realtime`)."""


def raise_to_realtime() -> str:
    """Put the calling thread, and the threads it starts later, under SCHED_FIFO.

    Returns `REALTIME`, or "normal (why not)". (Not SCHED_RESET_ON_FORK: it would also keep
    the worker's own later threads, the waker among them, at normal priority.)
    """
    setscheduler = getattr(os, "sched_setscheduler", None)
    if setscheduler is None or not hasattr(os, "SCHED_FIFO"):
        return normal("this system has no real-time scheduling")
    try:
        setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
    except PermissionError:
        return normal("real-time scheduling not permitted: needs root or CAP_SYS_NICE")
    except OSError as exc:
        return normal(f"real-time scheduling refused: {exc.strerror}")
    return REALTIME
