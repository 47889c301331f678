"""One replay from start to finish: survey, produce bodies, dispatch on time, record.

Three kinds of work run side by side so that none of them delays a send:
- the producer (worker threads) builds request bodies ahead of their send time, a bounded
  number at a time, so memory stays flat however long the trace is;
- the dispatcher (the event loop) waits for each deadline and starts the send on a free lane;
- the outcome sink (a thread) turns finished exchanges into records and writes them.
"""

from __future__ import annotations

import gc
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import httpx
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from traces import (
    Header,
    OutputExists,
    Redaction,
    TraceError,
    TraceReader,
    TraceWriter,
    UsageError,
    __version__,
)

from ._errors import ReplayError
from ._outcomes import OutcomeSink
from ._progress import LagHealth, Live, Stats
from ._schedule import DryRun, Plan, Selection, Slot, Timing, check_positive
from ._sender import Clock, Exchange, LanePool, send_one
from ._shaping import Prepared, Shaper, parse_seed, public_target

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["ReplayConfig", "ReplayResult", "dry_run", "replay", "replay_async"]

# Bodies prepared ahead of the dispatcher: enough to ride out a slow batch (a frame of blobs to
# decompress), few enough that 512² uploads stay within tens of MB.
AHEAD = 64
BATCH = 16
# The GIL switch interval during a replay. When the event loop needs the GIL while the body
# producer or the outcome thread runs Python code, it waits up to this long (default 5 ms, a
# send lag that would show in every p99).
SWITCH_INTERVAL = 0.0005
# Longest the dispatcher waits for the producer's first bodies before starting the clock.
PRIME_TIMEOUT = 5.0
REFRESH_S = 0.25
START_DELAY_NS = 50_000_000


@dataclass
class ReplayConfig:
    """Everything a replay needs; built by the command line or by a caller."""

    trace: Path
    target: str
    output: Path | None = None
    timing: Timing = field(default_factory=Timing)
    selection: Selection = field(default_factory=Selection)
    headers: Sequence[tuple[str, str]] = ()
    sets: Sequence[tuple[str, str]] = ()
    seed: str = "keep"
    model: str | None = None
    timeout: float = 300.0
    drain: float = 10.0
    keep_images: bool = True
    force: bool = False
    handle_signals: bool = False
    console: Console | None = None
    """Where the live progress bar goes (stderr); None shows none."""

    def __post_init__(self) -> None:
        check_positive(self.timeout, "--timeout")
        if self.drain < 0:
            raise UsageError("--warmup and --drain cannot be negative")
        parse_seed(self.seed)

    def shaper(self) -> Shaper:
        from ._shaping import parse_seed

        return Shaper(
            target=self.target,
            headers=self.headers,
            sets=self.sets,
            seed=parse_seed(self.seed),
            model=self.model,
        )

    def options(self, shaper: Shaper) -> dict[str, Any]:
        """The options as written to the run header: header names, never their values."""
        out: dict[str, Any] = {**self.timing.options(), **self.selection.options()}
        out.update(
            set=dict(self.sets),
            seed=shaper.seed.describe(),
            headers=[name for name, _ in self.headers],
            timeout=self.timeout,
            drain=self.drain,
            images=self.keep_images,
        )
        if self.model is not None:
            out["model"] = self.model
        return out


@dataclass
class ReplayResult:
    """What a replay did, for the summary, `--json` and the exit code."""

    output: Path
    stats: Stats
    lag: LagHealth
    interrupted: bool
    duration_s: float
    planned_rate: float | None
    peak_in_flight: int
    lanes: int

    @property
    def achieved_rate(self) -> float:
        return self.stats.achieved_rate()

    @property
    def nothing_connected(self) -> bool:
        return self.stats.done > 0 and self.stats.connected == 0

    def as_dict(self) -> dict[str, Any]:
        s = self.stats
        return {
            "output": str(self.output),
            "interrupted": self.interrupted,
            "planned": s.planned,
            "sent": s.sent,
            "completed": s.done,
            "warmup": s.warmup,
            "errors": s.errors,
            "statuses": dict(s.statuses),
            "error_kinds": dict(s.error_kinds),
            "duration_s": self.duration_s,
            "planned_rate": self.planned_rate,
            "achieved_rate": self.achieved_rate,
            "peak_in_flight": self.peak_in_flight,
            "lanes": self.lanes,
            "latency_ms": {
                which: {f"p{q}": s.latency_ms(which, q) for q in (50, 90, 99)}
                for which in ("intended", "service")
            },
            "lag": self.lag.as_dict(),
            "bytes_up": s.bytes_up,
            "bytes_down": s.bytes_down,
        }


def _open(config: ReplayConfig) -> tuple[TraceReader, Shaper, Plan]:
    """Validate everything that can be validated before a byte is sent."""
    shaper = config.shaper()
    if config.output is not None and config.output.exists() and not config.force:
        raise OutputExists(config.output, what="-o")
    reader = TraceReader(config.trace)
    try:
        if reader.kind != "trace" and reader.kind != "run":
            raise ReplayError(f"{config.trace}: not a trace (kind {reader.kind!r})")
        plan = Plan(reader, config.selection, config.timing, shaper)
        plan.run_survey()
    except BaseException:
        reader.close()
        raise
    return reader, shaper, plan


def dry_run(config: ReplayConfig) -> DryRun:
    """The schedule's duration, rates and request mix; nothing is sent or written."""
    reader, _, plan = _open(config)
    with reader:
        return plan.dry_run()


def replay(config: ReplayConfig) -> ReplayResult:
    """Run a replay to the end (or until interrupted) and write its run file."""
    if config.output is None:
        raise UsageError("replay needs an output run file: pass -o RUN")
    reader, shaper, plan = _open(config)
    with reader, _quiet_interpreter():
        return anyio.run(_run, config, reader, shaper, plan)


async def replay_async(config: ReplayConfig) -> ReplayResult:
    """`replay` for callers already inside an event loop (the trace is read in threads)."""
    if config.output is None:
        raise UsageError("replay needs an output run file: pass -o RUN")
    reader, shaper, plan = await anyio.to_thread.run_sync(_open, config)
    with reader, _quiet_interpreter():
        return await _run(config, reader, shaper, plan)


async def _run(
    config: ReplayConfig, reader: TraceReader, shaper: Shaper, plan: Plan
) -> ReplayResult:
    try:
        return await _Replay(config, reader, shaper, plan).run()
    except Exception as exc:
        # A task group wraps errors in an ExceptionGroup; the user should see the TraceError.
        inner = _trace_error_in(exc)
        if inner is None or inner is exc:
            raise
        raise inner from None


def _trace_error_in(exc: BaseException) -> TraceError | None:
    if isinstance(exc, TraceError):
        return exc
    for member in getattr(exc, "exceptions", ()):
        found = _trace_error_in(member)
        if found is not None:
            return found
    return None


@contextmanager
def _quiet_interpreter() -> Iterator[None]:
    """Fewer pauses of the event loop: a short GIL switch interval, and a frozen heap.

    `gc.freeze()` moves everything allocated so far (modules, the trace index) out of the
    collector's sight, so the full collections a long replay triggers stay short.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        sys.setswitchinterval(interval)


async def _warm_up() -> None:
    """Pay the one-off costs of a first request (lazy imports in httpx's stack) before t0."""
    transport = httpx.MockTransport(lambda request: httpx.Response(204))
    async with httpx.AsyncClient(transport=transport) as client:
        await client.post("http://warm.up/", content=b"x")
    import h11  # noqa: F401 - imported by the first real connection otherwise
    import httpcore._backends.anyio  # noqa: F401


class _Replay:
    def __init__(self, config: ReplayConfig, reader: TraceReader, shaper: Shaper, plan: Plan):
        self.config = config
        self.reader = reader
        self.shaper = shaper
        self.plan = plan
        self.timing = config.timing
        self.stats = Stats(planned=plan.total)
        limit = self.timing.concurrency if self.timing.closed else self.timing.max_inflight
        self.lanes = LanePool(limit)
        self.interrupted = False
        self.clock = Clock()
        self._primed = anyio.Event()
        self._dispatch_scope = anyio.CancelScope()
        self._senders: TaskGroup | None = None
        self._sink: OutcomeSink | None = None
        self._trace_digest = ""

    async def run(self) -> ReplayResult:
        config = self.config
        assert config.output is not None
        send, receive = anyio.create_memory_object_stream[tuple[Slot, Prepared]](AHEAD)
        # Before the producer starts: the reader's file is then used by one thread at a time
        # (a trace without an index is read once more to compute its digest).
        self._trace_digest = await anyio.to_thread.run_sync(self.reader.trace_digest)
        async with anyio.create_task_group() as background:
            background.start_soon(self._produce, send)
            if config.handle_signals:
                background.start_soon(self._watch_signals)
            with anyio.move_on_after(PRIME_TIMEOUT):
                await self._primed.wait()
            await _warm_up()
            # t0 lies a little ahead, so the header can name it and the writer, outcome thread
            # and warm-up are ready before the first deadline.
            self.clock = Clock(start_in_ns=START_DELAY_NS)
            writer = TraceWriter(
                config.output,
                self._header(),
                force=config.force,
                redaction=Redaction(redact=[name for name, _ in config.headers]),
            )
            try:
                self._sink = OutcomeSink(writer, keep_images=config.keep_images)
                live = self._live()
                if live is not None:
                    with live.shown():
                        background.start_soon(self._refresh, live)
                        await self._dispatch(receive)
                        live.refresh(self.stats, self.lanes.in_flight, self.clock.now())
                else:
                    await self._dispatch(receive)
                background.cancel_scope.cancel()
            finally:
                await self.lanes.aclose()  # shielded: runs even when cancelled
                try:
                    if self._sink is not None:
                        self._sink.close()  # every outcome handed over is written first
                finally:
                    result = self._finish(writer)
                    writer.close()
        return result

    # -- producing ----------------------------------------------------------------------------

    async def _produce(self, send: MemoryObjectSendStream[tuple[Slot, Prepared]]) -> None:
        slots = self.plan.slots()

        def batch() -> list[tuple[Slot, Prepared]]:
            return [
                (slot, self.shaper.prepare(slot.request, slot.loop, self.reader.blob))
                for slot in islice(slots, BATCH)
            ]

        async with send:
            while True:
                items = await anyio.to_thread.run_sync(batch)
                if not items:
                    break
                for item in items:
                    if send.statistics().current_buffer_used >= AHEAD - 1:
                        self._primed.set()
                    try:
                        await send.send(item)
                    except anyio.BrokenResourceError:
                        return  # the dispatcher stopped (interrupted): nothing more is wanted
        self._primed.set()

    # -- dispatching ----------------------------------------------------------------------------

    async def _dispatch(self, receive: MemoryObjectReceiveStream[tuple[Slot, Prepared]]) -> None:
        closed = self.timing.closed
        await self.clock.wait_until(0)
        async with anyio.create_task_group() as senders:
            self._senders = senders
            with self._dispatch_scope, receive:
                while True:
                    client: httpx.AsyncClient | None = None
                    if closed:
                        # Acquire first: in a closed loop a send is due the moment a slot frees,
                        # so a late body from the producer shows up as lag.
                        client = await self.lanes.acquire()
                        intended = self.clock.now()
                    try:
                        slot, prepared = await receive.receive()
                    except anyio.EndOfStream:
                        if client is not None:
                            self.lanes.release(client)
                        break
                    if not closed:
                        assert slot.intended_ns is not None
                        intended = slot.intended_ns
                        await self.clock.wait_until(intended)
                        client = await self.lanes.acquire()
                    assert client is not None
                    exchange = Exchange(
                        seq=slot.seq,
                        request_id=slot.request.id,
                        loop=slot.loop,
                        warmup=slot.warmup,
                        intended_ns=intended,
                        attempt_ns=self.clock.now(),
                    )
                    self.stats.on_dispatch()
                    senders.start_soon(self._send, client, prepared, exchange)
            if self.interrupted:
                await self._drain(senders)

    async def _send(
        self, client: httpx.AsyncClient, prepared: Prepared, exchange: Exchange
    ) -> None:
        try:
            await send_one(client, prepared, exchange, self.clock, self.config.timeout)
        finally:
            self.lanes.release(client)
            self.stats.on_done(exchange)
            assert self._sink is not None
            self._sink.put(exchange)

    async def _drain(self, senders: TaskGroup) -> None:
        with anyio.move_on_after(self.config.drain):
            await self.lanes.idle()
        # Whatever is still in flight is recorded as aborted by send_one.
        senders.cancel_scope.cancel()

    def stop(self) -> None:
        """Stop sending; requests in flight get --drain seconds to finish."""
        self.interrupted = True
        self._dispatch_scope.cancel()

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                if not self.interrupted:
                    self._say(
                        f"stopping: waiting up to {self.config.drain:g} s for "
                        f"{self.lanes.in_flight} requests in flight (Ctrl-C again to abort them)"
                    )
                    self.stop()
                elif self._senders is not None:
                    self._senders.cancel_scope.cancel()

    # -- reporting ------------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        if self.config.console is not None:
            self.config.console.print(text)

    def _live(self) -> Live | None:
        console = self.config.console
        if console is None or not console.is_terminal:
            return None
        return Live(console, self.plan.total)

    async def _refresh(self, live: Live) -> None:
        while True:
            await anyio.sleep(REFRESH_S)
            live.refresh(self.stats, self.lanes.in_flight, self.clock.now())

    def _header(self) -> Header:
        config = self.config
        return Header(
            kind="run",
            source="replay",
            tool_version=__version__,
            trace_digest=self._trace_digest,
            trace_path=str(config.trace),
            target=public_target(self.shaper.url),
            options=config.options(self.shaper),
            start_wall_ns=self.clock.t0_wall,
            metadata={"planned": self.plan.total},
        )

    def _planned_rate(self) -> float | None:
        if self.timing.mode == "rate":
            return self.timing.rate
        if self.timing.mode == "original" and self.plan.total > 1:
            survey = self.plan.survey
            span = (survey.period_ns * (self.config.selection.loop - 1) + survey.span_ns) / 1e9
            return (self.plan.total - 1) / (span / self.timing.speed) if span > 0 else None
        return None

    def _finish(self, writer: TraceWriter) -> ReplayResult:
        duration = self.clock.now() / 1e9
        lag = self.stats.lag_health(self.lanes.waits if self.timing.max_inflight else 0)
        result = ReplayResult(
            output=writer.path,
            stats=self.stats,
            lag=lag,
            interrupted=self.interrupted,
            duration_s=duration,
            planned_rate=self._planned_rate(),
            peak_in_flight=self.lanes.peak,
            lanes=self.lanes.lanes,
        )
        summary = result.as_dict()
        summary.pop("output")
        writer.note(finished_ns=time.time_ns(), **summary)
        return result
