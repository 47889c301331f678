"""Where captures enter a recording: stamping arrivals, and a hand-off that never waits.

Both recorders (the writer thread of `Recorder`, the recording process of `RecorderProcess`)
take exchanges the same way: `Intake.begin` decides whether a request is recorded and stamps
its arrival; `Handoff.put` queues the finished exchange for the recording side within a budget
of items and bytes. When the recording side falls behind, the producer (the proxy's event loop,
an application's HTTP client) never waits: an exchange whose bodies would cross the byte budget
is kept without them, one that does not fit at all is dropped, and both are counted.
"""

from __future__ import annotations

import atexit
import itertools
import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ._capture import Exchange, PathMatcher
from ._options import RecorderStats, RecordOptions

__all__ = ["STOP", "CaptureSink", "Handoff", "Intake", "IntakeSide"]

STOP = object()
"""What `Handoff.take` returns once the hand-off is closed and drained."""


class CaptureSink(Protocol):
    """What the proxy and the transport need of a recorder."""

    def begin(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]]
    ) -> Exchange | None: ...

    def submit(self, exchange: Exchange) -> None: ...


class Intake:
    """Stamps arriving requests on recorded paths with an id and their arrival times."""

    def __init__(self, options: RecordOptions, stats: RecorderStats) -> None:
        self._matcher = PathMatcher(options.paths)
        self._max_body = options.max_body
        self._stats = stats
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.zero: tuple[int, int] | None = None
        """(monotonic ns, wall ns) of the first recorded arrival: the recording's time zero."""
        self.closed = False

    def begin(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]]
    ) -> Exchange | None:
        """A new exchange stamped with its arrival time, or None when `path` is not recorded."""
        if not self._matcher(path) or self.closed:
            return None
        now = time.monotonic_ns()
        wall = time.time_ns()
        with self._lock:
            if self.zero is None:
                self.zero = (now, wall)
            seq = next(self._ids)
            self._stats.seen += 1
        return Exchange(
            id=f"{seq:06d}",
            arrival_ns=now,
            wall_ns=wall,
            method=method,
            path=path,
            query=query,
            headers=headers,
            max_body=self._max_body,
        )


class Handoff:
    """Finished exchanges on their way to the recording side, in a bounded queue.

    `put` never blocks. The consumer `take`s an exchange with the bytes it was admitted with,
    and `release`s them once the exchange no longer needs holding (written, or sent on).
    """

    def __init__(
        self,
        options: RecordOptions,
        stats: RecorderStats,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.max_items = options.max_queue
        self.max_bytes = options.max_queue_bytes
        self._stats = stats
        self._warn = warn
        self._warned = False
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._items = 0
        self._bytes = 0
        self._closed = False
        self._gone = False
        self._reason = f"the recorder was behind (over the {self.max_bytes:,}-byte backlog)"

    @property
    def held(self) -> tuple[int, int]:
        """(exchanges, bytes) admitted and not yet released."""
        with self._lock:
            return self._items, self._bytes

    def put(self, exchange: Exchange) -> None:
        """Queue a finished exchange; without its bodies, or not at all, when over budget."""
        head = exchange.head_bytes
        with self._lock:
            if self._closed:
                self._stats.dropped_after_close += 1
                return
            if self._gone:
                self._stats.dropped_recorder_died += 1
                return
            if self._items >= self.max_items or self._bytes + head > self.max_bytes:
                self._stats.dropped_queue_full += 1
                self._behind()
                return
            size = head + exchange.held_bytes
            if size > head and self._bytes + size > self.max_bytes:
                exchange.leave_out_bodies(self._reason)
                self._stats.bodies_dropped_behind += 1
                size = head
                self._behind()
            self._items += 1
            self._bytes += size
        self._queue.put((exchange, size))

    def _behind(self) -> None:
        """Say once, when it first happens, that the recording side fell behind."""
        if self._warn is None or self._warned:
            return
        self._warned = True
        self._warn(
            f"the recorder is behind: past {self.max_items:,} exchanges or "
            f"{self.max_bytes:,} bytes waiting (--max-backlog), exchanges are recorded without "
            "their bodies or dropped, and counted; forwarding is not slowed"
        )

    def take(self, timeout: float | None = None) -> tuple[Exchange, int] | object | None:
        """The next exchange and its admitted size, `STOP` at the end, None after `timeout`."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def release(self, size: int) -> None:
        with self._lock:
            self._items -= 1
            self._bytes -= size

    def close(self) -> bool:
        """Refuse new exchanges, and end the queue after those already in it; False if closed."""
        with self._lock:
            already, self._closed = self._closed, True
        if not already:
            self._queue.put(STOP)
        return not already

    def consumer_gone(self) -> None:
        """The recording side is gone: new exchanges are dropped as lost with it."""
        with self._lock:
            self._gone = True

    def drop(self, size: int) -> None:
        """An admitted exchange the recording side will never see."""
        with self._lock:
            self._stats.dropped_recorder_died += 1
        self.release(size)


class IntakeSide:
    """The producers' side every recorder sink shares: exchanges begin at the intake and are
    handed over without waiting; closing stops both (the subclass sets `_intake`, `_handoff`)."""

    _intake: Intake
    _handoff: Handoff

    def begin(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]]
    ) -> Exchange | None:
        """A new exchange stamped with its arrival time, or None when `path` is not recorded."""
        return self._intake.begin(method, path, query, headers)

    def submit(self, exchange: Exchange) -> None:
        """Hand a finished exchange over, without waiting (left out and counted when behind)."""
        self._handoff.put(exchange)

    def _stop_taking(self, close: Callable[[], object]) -> None:
        """No new exchanges; the first call also takes `close` off the exit hooks."""
        self._intake.closed = True
        if self._handoff.close():
            atexit.unregister(close)
