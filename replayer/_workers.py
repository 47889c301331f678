"""The coordinator of dispatch workers: the trace, the bodies and the run files stay here.

`--workers N` starts N worker processes (spawn) and splits the schedule by the partition of
shards: send k goes to worker `k mod N`, in schedule order, so each worker sees the arrival
process thinned evenly and keeps the unsharded intended offsets. One thread per feed builds
the bodies and writes them to the workers' feed pipes (the pipes' capacity and the workers'
bounded queues hold it back); one thread per worker reads its results and hands them to the
run files (`RunFiles.deliver`). Every worker shares one t0: the monotonic clock is the
machine's. A worker that dies is named in every run's summary; the others are stopped and the
runs are closed, valid and marked interrupted.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import anyio
from anyio.abc import TaskGroup

from ._control import watched
from ._errors import ReplayError
from ._partition import part_of
from ._produce import Feed
from ._results import ReplayResult
from ._ring import Ring
from ._runfiles import RunFiles
from ._sender import Clock
from ._wire import (
    INLINE,
    NO_BODY,
    Abort,
    Counts,
    Done,
    End,
    FeedItem,
    Final,
    Ready,
    Start,
    Stop,
    Tick,
    decode_result,
    encode,
)
from ._worker import WorkerSpec, worker_main

__all__ = ["Workers", "run_workers"]

READY_TIMEOUT = 60.0
POLL_S = 0.05
# Bytes of each shared-memory ring: a few image bodies in flight between the processes. Bodies
# wait in the bounded queues on either side, not here; a bigger body goes through the pipe.
RING_SIZE = 8 << 20


class WorkerHandle:
    """The coordinator's side of one worker: its process and pipes, what it reported."""

    def __init__(self, spec: WorkerSpec, feeds: int, deliver: Callable[[int, Done, bytes], None]):
        context = multiprocessing.get_context("spawn")
        self.index = spec.index
        self.counts = [Counts() for _ in spec.urls]
        self.final: Final | None = None
        self.ready = threading.Event()
        self.scheduling = ""
        self._deliver = deliver
        pairs = [context.Pipe(duplex=False) for _ in range(feeds)]
        self.feeds: list[Connection] = [send for _, send in pairs]
        self.feed_rings = [Ring(RING_SIZE) for _ in range(feeds)]
        self.result_ring = Ring(RING_SIZE)
        spec = replace(
            spec,
            feed_rings=tuple(ring.name for ring in self.feed_rings),
            result_ring=self.result_ring.name,
            ring_size=RING_SIZE,
        )
        control_recv, self.control = context.Pipe(duplex=False)
        self.results, results_send = context.Pipe(duplex=False)
        self.process: BaseProcess = context.Process(
            target=worker_main,
            args=(spec, [recv for recv, _ in pairs], control_recv, results_send),
            name=f"imgtrace-dispatch-{spec.index}",
            daemon=True,
        )
        self.process.start()
        for conn in (*(recv for recv, _ in pairs), control_recv, results_send):
            conn.close()  # the worker's ends: only the worker holds them now
        self.reader = threading.Thread(target=self._collect, daemon=True)
        self.reader.start()

    def _collect(self) -> None:
        while True:
            try:
                message = decode_result(self.results.recv_bytes())
                if isinstance(message, Done):
                    body = self._body(message)
                    self._deliver(self.index, message, body)
                elif isinstance(message, Tick):
                    self.counts = message.counts
                elif isinstance(message, Ready):
                    self.scheduling = message.scheduling
                    self.ready.set()
                elif isinstance(message, Final):
                    self.counts = message.counts
                    self.final = message
            except (EOFError, OSError):
                return

    def _body(self, done: Done) -> bytes:
        if done.at == INLINE:
            return self.results.recv_bytes()
        if done.at == NO_BODY:
            return b""
        return self.result_ring.take(done.at, done.size)

    def tell(self, message: Start | Stop | Abort) -> None:
        try:
            self.control.send_bytes(encode(message))
        except OSError:
            pass  # gone already: its reader reports it

    @property
    def finished(self) -> bool:
        return not self.reader.is_alive()

    def failure(self) -> str | None:
        """Why this worker did not finish its share, or None when it did."""
        if self.final is not None:
            return None if self.final.error is None else self._named(self.final.error)
        self.process.join(5.0)
        return self._named(f"exited with code {self.process.exitcode} before the end")

    def _named(self, what: str) -> str:
        return f"dispatch worker {self.index} (pid {self.process.pid}): {what}"

    def close(self) -> None:
        self.process.join(5.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        for conn in (*self.feeds, self.control, self.results):
            conn.close()
        self.reader.join(5.0)
        for ring in (*self.feed_rings, self.result_ring):
            ring.close()


class Pump:
    """Builds a feed's bodies and writes each to its worker's pipe, in schedule order."""

    def __init__(self, feed: Feed, conns: Sequence[Connection], rings: Sequence[Ring]) -> None:
        self.feed = feed
        self.conns = list(conns)
        self.rings = list(rings)
        self.error: BaseException | None = None
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="imgtrace-bodies", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopping:
                items = self.feed()
                if not items:
                    break
                for ticket, bodies, order in items:
                    part = part_of(ticket.seq, len(self.conns))
                    content = bodies[0].content
                    at = self._place(self.rings[part], content)
                    if at is None:
                        break
                    conn = self.conns[part]
                    conn.send_bytes(encode(FeedItem.of(ticket, bodies, order, at)))
                    if at == INLINE:
                        conn.send_bytes(content)
        except OSError:
            pass  # a worker went away; its reader reports it
        except BaseException as exc:  # the sends built so far go out, then the replay ends
            self.error = exc
        for conn in self.conns:
            try:
                conn.send_bytes(encode(End()))
            except OSError:
                pass

    def _place(self, ring: Ring, content: bytes) -> int | None:
        """The ring position of `content` once there is room (the worker takes bodies out as
        it reads them), INLINE when it is bigger than the ring, None when stopping."""
        if len(content) > ring.size:
            return INLINE
        return ring.put_waiting(content, lambda: self.stopping)


class Workers:
    """Runs a replay's sends in `count` worker processes; the results go to `files`."""

    def __init__(self, files: RunFiles, specs: Sequence[WorkerSpec], feeds: Sequence[Feed]):
        self.files = files
        self.interrupted = False
        self.stopped = False
        self._lock = threading.Lock()
        self.handles = [WorkerHandle(spec, len(feeds), self._deliver) for spec in specs]
        self.pumps = [
            Pump(
                feed,
                [handle.feeds[index] for handle in self.handles],
                [handle.feed_rings[index] for handle in self.handles],
            )
            for index, feed in enumerate(feeds)
        ]

    def _deliver(self, worker: int, done: Done, body: bytes) -> None:
        done.exchange.body = body
        with self._lock:  # one reader thread per worker
            self.files.deliver(done.run, done.exchange)

    async def start(self) -> Clock:
        """Wait for every worker to be ready, open the run files, then give them all one t0."""
        with anyio.move_on_after(READY_TIMEOUT):
            while not all(handle.ready.is_set() for handle in self.handles):
                if any(h.finished and not h.ready.is_set() for h in self.handles):
                    break
                await anyio.sleep(POLL_S)
        if not all(handle.ready.is_set() for handle in self.handles):
            self.stop(abort=True)
            self.raise_pump_error()
            failures = [
                h.failure() or f"dispatch worker {h.index}: not ready" for h in self.handles
            ]
            raise ReplayError("the dispatch workers did not start: " + "; ".join(failures))
        self.files.scheduling = _one_or_each(
            [handle.scheduling for handle in self.handles], "worker {}: {}"
        )
        clock = self.files.new_clock()
        # The run files are open before any worker may send: an answer can come back at once.
        self.files.open(clock)
        for handle in self.handles:
            handle.tell(Start(clock.t0, clock.t0_wall))
        return clock

    def stop(self, abort: bool = False) -> None:
        self.interrupted = True
        self.stopped = True
        for pump in self.pumps:
            pump.stopping = True
        for handle in self.handles:
            handle.tell(Abort() if abort else Stop())

    async def wait(self) -> None:
        """Until every worker has reported its end (or died: the others are then stopped)."""
        while not all(handle.finished for handle in self.handles):
            if any(h.finished and h.final is None for h in self.handles) and not self.stopped:
                self.stop()
            self.files.update([handle.counts for handle in self.handles])
            await anyio.sleep(POLL_S)
        self.files.update([handle.counts for handle in self.handles])

    def failures(self) -> list[str]:
        return [line for h in self.handles if (line := h.failure()) is not None]

    def close(self) -> None:
        for pump in self.pumps:
            pump.stopping = True
        for handle in self.handles:
            handle.close()
        for pump in self.pumps:
            pump.thread.join(5.0)

    def raise_pump_error(self) -> None:
        for pump in self.pumps:
            if pump.error is not None:
                raise pump.error


def _one_or_each(values: list[str], each: str) -> str:
    """The value every worker reported, or each worker's, numbered."""
    if len(set(values)) == 1:
        return values[0]
    return "; ".join(each.format(index, value) for index, value in enumerate(values))


async def run_workers(
    files: RunFiles, specs: Sequence[WorkerSpec], feeds: Sequence[Feed], background: TaskGroup
) -> list[ReplayResult]:
    """The whole replay through workers, from their start to the closed run files."""
    workers = Workers(files, specs, feeds)
    try:
        await workers.start()
        try:
            counts = lambda: [handle.counts for handle in workers.handles]  # noqa: E731
            async with watched(files, background, workers.stop, counts):
                await workers.wait()
        finally:
            failures = workers.failures()
            files.failures = failures
            broken = any(pump.error is not None for pump in workers.pumps)
            results = files.close(workers.interrupted or broken or bool(failures))
        workers.raise_pump_error()
        if failures:
            raise ReplayError(
                "; ".join(failures) + " (every run file was closed with what was measured and "
                "marked interrupted)"
            )
        return results
    finally:
        workers.close()
