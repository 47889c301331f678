"""A dispatch worker: a process whose event loop only keeps deadlines and moves socket bytes.

The coordinator (`_workers`) builds the bodies and feeds them through a pipe; the worker sends
each at its deadline and passes every finished exchange back through another pipe, from a
thread of its own (`Outbox`), body as a raw frame. When the coordinator falls behind reading,
bodies past the worker's budget are left out rather than held or waited for. The worker never
opens the trace or a run file, and ignores Ctrl-C: the coordinator tells it to stop or abort.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection

import anyio
import anyio.from_thread
import anyio.lowlevel

from ._backlog import Backlog
from ._engine import Engine
from ._produce import BATCH, Feed, Item
from ._schedule import Timing
from ._sender import Clock, Exchange
from ._targetrun import TargetRun
from ._wire import (
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
TICK_S = 0.25
SWITCH_INTERVAL = 0.0005


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    targets: int
    timing: Timing
    lane_limit: int | None
    timeout: float
    drain: float


def pipe_feed(conn: Connection) -> Feed:
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
            content = conn.recv_bytes()
            items.append((message.ticket, message.prepared(content), message.order))
        return items

    return batch


class Outbox:
    """Sends finished exchanges, progress ticks and the final counts to the coordinator."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
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
            with self._lock:
                self.conn.send_bytes(encode(Done(run, exchange, bool(body))))
                if body:
                    self.conn.send_bytes(body)

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
    spec: WorkerSpec, feeds: list[Connection], control: Connection, results: Connection
) -> None:
    outbox = Outbox(results)
    runs = [
        TargetRun(spec.lane_limit, spec.timeout, partial(outbox.put, index))
        for index in range(spec.targets)
    ]
    outbox.runs = runs
    engine = Engine(spec.timing, runs, [pipe_feed(conn) for conn in feeds], spec.drain)
    error: str | None = None
    try:
        async with anyio.create_task_group() as background:
            await engine.prime(background)
            outbox.send(Ready())
            start = decode_control(control.recv_bytes())  # the coordinator answers at once
            if isinstance(start, Start):
                token = anyio.lowlevel.current_token()
                threading.Thread(
                    target=_watch_control, args=(control, engine, token), daemon=True
                ).start()
                await engine.dispatch(Clock.at(start.t0_ns, start.t0_wall_ns))
            background.cancel_scope.cancel()
    except Exception as exc:  # reported to the coordinator, which closes the runs
        error = f"{type(exc).__name__}: {exc}"
    outbox.close(error)


def worker_main(
    spec: WorkerSpec, feeds: list[Connection], control: Connection, results: Connection
) -> None:
    """The worker process's entry point (started with the spawn method)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        anyio.run(_serve, spec, feeds, control, results)
    except (EOFError, OSError):
        pass  # the coordinator is gone: nobody is left to report to
    results.close()
    # Threads blocked on a pipe (the feed, the control) must not keep the process alive.
    os._exit(0)
