"""One replay from start to finish: check everything, then hand the plan to the dispatchers.

`replay` sends to one target and writes one run file; `replay_interleaved` sends one schedule
to several named targets side by side and writes one run file per target into a directory.
Both check every option, the trace and the outputs before a byte is sent.

The sends run in `workers` dispatch processes of their own (`_workers`, default one), whose
event loops only keep deadlines and move socket bytes; this process builds the bodies and
writes the run files. With `workers=0` everything runs in this process (`_local`).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from traces import OutputExists, TraceError, TraceReader, UsageError

from ._errors import ReplayError
from ._heap import keep_large_buffers
from ._local import run_local
from ._partition import Partition, PartPlan
from ._produce import Feed, plan_feed
from ._progress import Stats
from ._results import InterleavedResult, ReplayResult
from ._runfiles import Group, RunFile, RunFiles
from ._schedule import DryRun, Plan, Selection, Timing, check_positive
from ._shaping import Shaper, parse_seed, public_target
from ._start import StartAt
from ._targets import Target, new_group_id, new_order_seed
from ._worker import WorkerSpec
from ._workers import run_workers

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "InterleavedResult",
    "ReplayConfig",
    "ReplayResult",
    "dry_run",
    "replay",
    "replay_async",
    "replay_interleaved",
    "replay_interleaved_async",
]

# The GIL switch interval during a replay. When the event loop needs the GIL while the body
# producer or the outcome thread runs Python code, it waits up to this long (default 5 ms, a
# send lag that would show in every p99).
SWITCH_INTERVAL = 0.0005


@dataclass
class ReplayConfig:
    """Everything a replay needs; built by the command line or by a caller.

    One target: `target` (a base URL) and `output` (the run file). Interleaved: `targets`
    (named, at least one) and `output` (a directory that receives NAME.imgtrace per target),
    with `order_seed` fixing the per-request order among them (drawn when None).
    """

    trace: Path
    target: str = ""
    output: Path | None = None
    timing: Timing = field(default_factory=Timing)
    selection: Selection = field(default_factory=Selection)
    headers: Sequence[tuple[str, str]] = ()
    queries: Sequence[tuple[str, str]] = ()
    """Query parameters to set (`--query`); like headers, their values never reach the run."""
    sets: Sequence[tuple[str, str]] = ()
    seed: str = "keep"
    model: str | None = None
    timeout: float = 300.0
    drain: float = 10.0
    keep_images: bool = True
    force: bool = False
    handle_signals: bool = False
    salvage: bool = False
    """Replay a damaged trace's requests up to the damage (with a warning) instead of refusing."""
    console: Console | None = None
    """Where the live progress bar goes (stderr); None shows none."""
    targets: Sequence[Target] = ()
    order_seed: int | None = None
    shard: Partition | None = None
    """Send only this part of the schedule (`--shard I/N`), at the unsharded offsets."""
    start_at: StartAt | None = None
    """Offset zero at this wall-clock instant (`--start-at`), shared by every shard."""
    group: str | None = None
    """The id of the shards of one replay; derived from the trace and the start when None."""
    workers: int = 1
    """Dispatch processes splitting the schedule (send k to worker k mod N); 0 sends from
    this process."""
    realtime: bool = True
    """Ask for real-time scheduling of the dispatch workers, where the system grants it."""

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int):
            raise UsageError(f"--workers {self.workers!r}: expected a whole number")
        if self.workers < 0:
            raise UsageError(f"--workers {self.workers}: expected 0 or more")
        if self.workers > 1 and self.timing.closed:
            raise UsageError(
                f"--workers {self.workers} splits a schedule; a closed loop (--concurrency) has "
                "none: use --workers 1"
            )
        check_positive(self.timeout, "--timeout")
        if self.drain < 0:
            raise UsageError("--warmup and --drain cannot be negative")
        parse_seed(self.seed)
        if self.targets and self.target:
            raise UsageError("--target: give either one plain URL or NAME=URL targets, not both")
        if self.order_seed is not None and not self.targets:
            raise UsageError(
                "--order-seed orders interleaved targets: give them as --target NAME=URL"
            )
        if self.order_seed is not None and self.order_seed < 0:
            raise UsageError(f"--order-seed {self.order_seed}: expected a non-negative integer")
        if self.group is not None and (self.shard is None or not self.group.strip()):
            raise UsageError("--group: a non-empty id for the shards of one replay (with --shard)")

    def shaper(self, target: str | None = None) -> Shaper:
        return Shaper(
            target=self.target if target is None else target,
            headers=self.headers,
            queries=self.queries,
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
            query=[name for name, _ in self.queries],
            timeout=self.timeout,
            drain=self.drain,
            images=self.keep_images,
        )
        if self.model is not None:
            out["model"] = self.model
        if self.shard is not None:
            out["shard"] = self.shard.label
        if self.start_at is not None:
            out.update(start_at_ns=self.start_at.wall_ns, start_grace=self.start_at.grace_s)
        return out

    @property
    def lane_limit(self) -> int | None:
        """Requests in flight per target: the closed loop's N, or --max-inflight."""
        return self.timing.concurrency if self.timing.closed else self.timing.max_inflight


def _check_outputs(config: ReplayConfig) -> None:
    output = config.output
    if output is None:
        return
    if not config.targets:
        if output.exists() and not config.force:
            raise OutputExists(output, what="-o")
        return
    if output.exists() and not output.is_dir():
        raise UsageError(
            f"-o {output}: it is a file, and NAME=URL targets need a directory (one run file "
            "per target, DIR/NAME.imgtrace): choose a directory"
        )
    for target in config.targets:
        path = target.run_path(output)
        if path.exists() and not config.force:
            raise OutputExists(path, what="-o DIR")


def _open(config: ReplayConfig) -> tuple[TraceReader, list[Shaper], Plan]:
    """Validate everything that can be validated before a byte is sent."""
    if config.targets:
        shapers = [config.shaper(target.url) for target in config.targets]
    else:
        shapers = [config.shaper()]
    _check_outputs(config)
    if config.start_at is not None:
        config.start_at.check_not_passed()  # before the survey, which may take a while
    reader = TraceReader(config.trace, salvage=config.salvage)
    try:
        if reader.kind != "trace" and reader.kind != "run":
            raise ReplayError(f"{config.trace}: not a trace (kind {reader.kind!r})")
        plan = (
            Plan(reader, config.selection, config.timing, shapers[0])
            if config.shard is None
            else PartPlan(reader, config.selection, config.timing, shapers[0], config.shard)
        )
        plan.run_survey()
    except BaseException:
        reader.close()
        raise
    return reader, shapers, plan


def dry_run(config: ReplayConfig) -> DryRun:
    """The schedule's duration, rates and request mix; nothing is sent or written."""
    reader, _, plan = _open(config)
    with reader:
        return plan.dry_run()


def _run_files(config: ReplayConfig, shapers: list[Shaper], plan: Plan, digest: str) -> RunFiles:
    assert config.output is not None
    workers = config.workers
    if not config.targets:
        run = RunFile(None, shapers[0], config.output, Stats(planned=plan.total))
        return RunFiles(config, plan, [run], None, digest, workers)
    group = Group(
        group=new_group_id(),
        order_seed=new_order_seed() if config.order_seed is None else config.order_seed,
        targets={
            t.name: public_target(s.url) for t, s in zip(config.targets, shapers, strict=True)
        },
    )
    runs = [
        RunFile(t.name, shaper, t.run_path(config.output), Stats(planned=plan.total))
        for t, shaper in zip(config.targets, shapers, strict=True)
    ]
    return RunFiles(config, plan, runs, group, digest, workers)


def _feeds(
    config: ReplayConfig,
    reader: TraceReader,
    shapers: list[Shaper],
    plan: Plan,
    order_seed: int,
    extra_readers: list[TraceReader],
) -> list[Feed]:
    """One feed for all targets; in a closed loop one per target, since each target's loop
    runs at its own server's pace and must not wait for the others' bodies."""
    if not (config.timing.closed and len(shapers) > 1):
        return [plan_feed(plan, reader, shapers, order_seed)]
    feeds = [plan_feed(plan, reader, shapers[:1], order_seed)]
    for shaper in shapers[1:]:
        other = TraceReader(config.trace)
        extra_readers.append(other)
        other_plan = (
            PartPlan(other, plan.selection, plan.timing, shaper, plan.part)
            if isinstance(plan, PartPlan)
            else Plan(other, plan.selection, plan.timing, shaper)
        )
        other_plan.survey = plan.survey
        feeds.append(plan_feed(other_plan, other, [shaper], order_seed))
    return feeds


def _checked(config: ReplayConfig, interleaved: bool) -> None:
    if interleaved and not config.targets:
        raise UsageError("an interleaved replay needs named targets (--target NAME=URL)")
    if not interleaved and config.targets:
        raise UsageError("named targets (--target NAME=URL) are an interleaved replay")
    if config.output is None:
        what = "a directory: pass -o DIR" if interleaved else "an output run file: pass -o RUN"
        raise UsageError(f"replay needs {what}")


def _grouped(files: RunFiles, results: list[ReplayResult]) -> InterleavedResult:
    assert files.group is not None
    return InterleavedResult(
        group=files.group.group,
        order_seed=files.group.order_seed,
        runs={run.name or "": result for run, result in zip(files.runs, results, strict=True)},
    )


def replay(config: ReplayConfig) -> ReplayResult:
    """Run a replay to the end (or until interrupted) and write its run file."""
    _checked(config, interleaved=False)
    reader, shapers, plan = _open(config)
    with reader, _quiet_interpreter():
        return anyio.run(_run, config, reader, shapers, plan)[1][0]


def replay_interleaved(config: ReplayConfig) -> InterleavedResult:
    """Send one schedule to every named target side by side; one run file per target."""
    _checked(config, interleaved=True)
    reader, shapers, plan = _open(config)
    with reader, _quiet_interpreter():
        return _grouped(*anyio.run(_run, config, reader, shapers, plan))


async def replay_async(config: ReplayConfig) -> ReplayResult:
    """`replay` for callers already inside an event loop (the trace is read in threads)."""
    _checked(config, interleaved=False)
    reader, shapers, plan = await anyio.to_thread.run_sync(_open, config)
    with reader, _quiet_interpreter():
        return (await _run(config, reader, shapers, plan))[1][0]


async def replay_interleaved_async(config: ReplayConfig) -> InterleavedResult:
    """`replay_interleaved` for callers already inside an event loop."""
    _checked(config, interleaved=True)
    reader, shapers, plan = await anyio.to_thread.run_sync(_open, config)
    with reader, _quiet_interpreter():
        return _grouped(*await _run(config, reader, shapers, plan))


async def _run(
    config: ReplayConfig, reader: TraceReader, shapers: list[Shaper], plan: Plan
) -> tuple[RunFiles, list[ReplayResult]]:
    # Before the bodies are built: the reader's file is then used by one thread at a time
    # (a trace without an index is read once more to compute its digest).
    digest = await anyio.to_thread.run_sync(reader.trace_digest)
    files = _run_files(config, shapers, plan, digest)
    seed = files.group.order_seed if files.group is not None else 0
    extra_readers: list[TraceReader] = []
    try:
        feeds = await anyio.to_thread.run_sync(
            _feeds, config, reader, shapers, plan, seed, extra_readers
        )
        async with anyio.create_task_group() as background:
            if config.workers == 0:
                results = await run_local(files, feeds, background)
            else:
                results = await run_workers(files, _specs(config, shapers), feeds, background)
            background.cancel_scope.cancel()
        return files, results
    except Exception as exc:
        # A task group wraps errors in an ExceptionGroup; the user should see the TraceError.
        inner = _trace_error_in(exc)
        if inner is None or inner is exc:
            raise
        raise inner from None
    finally:
        for other in extra_readers:
            other.close()


def _specs(config: ReplayConfig, shapers: list[Shaper]) -> list[WorkerSpec]:
    not_realtime = _not_realtime(config)
    return [
        WorkerSpec(
            index=index,
            urls=tuple(str(shaper.url) for shaper in shapers),
            timing=config.timing,
            lane_limit=config.lane_limit,
            timeout=config.timeout,
            drain=config.drain,
            not_realtime=not_realtime,
        )
        for index in range(config.workers)
    ]


def _not_realtime(config: ReplayConfig) -> str | None:
    """Why the workers are not to ask for real-time scheduling; None when they are.

    Real-time workers take a core whenever they wake, ahead of everything else; as many of them
    as there are cores leave the coordinator, which builds their bodies and stores their
    answers, only the gaps between sends (at 2,000/s on 2 cores, two real-time workers fell
    hundreds of ms behind where two normal ones kept up). So they ask only while a core is left.
    """
    if not config.realtime:
        return "--no-realtime"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if config.workers >= cores:
        return (
            f"--workers {config.workers} with {cores} core{'s' * (cores != 1)}: real-time "
            "scheduling only with a core left for the rest"
        )
    return None


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
    """Fewer pauses of the event loop: a short GIL switch interval, and a frozen heap; and
    large buffers reused from the heap (`_heap`).

    `gc.freeze()` moves everything allocated so far (modules, the trace index) out of the
    collector's sight, so the full collections a long replay triggers stay short.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    keep_large_buffers()
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        sys.setswitchinterval(interval)
