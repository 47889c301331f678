"""A byte ring in shared memory: bodies pass between the coordinator and a worker in one copy.

Through a pipe a 0.8 MB body moves in 64 KiB steps, each a system call and often a switch
between the two processes: about 1.7 ms of system time per image request, both ways together.
Here the producer copies the body into shared memory and sends only its place through the pipe;
the consumer copies it out and marks the space free. One producer and one consumer, and bodies
are taken in the order they were put, so the free space is one stretch between two counters:
what the producer has written (its own) and what the consumer has taken (in the shared header).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from multiprocessing import shared_memory

__all__ = ["Ring"]

# How often a producer looks again for room in a full ring.
WAIT_S = 0.001
_COUNTER = struct.Struct("<Q")
_HEAD = 64  # the consumer's counter, alone on its cache line


class Ring:
    """The producer's side (`Ring(size)`, which owns the memory) or the consumer's
    (`Ring(size, name)`, attached to the producer's by its name)."""

    def __init__(self, size: int, name: str | None = None) -> None:
        self.size = size
        self._owner = name is None
        if name is None:
            self._memory = shared_memory.SharedMemory(create=True, size=_HEAD + size)
        else:
            self._memory = shared_memory.SharedMemory(name=name)
        self._buffer: memoryview | None = self._memory.buf
        self._written = 0

    @property
    def name(self) -> str:
        return self._memory.name

    def put(self, data: bytes) -> int | None:
        """Copy `data` in and return its position; None while there is no room for it."""
        buffer, size, count = self._buffer, self.size, len(data)
        if buffer is None or count > size:
            return None
        start = self._written
        offset = start % size
        if offset + count > size:  # a body never wraps: it starts over at the beginning
            start += size - offset
            offset = 0
        if start + count - _COUNTER.unpack_from(buffer, 0)[0] > size:
            return None
        buffer[_HEAD + offset : _HEAD + offset + count] = data
        self._written = start + count
        return start

    def put_waiting(self, data: bytes, give_up: Callable[[], bool]) -> int | None:
        """`put`, waiting for room while the consumer takes bodies out; None once `give_up()`
        says so (or when `data` is bigger than the whole ring)."""
        if len(data) > self.size:
            return None
        while (at := self.put(data)) is None:
            if give_up():
                return None
            time.sleep(WAIT_S)
        return at

    def take(self, position: int, count: int) -> bytes:
        """The body put at `position`; its space (and any before it) is free again."""
        buffer = self._buffer
        if buffer is None:
            return b""  # closed: the replay is over, and nobody waits for this body
        offset = _HEAD + position % self.size
        data = bytes(buffer[offset : offset + count])
        _COUNTER.pack_into(buffer, 0, position + count)
        return data

    def close(self) -> None:
        if self._buffer is None:
            return
        self._buffer.release()
        self._buffer = None
        self._memory.close()
        if self._owner:
            self._memory.unlink()
