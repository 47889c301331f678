"""A dispatch worker: a process whose event loop only keeps deadlines and moves socket bytes.

The coordinator (`_workers`) builds the bodies and feeds them through a pipe (the bytes through
a shared-memory ring, `_ring`); the worker sends each at its deadline and passes every finished
exchange back through another pipe and ring, from a thread of its own (`Outbox`). When the
coordinator falls behind reading, bodies past the worker's budget are left out rather than held
or waited for. The worker never opens the trace or a run file, and ignores Ctrl-C: the
coordinator tells it to stop or abort.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection

import anyio
import anyio.from_thread
import anyio.lowlevel

from ._backlog import Backlog
from ._engine import Engine
from ._heap import keep_large_buffers
from ._priority import REALTIME, normal, raise_to_realtime
from ._produce import BATCH, Feed, Item
from ._ring import Ring
from ._schedule import Timing
from ._sender import SPIN_REALTIME_NS, Clock, Exchange
from ._targetrun import TargetRun
from ._wire import (
    INLINE,
    NO_BODY,
    Abort,
    Done,
    End,
    Final,
    Ready,
    Start,
    Stop,
    Tick,
    decode_control,
    decode_feed,
    encode,
)

__all__ = ["WORKER_BUDGET", "WorkerSpec", "worker_main"]

WORKER_BUDGET = 32 * 1024 * 1024
"""Bytes of response bodies a worker holds for the coordinator, at most."""
POLL_S = 0.01
RING_PATIENCE_S = 5.0
TICK_S = 0.25
SWITCH_INTERVAL = 0.0005


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    urls: tuple[str, ...]
    """Each target's base URL."""
    timing: Timing
    lane_limit: int | None
    timeout: float
    drain: float
    feed_rings: tuple[str, ...] = ()
    """The shared memory of each feed's ring (by name), made by the coordinator."""
    result_ring: str = ""
    ring_size: int = 0
    not_realtime: str | None = None
    """None: ask for real-time scheduling (`_priority`); else why the worker runs at normal
    priority without asking (for its report)."""


def pipe_feed(conn: Connection, ring: Ring) -> Feed:
    """Items from the coordinator: up to BATCH of what has arrived, waiting only for the first."""
    ended = False

    def batch() -> list[Item]:
        nonlocal ended
        items: list[Item] = []
        while not ended and len(items) < BATCH and (not items or conn.poll(0)):
            try:
                message = decode_feed(conn.recv_bytes())
            except (EOFError, OSError):
                message = End()
            if isinstance(message, End):
                ended = True
                break
            if message.at == INLINE:
                content = conn.recv_bytes()
            else:
                content = ring.take(message.at, message.size)
            items.append((message.ticket, message.prepared(content), message.order))
        return items

    return batch


class Outbox:
    """Sends finished exchanges, progress ticks and the final counts to the coordinator."""

    def __init__(self, conn: Connection, ring: Ring) -> None:
        self.conn = conn
        self.ring = ring
        self.runs: list[TargetRun] = []
        """Set once every target's side is built; ticks wait for it."""
        self.backlog: Backlog[int] = Backlog(WORKER_BUDGET)
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="imgtrace-outbox", daemon=True)
        self._thread.start()

    def put(self, run: int, exchange: Exchange) -> None:
        self.backlog.put(run, exchange)

    def send(self, message: Ready | Tick | Final) -> None:
        with self._lock:
            self.conn.send_bytes(encode(message))

    def _run(self) -> None:
        waited = 0.0
        while True:
            closing = self._closing.wait(POLL_S)
            self._flush()
            waited += POLL_S
            if waited >= TICK_S and self.runs:
                waited = 0.0
                self.send(Tick([run.counts() for run in self.runs]))
            if closing:
                return

    def _flush(self) -> None:
        while (taken := self.backlog.take()) is not None:
            run, exchange = taken
            body, exchange.body = exchange.body, b""
            at = self._place(body, exchange)
            with self._lock:
                self.conn.send_bytes(encode(Done(run, exchange, at, len(body))))
                if at == INLINE:
                    self.conn.send_bytes(body)

    def _place(self, body: bytes, exchange: Exchange) -> int:
        """Where `body` goes: into the ring once the coordinator has taken enough out (meanwhile
        new exchanges wait in the bounded backlog), or inline when the ring cannot hold it. A
        coordinator that takes nothing for RING_PATIENCE_S gets the exchange without it."""
        if not body:
            return NO_BODY
        if len(body) > self.ring.size:
            return INLINE
        patience = time.monotonic() + RING_PATIENCE_S
        at = self.ring.put_waiting(body, lambda: time.monotonic() > patience)
        if at is None:
            exchange.body_dropped = True
            return NO_BODY
        return at

    def close(self, error: str | None) -> None:
        self._closing.set()
        self._thread.join()
        self.send(Final([run.counts() for run in self.runs], error))


def _watch_control(conn: Connection, engine: Engine, token: anyio.lowlevel.EventLoopToken) -> None:
    """Stop or abort on the coordinator's word; abort when the coordinator is gone."""
    while True:
        try:
            message = decode_control(conn.recv_bytes())
        except (EOFError, OSError):
            message = Abort()
        try:
            if isinstance(message, Abort):
                anyio.from_thread.run_sync(engine.abort, token=token)
                return
            if isinstance(message, Stop):
                anyio.from_thread.run_sync(engine.stop, token=token)
        except RuntimeError:
            return  # the event loop has finished


async def _serve(
    spec: WorkerSpec,
    feeds: list[Connection],
    control: Connection,
    results: Connection,
    scheduling: str,
) -> None:
    feed_rings = [Ring(spec.ring_size, name) for name in spec.feed_rings]
    result_ring = Ring(spec.ring_size, spec.result_ring)
    outbox = Outbox(results, result_ring)
    runs = [
        TargetRun(spec.lane_limit, spec.timeout, partial(outbox.put, index), url)
        for index, url in enumerate(spec.urls)
    ]
    outbox.runs = runs
    engine = Engine(
        spec.timing,
        runs,
        [pipe_feed(c, r) for c, r in zip(feeds, feed_rings, strict=True)],
        spec.drain,
    )
    error: str | None = None
    try:
        async with anyio.create_task_group() as background:
            await engine.prime(background)
            outbox.send(Ready(scheduling))
            start = decode_control(control.recv_bytes())  # the coordinator answers at once
            if isinstance(start, Start):
                token = anyio.lowlevel.current_token()
                threading.Thread(
                    target=_watch_control, args=(control, engine, token), daemon=True
                ).start()
                clock = Clock.at(start.t0_ns, start.t0_wall_ns)
                if scheduling == REALTIME:
                    clock.spin_ns = SPIN_REALTIME_NS
                await engine.dispatch(clock)
            background.cancel_scope.cancel()
    except Exception as exc:  # reported to the coordinator, which closes the runs
        error = f"{type(exc).__name__}: {exc}"
    outbox.close(error)
    for ring in (*feed_rings, result_ring):
        ring.close()


def worker_main(
    spec: WorkerSpec, feeds: list[Connection], control: Connection, results: Connection
) -> None:
    """The worker process's entry point (started with the spawn method)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    sys.setswitchinterval(SWITCH_INTERVAL)
    # Before any thread starts: the threads inherit the scheduling of the one that starts them.
    scheduling = raise_to_realtime() if spec.not_realtime is None else normal(spec.not_realtime)
    keep_large_buffers()
    # Everything imported so far is out of the collector's sight: a full collection then
    # walks only what the replay allocates, not the interpreter's modules (milliseconds).
    gc.freeze()
    try:
        anyio.run(_serve, spec, feeds, control, results, scheduling)
    except (EOFError, OSError):
        pass  # the coordinator is gone: nobody is left to report to
    results.close()
    # Threads blocked on a pipe (the feed, the control) must not keep the process alive.
    os._exit(0)
