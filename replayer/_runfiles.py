"""The storing side of a replay: one run file per target, its counts, the progress bar.

Exchanges arrive here from the dispatch side (the event loop of this process, or the pipes of
the dispatch workers): `deliver` counts them and hands them to an `OutcomeSink`, whose thread
parses responses, extracts and hashes images and writes them. `close` writes every run's
summary note and returns the results.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from traces import Header, Interleave, Redaction, TraceWriter, __version__

from ._backlog import BODY_BUDGET
from ._outcomes import POLL_S, OutcomeSink
from ._progress import Live, Stats
from ._results import ReplayResult
from ._schedule import Plan
from ._sender import Clock, Exchange
from ._shaping import Shaper, public_target
from ._start import clock_at, scale_out_metadata
from ._wire import Counts

if TYPE_CHECKING:
    from ._runner import ReplayConfig

__all__ = ["Group", "RunFile", "RunFiles"]

# Without --start-at, t0 lies a little ahead of the moment the dispatchers are ready, so the
# headers can name it and the writers and outcome threads are ready before the first deadline.
START_DELAY_NS = 50_000_000


@dataclass(frozen=True)
class Group:
    """What makes a set of targets one interleaved replay (written to every run's header)."""

    group: str
    order_seed: int
    targets: dict[str, str]
    """Name to public base URL, in send-order index."""


@dataclass
class RunFile:
    """One target's storing side: where its run goes, and what it counted."""

    name: str | None
    shaper: Shaper
    output: Path
    stats: Stats
    counts: Counts = field(default_factory=Counts)
    writer: TraceWriter | None = None
    sink: OutcomeSink | None = None


class SharedOutcomes:
    """One outcome thread for every target of an interleaved replay.

    The outcome work (JSON, base64, hashing, compression) holds the GIL in steps; one thread per
    target would not write any faster, only take the GIL from the other threads more often.
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


class RunFiles:
    """Every target's run file of one replay, opened at t0 and closed with its summary."""

    def __init__(
        self,
        config: ReplayConfig,
        plan: Plan,
        runs: Sequence[RunFile],
        group: Group | None,
        trace_digest: str,
        workers: int,
    ) -> None:
        self.config = config
        self.plan = plan
        self.runs = list(runs)
        self.group = group
        self.trace_digest = trace_digest
        self.workers = workers
        self.clock = Clock()
        self.failures: list[str] = []
        """Dispatch workers that died, one line each (also in every run's summary)."""
        self.scheduling = "normal (sent from the main process)"
        """How the dispatch workers ran (`_priority`): one value, or each worker's."""
        self._outcomes: SharedOutcomes | None = None

    def new_clock(self) -> Clock:
        """The replay's clock: t0 at --start-at, or just ahead of now."""
        start_at = self.config.start_at
        return Clock(start_in_ns=START_DELAY_NS) if start_at is None else clock_at(start_at)

    def open(self, clock: Clock) -> None:
        self.clock = clock
        config = self.config
        redaction = Redaction(redact=[name for name, _ in config.headers])
        for run in self.runs:
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

    def deliver(self, index: int, exchange: Exchange) -> None:
        run = self.runs[index]
        run.stats.on_done(exchange)
        assert run.sink is not None
        run.sink.put(exchange)

    def update(self, counts: Sequence[Sequence[Counts]]) -> None:
        """The dispatch counts of every worker (each a list per target), summed per target."""
        for index, run in enumerate(self.runs):
            mine = [each[index] for each in counts]
            run.counts = Counts(
                sent=sum(c.sent for c in mine),
                in_flight=sum(c.in_flight for c in mine),
                peak=sum(c.peak for c in mine),
                lanes=sum(c.lanes for c in mine),
                waited=sum(c.waited for c in mine),
            )
            run.stats.sent = run.counts.sent

    def close(self, interrupted: bool) -> list[ReplayResult]:
        """Write everything delivered, each run's summary, and close the files."""
        if self._outcomes is not None:
            self._outcomes.close()
        failure: BaseException | None = None
        finished: list[ReplayResult] = []
        for run in self.runs:
            if run.writer is None:
                continue
            try:
                if run.sink is not None:
                    run.sink.close()  # every outcome handed over is written first
            except BaseException as exc:
                failure = failure or exc
            finally:
                finished.append(self._finish(run, run.writer, interrupted))
                run.writer.close()
        if failure is not None:
            raise failure
        return finished

    # -- progress -------------------------------------------------------------------------------

    def live(self) -> Live | None:
        console = self.config.console
        if console is None or not console.is_terminal:
            return None
        return Live(console, self.plan.total * len(self.runs))

    def in_flight(self) -> int:
        return sum(run.counts.in_flight for run in self.runs)

    def merged_stats(self) -> Stats:
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

    def refresh(self, live: Live) -> None:
        live.refresh(self.merged_stats(), self.in_flight(), self.clock.now())

    # -- header and summary ---------------------------------------------------------------------

    def _header(self, run: RunFile) -> Header:
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
            trace_digest=self.trace_digest,
            trace_path=str(config.trace),
            target=public_target(run.shaper.url),
            options=config.options(run.shaper),
            start_wall_ns=self.clock.t0_wall,
            metadata={
                "planned": self.plan.total,
                **scale_out_metadata(
                    config.shard, config.start_at, config.group, self.trace_digest, self.clock
                ),
                "workers": self.workers,
                "dispatch_scheduling": self.scheduling,
                # Past this many bytes of responses waiting to be stored, bodies are left out
                # (never waited for); the summary's `not_stored` says how many were.
                "store_budget_bytes": BODY_BUDGET,
            },
            interleave=interleave,
        )

    def _planned_rate(self) -> float | None:
        timing = self.config.timing
        if timing.mode == "rate":
            return timing.rate
        if timing.mode == "original" and self.plan.total > 1:
            survey = self.plan.survey
            span = (survey.period_ns * (self.config.selection.loop - 1) + survey.span_ns) / 1e9
            return (self.plan.total - 1) / (span / timing.speed) if span > 0 else None
        return None

    def _finish(self, run: RunFile, writer: TraceWriter, interrupted: bool) -> ReplayResult:
        counts = run.counts
        run.stats.sent = counts.sent
        lag = run.stats.lag_health(counts.waited if self.config.timing.max_inflight else 0)
        result = ReplayResult(
            output=writer.path,
            stats=run.stats,
            lag=lag,
            interrupted=interrupted,
            duration_s=self.clock.now() / 1e9,
            planned_rate=self._planned_rate(),
            peak_in_flight=counts.peak,
            lanes=counts.lanes,
            target=public_target(run.shaper.url),
            not_stored=run.sink.dropped if run.sink is not None else 0,
            workers=self.workers,
            failures=tuple(self.failures),
            scheduling=self.scheduling,
        )
        summary = result.as_dict()
        summary.pop("output")
        writer.note(finished_ns=time.time_ns(), **summary)
        return result
