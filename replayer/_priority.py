"""The replay's background threads give way to its sends when the CPU is contended.

On a machine whose cores are all busy (the target server, the storing, a neighbour), the
scheduler decides who runs when a deadline comes. Storing responses, building bodies and
passing them between processes all have slack (queues ahead and behind); the event loop that
sends has none. Linux gives each thread its own nice value, so these threads lower theirs and
the sending thread keeps the default: under contention it runs first, on an idle machine nothing
changes. Elsewhere this does nothing.
"""

from __future__ import annotations

import os
import threading

__all__ = ["BACKGROUND_NICENESS", "background_thread"]

BACKGROUND_NICENESS = 5


def background_thread() -> None:
    """Lower the calling thread's priority by BACKGROUND_NICENESS (Linux; else nothing)."""
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None or not hasattr(threading, "get_native_id"):
        return
    try:
        tid = threading.get_native_id()
        setpriority(
            os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICENESS
        )
    except OSError:
        pass  # not permitted here: the thread keeps its priority
