"""One replay's moving parts: produce bodies, dispatch on time to every target, record.

Three kinds of work run side by side so that none of them delays a send:
- the producer (worker threads) builds request bodies ahead of their send time, a bounded
  number at a time, so memory stays flat however long the trace is;
- the dispatcher (the event loop) waits for each deadline and starts the sends;
- the outcome sinks (one thread for all targets) turn finished exchanges into records and
  write them.

A replay has one or more targets. The plan is one: each slot's body is built once and
retargeted, the dispatcher waits for the slot's deadline once and starts the slot's sends in
the order drawn for it. Everything else is per target (`TargetRun`): lanes, counts, lag, the
run file. A target whose cap is full queues its own sends behind it, and a target that refuses
connections records connect errors; neither holds the others' sends back, and every send's lag
is measured against the one intended time of its slot.

The parts are cut so that they can move apart: an `Item` (a slot with its deadline, bodies and
target order) is all a dispatcher needs, `TargetRun.submit`/`start` are the sockets-and-
deadlines half of a target, and its `OutcomeSink` the half that parses and writes.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import httpx
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from traces import Header, Interleave, Redaction, TraceReader, TraceWriter, __version__

from ._outcomes import POLL_S, OutcomeSink
from ._progress import Live, Stats
from ._results import ReplayResult
from ._schedule import Plan, Slot
from ._sender import Clock
from ._shaping import Prepared, public_target
from ._start import clock_at, scale_out_metadata
from ._targetrun import TargetRun
from ._targets import send_order

if TYPE_CHECKING:
    from ._runner import ReplayConfig

__all__ = ["Engine", "Group"]

# Bodies prepared ahead of the dispatcher: enough to ride out a slow batch (a frame of blobs to
# decompress), few enough that 512² uploads stay within tens of MB.
AHEAD = 64
BATCH = 16
# Longest the dispatcher waits for the producer's first bodies before starting the clock.
PRIME_TIMEOUT = 5.0
REFRESH_S = 0.25
START_DELAY_NS = 50_000_000

# One slot of the plan: the slot, its body for each target, the order the targets are sent in.
Item = tuple[Slot, tuple[Prepared, ...], tuple[int, ...]]


@dataclass(frozen=True)
class Group:
    """What makes a set of targets one interleaved replay (written to every run's header)."""

    group: str
    order_seed: int
    targets: dict[str, str]
    """Name to public base URL, in send-order index."""


class SharedOutcomes:
    """One outcome thread for every target of an interleaved replay.

    The outcome work (JSON, base64, hashing, compression) holds the GIL in steps; one thread per
    target would not write any faster, only take the GIL from the event loop more often, and
    lengthen every send's wait for it.
    """

    def __init__(self, sinks: Sequence[OutcomeSink]) -> None:
        self._sinks = list(sinks)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="imgtrace-outcomes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            closing = self._closing.wait(POLL_S)
            for sink in self._sinks:
                sink.write_pending()
            if closing:
                return

    def close(self) -> None:
        """Write everything handed over, then stop (each sink's close() reports its failure)."""
        self._closing.set()
        self._thread.join()


async def _warm_up() -> None:
    """Pay the one-off costs of a first request (lazy imports in httpx's stack) before t0."""
    transport = httpx.MockTransport(lambda request: httpx.Response(204))
    async with httpx.AsyncClient(transport=transport) as client:
        await client.post("http://warm.up/", content=b"x")
    import h11  # noqa: F401 - imported by the first real connection otherwise
    import httpcore._backends.anyio  # noqa: F401


class Engine:
    """Runs a checked plan against its targets; `run()` returns each target's result."""

    def __init__(
        self,
        config: ReplayConfig,
        reader: TraceReader,
        plan: Plan,
        runs: Sequence[TargetRun],
        group: Group | None,
    ) -> None:
        self.config = config
        self.reader = reader
        self.plan = plan
        self.runs = list(runs)
        self.group = group
        self.timing = config.timing
        self.interrupted = False
        self.clock = Clock()
        self._primed: list[anyio.Event] = []
        self._dispatch_scope = anyio.CancelScope()
        self._senders: TaskGroup | None = None
        self._trace_digest = ""
        self._extra_readers: list[TraceReader] = []
        self._outcomes: SharedOutcomes | None = None

    async def run(self) -> list[ReplayResult]:
        # Before the producer starts: the reader's file is then used by one thread at a time
        # (a trace without an index is read once more to compute its digest).
        self._trace_digest = await anyio.to_thread.run_sync(self.reader.trace_digest)
        try:
            async with anyio.create_task_group() as background:
                receives = await self._start_producers(background)
                if self.config.handle_signals:
                    background.start_soon(self._watch_signals)
                with anyio.move_on_after(PRIME_TIMEOUT):
                    for primed in self._primed:
                        await primed.wait()
                await _warm_up()
                finished = await self._run_clocked(receives, background)
                background.cancel_scope.cancel()
        finally:
            for reader in self._extra_readers:
                reader.close()
        return finished

    async def _run_clocked(
        self, receives: list[MemoryObjectReceiveStream[Item]], background: TaskGroup
    ) -> list[ReplayResult]:
        # t0 lies a little ahead, so the headers can name it and the writers, outcome threads
        # and warm-up are ready before the first deadline.
        config = self.config
        if config.start_at is None:
            self.clock = Clock(start_in_ns=START_DELAY_NS)
        else:
            self.clock = clock_at(config.start_at)
        redaction = Redaction(redact=[name for name, _ in config.headers])
        finished: list[ReplayResult] = []
        try:
            for run in self.runs:
                run.clock = self.clock
                run.timeout = config.timeout
                run.output.parent.mkdir(parents=True, exist_ok=True)
                run.writer = TraceWriter(
                    run.output, self._header(run), force=config.force, redaction=redaction
                )
                run.sink = OutcomeSink(
                    run.writer,
                    keep_images=config.keep_images,
                    thread=len(self.runs) == 1,
                    on_invalid=run.stats.on_invalid,
                )
            if len(self.runs) > 1:
                self._outcomes = SharedOutcomes([run.sink for run in self.runs if run.sink])
            live = self._live()
            if live is not None:
                with live.shown():
                    background.start_soon(self._refresh, live)
                    await self._dispatch(receives)
                    live.refresh(self._merged_stats(), self._in_flight(), self.clock.now())
            else:
                await self._dispatch(receives)
        finally:
            for run in self.runs:
                await run.lanes.aclose()  # shielded: runs even when cancelled
            if self._outcomes is not None:
                self._outcomes.close()
            failure: BaseException | None = None
            for run in self.runs:
                if run.writer is None:
                    continue
                try:
                    if run.sink is not None:
                        run.sink.close()  # every outcome handed over is written first
                except BaseException as exc:
                    failure = failure or exc
                finally:
                    finished.append(self._finish(run, run.writer))
                    run.writer.close()
            if failure is not None:
                raise failure
        return finished

    # -- producing ------------------------------------------------------------------------------

    async def _start_producers(
        self, background: TaskGroup
    ) -> list[MemoryObjectReceiveStream[Item]]:
        """One producer for all targets; in a closed loop one per target, since each target's
        loop runs at its own server's pace and must not wait for the others' bodies."""
        feeds: list[tuple[Plan, TraceReader, list[TargetRun]]]
        if self.timing.closed and len(self.runs) > 1:
            feeds = [(self.plan, self.reader, self.runs[:1])]
            for run in self.runs[1:]:
                reader = await anyio.to_thread.run_sync(TraceReader, self.config.trace)
                self._extra_readers.append(reader)
                plan = Plan(reader, self.plan.selection, self.plan.timing, run.shaper)
                plan.survey = self.plan.survey
                feeds.append((plan, reader, [run]))
        else:
            feeds = [(self.plan, self.reader, self.runs)]
        receives = []
        for plan, reader, runs in feeds:
            send, receive = anyio.create_memory_object_stream[Item](AHEAD)
            primed = anyio.Event()
            self._primed.append(primed)
            background.start_soon(self._produce, plan, reader, runs, send, primed)
            receives.append(receive)
        return receives

    async def _produce(
        self,
        plan: Plan,
        reader: TraceReader,
        runs: list[TargetRun],
        send: MemoryObjectSendStream[Item],
        primed: anyio.Event,
    ) -> None:
        slots = plan.slots()
        first, others = runs[0].shaper, [run.shaper for run in runs[1:]]
        count = len(runs)
        seed = self.group.order_seed if self.group is not None else 0

        def item(slot: Slot) -> Item:
            prepared = first.prepare(slot.request, slot.loop, reader.blob)
            bodies = (prepared, *(shaper.retarget(prepared, slot.request) for shaper in others))
            return slot, bodies, send_order(seed, slot.seq, count) if count > 1 else (0,)

        def batch() -> list[Item]:
            return [item(slot) for slot in islice(slots, BATCH)]

        async with send:
            while True:
                items = await anyio.to_thread.run_sync(batch)
                if not items:
                    break
                for one in items:
                    if send.statistics().current_buffer_used >= AHEAD - 1:
                        primed.set()
                    try:
                        await send.send(one)
                    except anyio.BrokenResourceError:
                        return  # the dispatcher stopped (interrupted): nothing more is wanted
        primed.set()

    # -- dispatching ----------------------------------------------------------------------------

    async def _dispatch(self, receives: list[MemoryObjectReceiveStream[Item]]) -> None:
        await self.clock.wait_until(0)
        async with anyio.create_task_group() as senders:
            self._senders = senders
            with self._dispatch_scope:
                if self.timing.closed:
                    async with anyio.create_task_group() as loops:
                        for run, receive in zip(self.runs, receives, strict=True):
                            loops.start_soon(self._closed_loop, run, receive, senders)
                else:
                    await self._open_loop(receives[0], senders)
            if self.interrupted:
                await self._drain(senders)

    async def _open_loop(
        self, receive: MemoryObjectReceiveStream[Item], senders: TaskGroup
    ) -> None:
        runs = self.runs
        with receive:
            async for slot, bodies, order in receive:
                for run in runs:
                    await run.room()
                assert slot.intended_ns is not None
                intended = slot.intended_ns
                await self.clock.wait_until(intended)
                for index in order:
                    runs[index].submit(slot, bodies[index], intended, senders)

    async def _closed_loop(
        self, run: TargetRun, receive: MemoryObjectReceiveStream[Item], senders: TaskGroup
    ) -> None:
        with receive:
            while True:
                # Acquire first: in a closed loop a send is due the moment a slot frees, so a
                # late body from the producer shows up as lag.
                client = await run.lanes.acquire()
                intended = self.clock.now()
                try:
                    slot, bodies, _ = await receive.receive()
                except anyio.EndOfStream:
                    run.lanes.release(client)
                    break
                run.start(client, slot, bodies[0], intended, senders)

    async def _drain(self, senders: TaskGroup) -> None:
        with anyio.move_on_after(self.config.drain):
            for run in self.runs:
                await run.lanes.idle()
        # Whatever is still in flight is recorded as aborted by send_one.
        senders.cancel_scope.cancel()

    def stop(self) -> None:
        """Stop sending; requests in flight get --drain seconds to finish."""
        self.interrupted = True
        for run in self.runs:
            run.stopped = True
        self._dispatch_scope.cancel()

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                if not self.interrupted:
                    self._say(
                        f"stopping: waiting up to {self.config.drain:g} s for "
                        f"{self._in_flight()} requests in flight (Ctrl-C again to abort them)"
                    )
                    self.stop()
                elif self._senders is not None:
                    self._senders.cancel_scope.cancel()

    # -- reporting ------------------------------------------------------------------------------

    def _in_flight(self) -> int:
        return sum(run.lanes.in_flight for run in self.runs)

    def _say(self, text: str) -> None:
        if self.config.console is not None:
            self.config.console.print(text)

    def _live(self) -> Live | None:
        console = self.config.console
        if console is None or not console.is_terminal:
            return None
        return Live(console, self.plan.total * len(self.runs))

    def _merged_stats(self) -> Stats:
        """The progress bar's figures: counts summed over targets, the worst target's lag."""
        if len(self.runs) == 1:
            return self.runs[0].stats
        each = [run.stats for run in self.runs]
        merged = Stats(planned=sum(s.planned for s in each))
        merged.sent = sum(s.sent for s in each)
        merged.done = sum(s.done for s in each)
        merged.errors = sum(s.errors for s in each)
        starts = [s.first_sent_ns for s in each if s.first_sent_ns is not None]
        merged.first_sent_ns = min(starts) if starts else None
        merged.recent_lags = max(each, key=lambda s: s.current_lag_p99_ms()).recent_lags
        return merged

    async def _refresh(self, live: Live) -> None:
        while True:
            await anyio.sleep(REFRESH_S)
            live.refresh(self._merged_stats(), self._in_flight(), self.clock.now())

    def _header(self, run: TargetRun) -> Header:
        config = self.config
        interleave = None
        if self.group is not None and run.name is not None:
            interleave = Interleave(
                group=self.group.group,
                name=run.name,
                order_seed=self.group.order_seed,
                targets=self.group.targets,
            )
        return Header(
            kind="run",
            source="replay",
            tool_version=__version__,
            trace_digest=self._trace_digest,
            trace_path=str(config.trace),
            target=public_target(run.shaper.url),
            options=config.options(run.shaper),
            start_wall_ns=self.clock.t0_wall,
            metadata={
                "planned": self.plan.total,
                **scale_out_metadata(
                    config.shard, config.start_at, config.group, self._trace_digest, self.clock
                ),
            },
            interleave=interleave,
        )

    def _planned_rate(self) -> float | None:
        if self.timing.mode == "rate":
            return self.timing.rate
        if self.timing.mode == "original" and self.plan.total > 1:
            survey = self.plan.survey
            span = (survey.period_ns * (self.config.selection.loop - 1) + survey.span_ns) / 1e9
            return (self.plan.total - 1) / (span / self.timing.speed) if span > 0 else None
        return None

    def _finish(self, run: TargetRun, writer: TraceWriter) -> ReplayResult:
        lag = run.stats.lag_health(run.waited if self.timing.max_inflight else 0)
        result = ReplayResult(
            output=writer.path,
            stats=run.stats,
            lag=lag,
            interrupted=self.interrupted,
            duration_s=self.clock.now() / 1e9,
            planned_rate=self._planned_rate(),
            peak_in_flight=run.lanes.peak,
            lanes=run.lanes.lanes,
            target=public_target(run.shaper.url),
        )
        summary = result.as_dict()
        summary.pop("output")
        writer.note(finished_ns=time.time_ns(), **summary)
        return result
