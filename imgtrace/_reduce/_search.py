"""The search: check the full trace, minimize it with ddmin, confirm and write the result.

Every time a smaller reproducer is found it is written to the output at once (to a temporary
file, then renamed), so Ctrl-C, a budget or a crash leave the smallest one found so far.

A flaky failure can miss any test. A missed candidate costs the search a step, and the next
pass tests it again; a missed check of the full trace would end the search before it starts.
So the full trace gets every chance the search gives a candidate before it settles (`settle`
rounds of `--tries`), and a refusal says which failure rates the replays rule out.
"""

from __future__ import annotations

import math
import os
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traces import OutputExists, Request, TraceReader, UsageError

from ._attempts import Attempt, AttemptRunner, RunnerOptions, write_candidate
from ._ddmin import minimize
from ._errors import NotReproduced, ReduceError
from ._predicate import Predicate

__all__ = [
    "Progress",
    "ReduceConfig",
    "ReduceResult",
    "never_rate_bound",
    "reduce_trace",
    "wilson_interval",
]

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class ReduceConfig:
    """A search, as `imgtrace reduce` builds it; checks itself."""

    trace: Path
    output: Path
    predicate: Predicate
    runner: RunnerOptions
    tries: int = 1
    min_rate: float | None = None
    """With it, a candidate reproduces when at least this fraction of `tries` replays do."""
    confirm: int = 3
    """Replays of the result that measure its reproduction rate."""
    budget_s: float | None = None
    max_attempts: int | None = None
    force: bool = False
    command: str = ""
    """The command line that started the search, for the result's metadata."""

    def __post_init__(self) -> None:
        if self.tries < 1:
            raise UsageError("--tries must be >= 1")
        if self.min_rate is not None and not 0 < self.min_rate <= 1:
            raise UsageError("--min-rate must be in (0, 1]")
        if self.confirm < 0:
            raise UsageError("--confirm must be >= 0")
        if self.budget_s is not None and not self.budget_s > 0:
            raise UsageError("--budget must be > 0")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise UsageError("--max-attempts must be >= 1")
        if self.predicate.needs_images and self.runner.baseline is None:
            raise UsageError("image:changed needs a baseline run: pass --baseline RUN")
        if self.runner.baseline is not None and not self.runner.baseline.is_file():
            raise UsageError(f"--baseline {self.runner.baseline}: no such file")
        if self.output.exists() and not self.force:
            raise OutputExists(self.output, what="-o MIN")
        if self.output.resolve() == self.trace.resolve():
            raise UsageError("-o must not be the trace being reduced")


@dataclass
class Progress:
    """Where the search stands, handed to the progress callback after every attempt."""

    original: int
    best: int
    attempts: int
    elapsed_s: float
    last: Attempt | None = None
    phase: str = "search"


@dataclass
class ReduceResult:
    """What the search found; `as_dict` is the `--json` summary."""

    output: Path
    original: int
    kept: list[str]
    attempts: int
    search_attempts: int
    reproduced: int
    confirmations: int
    elapsed_s: float
    stopped: str = ""
    """Why the search ended before a 1-minimal result: budget, max-attempts, interrupted."""
    hits: list[str] = field(default_factory=list)
    reproduce_command: str = ""

    @property
    def rate(self) -> float | None:
        return self.reproduced / self.confirmations if self.confirmations else None

    @property
    def rate_interval(self) -> tuple[float, float] | None:
        """The 95% interval of the reproduction rate: a few confirmations say little."""
        if not self.confirmations:
            return None
        return wilson_interval(self.reproduced, self.confirmations)

    def as_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "original_requests": self.original,
            "kept_requests": len(self.kept),
            "kept": self.kept,
            "attempts": self.attempts,
            "search_attempts": self.search_attempts,
            "reproduced": self.reproduced,
            "confirmations": self.confirmations,
            "reproduction_rate": self.rate,
            "reproduction_rate_95": self.rate_interval,
            "elapsed_s": self.elapsed_s,
            "stopped": self.stopped or None,
            "hits": self.hits,
            "reproduce": self.reproduce_command,
        }


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval for a binomial rate: sound at a handful of trials and at 0 or
    all of them, where the normal approximation collapses to a point."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError("need 0 <= successes <= trials and trials >= 1")
    share = successes / trials
    scale = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / scale
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / scale
    # At 0 or all of them an end is exactly 0 or 1; rounding must not move it past the share.
    low = 0.0 if successes == 0 else min(share, centre - half)
    high = 1.0 if successes == trials else max(share, centre + half)
    return low, high


def never_rate_bound(replays: int, confidence: float = 0.95) -> float:
    """The highest failure rate that `replays` misses in a row leave plausible: a failure
    this frequent or more would have shown at least once with probability `confidence`."""
    return 1 - math.pow(1 - confidence, 1 / replays)


class _Stop(Exception):
    """The search must end now (budget or attempts spent); the best so far is kept."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Search:
    def __init__(
        self,
        config: ReduceConfig,
        reader: TraceReader,
        requests: list[Request],
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        self.config = config
        self.reader = reader
        self.requests = requests
        self.on_progress = on_progress
        self.runner = AttemptRunner(reader, config.predicate, config.runner)
        self.started = time.monotonic()
        self.best: list[Request] = requests
        self.best_hits: list[str] = []
        self.phase = "check"
        self.flaky = config.tries > 1 or config.min_rate is not None
        self.settle = 2 if self.flaky else 1
        """Passes in a row that must remove nothing before the search ends."""
        rate = config.min_rate
        self.needed = 1 if rate is None else math.ceil(rate * config.tries - 1e-9)
        """Replays of one test's --tries that must reproduce."""
        self.last_seen = ""

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def attempt(self, candidate: Sequence[Request]) -> Attempt:
        config = self.config
        if config.max_attempts is not None and self.runner.attempts >= config.max_attempts:
            raise _Stop("max-attempts")
        if config.budget_s is not None and self.elapsed() >= config.budget_s:
            raise _Stop("budget")
        result = self.runner.run(candidate)
        if self.on_progress is not None:
            self.on_progress(
                Progress(
                    original=len(self.requests),
                    best=len(self.best),
                    attempts=self.runner.attempts,
                    elapsed_s=self.elapsed(),
                    last=result,
                    phase=self.phase,
                )
            )
        return result

    def fails(self, candidate: Sequence[Request]) -> bool:
        """Does the candidate reproduce, within --tries (and --min-rate)?"""
        return self._test(candidate)[0]

    def _test(self, candidate: Sequence[Request]) -> tuple[bool, int, int]:
        """(reproduced, hits, replays) of one test of the candidate, up to --tries replays."""
        tries, needed = self.config.tries, self.needed
        hits = 0
        for done in range(1, tries + 1):
            attempt = self.attempt(candidate)
            self.last_seen = attempt.seen
            if attempt.reproduced:
                hits += 1
                if hits >= needed:
                    self._found(candidate, attempt)
                    return True, hits, done
            if hits + (tries - done) < needed:
                return False, hits, done
        return False, hits, tries

    def _found(self, candidate: Sequence[Request], attempt: Attempt) -> None:
        if len(candidate) < len(self.best) or not self.best_hits:
            self.best = list(candidate)
            self.best_hits = attempt.hits
            self.write_best()

    def write_best(self, **extra: object) -> None:
        config = self.config
        temporary = config.output.with_name(f".{config.output.name}.partial")
        metadata: dict[str, object] = {
            "reduced_from": str(config.trace),
            "original_trace_digest": self.reader.trace_digest(),
            "original_requests": len(self.requests),
            "predicate": str(config.predicate),
            "attempts": self.runner.attempts,
            "search_command": config.command,
            **extra,
        }
        write_candidate(
            temporary,
            self.best,
            self.reader,
            compress_gaps_s=config.runner.compress_gaps_s,
            metadata=metadata,
        )
        os.replace(temporary, config.output)

    def check_full_trace(self) -> None:
        self.phase = "check"
        hits = replays = 0
        for _ in range(self.settle):
            reproduced, round_hits, round_replays = self._test(self.requests)
            if reproduced:
                return
            hits, replays = hits + round_hits, replays + round_replays
        raise NotReproduced(self._refusal(hits, replays))

    def _refusal(self, hits: int, replays: int) -> str:
        config = self.config
        if replays == 1:
            how = "replayed once"
        elif hits == 0:
            how = (
                f"replayed {replays} times, never: if it fails at all, it does in under "
                f"{never_rate_bound(replays):.0%} of replays (95% confidence)"
            )
        else:
            how = (
                f"reproduced in {hits} of {replays} replays, never in {self.needed} of "
                f"{config.tries} as --min-rate {config.min_rate:g} asks"
            )
        advice = "check --target, --until and --speed"
        if self.flaky:
            advice += ", or raise --tries for a rarer failure"
        return (
            f"the full trace ({len(self.requests)} requests) does not satisfy "
            f"{str(config.predicate)!r} ({how}; seen {self.last_seen or 'nothing'}): "
            f"nothing to reduce; {advice}"
        )

    def confirm(self) -> tuple[int, int]:
        self.phase = "confirm"
        reproduced = 0
        for _ in range(self.config.confirm):
            if self.runner.run(self.best).reproduced:
                reproduced += 1
        return reproduced, self.config.confirm


def reproduce_command(config: ReduceConfig, repeat: int) -> str:
    """The command that replays the result and says how often it fails."""
    run = config.output.with_name(config.output.stem + "-run.imgtrace")
    words = ["imgtrace", "replay", str(config.output), "--target", config.runner.target]
    if config.runner.speed != 1:
        words += ["--speed", f"{config.runner.speed:g}"]
    words += ["-o", str(run), "--repeat", str(repeat)]
    if config.runner.reset:
        words += ["--reset", config.runner.reset]
    return shlex.join(words)


def reduce_trace(
    config: ReduceConfig, on_progress: Callable[[Progress], None] | None = None
) -> ReduceResult:
    """Search for the smallest sub-trace that satisfies the predicate; write it to `output`."""
    with TraceReader(config.trace) as reader:
        if reader.kind != "trace":
            raise ReduceError(f"{config.trace} is a {reader.kind} file: reduce a trace")
        requests = sorted(reader.requests(), key=lambda request: request.offset_ns)
        if not requests:
            raise ReduceError(f"{config.trace} holds no requests: nothing to reduce")
        search = _Search(config, reader, requests, on_progress)
        try:
            return _run(search)
        finally:
            search.runner.close()


def _run(search: _Search) -> ReduceResult:
    config = search.config
    search.check_full_trace()
    stopped = ""
    search.phase = "search"
    try:
        with _keeping_best(search):
            minimize(search.requests, search.fails, settle=search.settle)
    except _Stop as stop:
        stopped = stop.reason
    except KeyboardInterrupt:
        stopped = "interrupted"
    search_attempts = search.runner.attempts
    reproduced, confirmations = 0, 0
    if stopped != "interrupted":
        try:
            with _keeping_best(search):
                reproduced, confirmations = search.confirm()
        except KeyboardInterrupt:
            stopped = "interrupted"
    result = ReduceResult(
        output=config.output,
        original=len(search.requests),
        kept=[request.id for request in search.best],
        attempts=search.runner.attempts,
        search_attempts=search_attempts,
        reproduced=reproduced,
        confirmations=confirmations,
        elapsed_s=search.elapsed(),
        stopped=stopped,
        hits=search.best_hits,
        reproduce_command=reproduce_command(config, max(config.confirm, 10)),
    )
    search.write_best(
        kept=len(search.best),
        reproduced=reproduced,
        confirmations=confirmations,
        stopped=stopped or None,
        reproduce=result.reproduce_command,
    )
    return result


@contextmanager
def _keeping_best(search: _Search) -> Iterator[None]:
    """A target gone down or a failing reset mid-search: say where the best so far is."""
    try:
        yield
    except ReduceError as exc:
        raise type(exc)(
            f"{exc}; the smallest reproducer so far ({len(search.best)} of "
            f"{len(search.requests)} requests) is kept in {search.config.output}"
        ) from None
