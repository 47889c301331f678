"""Large buffers from the heap, not a mapping each: glibc's allocator set for a replay.

By default glibc gives a buffer over 128 KiB (or over the last such size freed) a mapping of its
own: every 0.8 MB response read, joined, copied through a ring, decoded and compressed faults in
fresh zeroed pages and unmaps them again, which measured about 1 ms of system time per image
request in a dispatch worker and 0.5 ms of CPU in the coordinator. From the heap they are
reused; the trim threshold bounds what the heap keeps free (16 MB). The setting outlives the
replay in a process that called `replay()`: glibc has no way back to its adaptive default, and
the only cost is up to 16 MB of freed memory kept for reuse.
"""

from __future__ import annotations

import ctypes

__all__ = ["keep_large_buffers"]

# glibc's mallopt parameters, and what a replay sets them to.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 16 << 20
TRIM_THRESHOLD = 16 << 20


def keep_large_buffers() -> None:
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return  # not glibc: its allocator has its own ways
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
