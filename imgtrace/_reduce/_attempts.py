"""One attempt of a search: reset the target, replay a candidate sub-trace, test the predicate.

A candidate is a list of the original trace's requests. It is written as an ordinary trace
(its requests keep their relative timing, idle gaps optionally compressed, and only the blobs
they use), replayed with the public replayer API, and the run is read back into observations
for the predicate. `image:changed` compares the run's outputs with a baseline run through the
analyzer's image ladder.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

import replayer
from traces import (
    Header,
    Outcome,
    Request,
    TraceReader,
    TraceWriter,
    __version__,
    body_blobs,
)

from ._errors import ResetFailed, TargetDown
from ._predicate import ERROR_KINDS, Observation, Predicate, RunView

__all__ = ["Attempt", "AttemptRunner", "RunnerOptions", "write_candidate"]

NS = 1_000_000_000
_CHANGED = frozenset({"changed", "layout-differs"})


@dataclass(frozen=True)
class RunnerOptions:
    """How each candidate is replayed (typed, checked before the search starts)."""

    target: str
    speed: float = 1.0
    compress_gaps_s: float | None = None
    """Shrink every idle gap between consecutive requests to at most this many seconds."""
    timeout_s: float = 60.0
    reset: str | None = None
    baseline: Path | None = None

    def __post_init__(self) -> None:
        from traces import UsageError

        if not self.speed > 0:
            raise UsageError("--speed must be > 0")
        if self.compress_gaps_s is not None and self.compress_gaps_s < 0:
            raise UsageError("--compress-gaps must be >= 0 seconds")
        if not self.timeout_s > 0:
            raise UsageError("--timeout must be > 0 seconds")


@dataclass
class Attempt:
    """What one replay of a candidate came to."""

    number: int
    size: int
    reproduced: bool
    hits: list[str] = field(default_factory=list)
    seen: str = ""
    """A short account of the statuses and errors, for messages."""


def write_candidate(
    path: Path,
    requests: Sequence[Request],
    reader: TraceReader,
    *,
    compress_gaps_s: float | None,
    metadata: dict[str, object] | None = None,
) -> None:
    """Write `requests` as a trace: offsets from the first one, gaps capped, blobs copied."""
    header = Header(
        kind="trace",
        source="reduce",
        tool_version=__version__,
        metadata=dict(metadata or {}),
    )
    cap = None if compress_gaps_s is None else int(compress_gaps_s * NS)
    with TraceWriter(path, header, force=True) as writer:
        offset = 0
        previous: int | None = None
        for request in requests:
            if previous is not None:
                gap = max(0, request.offset_ns - previous)
                offset += gap if cap is None else min(gap, cap)
            previous = request.offset_ns
            for digest in body_blobs(request.body):
                if not writer.has_blob(digest):
                    writer.add_blob(reader.blob(digest), reader.blob_media_type(digest))
            # Recorded responses describe the original run, not this sub-trace: left out.
            writer.write(msgspec.structs.replace(request, offset_ns=offset, response=None))


class AttemptRunner:
    """Replays candidates one at a time in a scratch folder; counts every attempt."""

    def __init__(self, reader: TraceReader, predicate: Predicate, options: RunnerOptions) -> None:
        self.reader = reader
        self.predicate = predicate
        self.options = options
        self.attempts = 0
        self._scratch = tempfile.TemporaryDirectory(prefix="imgtrace-reduce-")
        self.folder = Path(self._scratch.name)

    def close(self) -> None:
        self._scratch.cleanup()

    def run(self, requests: Sequence[Request]) -> Attempt:
        """Reset, replay `requests` once, and test the predicate on the run."""
        self.attempts += 1
        self._reset()
        trace = self.folder / "candidate.imgtrace"
        run = self.folder / "candidate-run.imgtrace"
        write_candidate(trace, requests, self.reader, compress_gaps_s=self.options.compress_gaps_s)
        config = replayer.ReplayConfig(
            trace=trace,
            target=self.options.target,
            output=run,
            timing=replayer.Timing("original", speed=self.options.speed),
            timeout=self.options.timeout_s,
            keep_images=self.predicate.needs_images,
            force=True,
            drain=0.0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = replayer.replay(config)
        observations = _observations(run)
        if result.nothing_connected and not self._wants_connect_errors():
            raise TargetDown(
                f"the target {self.options.target} is down: not one of {len(observations)} "
                "requests could connect (start it, or check --target and --reset)"
            )
        view = RunView(observations, self._changed_images(run, requests))
        hits = self.predicate.hits(view)
        return Attempt(self.attempts, len(requests), bool(hits), hits, _seen(observations))

    def _wants_connect_errors(self) -> bool:
        return "connect" in str(self.predicate)

    def _reset(self) -> None:
        if self.options.reset:
            try:
                replayer.run_reset(self.options.reset)
            except replayer.ReplayError as exc:
                raise ResetFailed(str(exc)) from None

    def _changed_images(self, run: Path, requests: Sequence[Request]) -> _ImageCheck | None:
        if self.options.baseline is None:
            return None
        return _ImageCheck(self.options.baseline, run, {request.id for request in requests})


@dataclass
class _ImageCheck:
    """The requests of a candidate whose outputs changed against the baseline run."""

    baseline: Path
    run: Path
    ids: set[str]

    def __call__(self) -> set[str]:
        import analyzer

        report = analyzer.compare_run_images(
            self.baseline,
            self.run,
            None,
            thresholds=analyzer.ImageThresholds(),
            jobs=1,
            assets_dir=None,
            force=True,
        )
        return {
            pair.request_id
            for pair in report.pairs
            if pair.verdict in _CHANGED and pair.request_id in self.ids
        }


def _observations(run: Path) -> list[Observation]:
    found: list[Observation] = []
    with TraceReader(run) as reader:
        for record in reader.records():
            if isinstance(record, Outcome) and not record.warmup:
                found.append(_observe(record))
    return found


def _observe(outcome: Outcome) -> Observation:
    latency = None
    if outcome.done_ns is not None:
        latency = (outcome.done_ns - outcome.intended_ns) / NS
    kind = outcome.error.kind if outcome.error is not None else None
    return Observation(outcome.request_id, outcome.status, kind, latency)


def _seen(observations: Sequence[Observation]) -> str:
    counts: dict[str, int] = {}
    names = {kind: name for name, kinds in ERROR_KINDS.items() for kind in kinds}
    for o in observations:
        key = f"status {o.status}" if o.status is not None else names.get(o.error_kind or "", "")
        key = key or f"error {o.error_kind}"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{key}: {count}" for key, count in sorted(counts.items()))
