"""`replay --repeat K`: the same selection replayed K times, into one run file.

Each repetition is an ordinary replay (fresh connections, the same schedule from its own
start) written to a scratch file beside the output; the repetitions are then joined into the
output, every outcome tagged with its `repeat` index and its times moved onto the first
repetition's time zero, so one run file holds them all: `report` and `compare` read it as any
run (pairs are keyed by request, pass and repetition), and `show`/`report` say how often each
failure reproduced.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from traces import (
    Blob,
    Header,
    Note,
    Outcome,
    OutputExists,
    Redaction,
    Reproduction,
    TraceReader,
    TraceWriter,
    UsageError,
    reproductions,
)

from ._results import ReplayResult
from ._runner import ReplayConfig, replay

__all__ = ["RepeatResult", "replay_repeated", "run_reset"]

RESET_TIMEOUT_S = 600.0


@dataclass
class RepeatResult:
    """The repetitions' own results, and how often each failure reproduced."""

    output: Path
    results: list[ReplayResult]
    repeat: int
    reproductions: list[Reproduction]

    @property
    def interrupted(self) -> bool:
        return any(result.interrupted for result in self.results)

    @property
    def nothing_connected(self) -> bool:
        return all(result.nothing_connected for result in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "repeat": self.repeat,
            "completed_repetitions": len(self.results),
            "interrupted": self.interrupted,
            "repetitions": [result.as_dict() for result in self.results],
            "reproductions": [msgspec.to_builtins(r) for r in self.reproductions],
        }


def run_reset(command: str) -> None:
    """Run a reset command (restart a container, clear a cache); ReplayError unless it exits 0."""
    from ._errors import ReplayError

    try:
        done = subprocess.run(
            command,
            shell=True,
            capture_output=True,
            text=True,
            timeout=RESET_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ReplayError(
            f"--reset {shlex.quote(command)} did not finish in {RESET_TIMEOUT_S:g} s"
        ) from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        detail = f": {said[-1]}" if said else ""
        raise ReplayError(
            f"--reset {shlex.quote(command)} failed with exit status {done.returncode}{detail}"
        )


def replay_repeated(
    config: ReplayConfig,
    repeat: int,
    before_each: Callable[[int], None] | None = None,
) -> RepeatResult:
    """Replay `config` `repeat` times and join the runs into `config.output`.

    `before_each(index)` runs before each repetition (a progress line, a reset). An interrupted
    repetition is the last one; what ran is still joined and marked interrupted.
    """
    if repeat < 1:
        raise UsageError("--repeat must be >= 1")
    output = config.output
    if output is None:
        raise UsageError("replay needs an output run file: pass -o RUN")
    if output.exists() and not config.force:
        raise OutputExists(output, what="-o RUN")
    parts = [output.with_name(f".{output.name}.rep{index}") for index in range(repeat)]
    results: list[ReplayResult] = []
    try:
        for index, part in enumerate(parts):
            if before_each is not None:
                before_each(index)
            results.append(replay(dataclasses.replace(config, output=part, force=True)))
            if results[-1].interrupted:
                break
        _join(parts[: len(results)], output, repeat, config)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    with TraceReader(output) as reader:
        found = reproductions(reader.outcomes(), total=len(results))
    return RepeatResult(output, results, repeat, found)


def _join(parts: list[Path], output: Path, repeat: int, config: ReplayConfig) -> None:
    temporary = output.with_name(f".{output.name}.partial")
    redaction = Redaction(redact=[name for name, _ in config.headers])
    notes: list[dict[str, Any]] = []
    writer: TraceWriter | None = None
    try:
        first_wall: int | None = None
        seq = 0
        for index, part in enumerate(parts):
            with TraceReader(part) as reader:
                header = reader.header
                if writer is None:
                    first_wall = header.start_wall_ns
                    writer = TraceWriter(
                        temporary, _header(header, repeat), force=True, redaction=redaction
                    )
                shift = (header.start_wall_ns or 0) - (first_wall or 0)
                count = 0
                for record in reader.records():
                    if isinstance(record, Blob):
                        if not writer.has_blob(record.digest):
                            writer.add_blob(record.data, record.media_type)
                    elif isinstance(record, Outcome):
                        writer.write(_moved(record, index, seq + record.seq, shift))
                        count += 1
                    elif isinstance(record, Note):
                        notes.append({"repeat": index, **record.metadata})
                seq += count
        assert writer is not None
        writer.note(**_totals(notes, repeat))
        writer.close()
        os.replace(temporary, output)
    except BaseException:
        if writer is not None:
            writer.abandon()
        temporary.unlink(missing_ok=True)
        raise


def _header(header: Header, repeat: int) -> Header:
    options = {**header.options, "repeat": repeat}
    return msgspec.structs.replace(header, options=options)


def _moved(outcome: Outcome, index: int, seq: int, shift: int) -> Outcome:
    def moved(value: int | None) -> int | None:
        return None if value is None else value + shift

    return msgspec.structs.replace(
        outcome,
        repeat=index,
        seq=seq,
        intended_ns=outcome.intended_ns + shift,
        sent_ns=moved(outcome.sent_ns),
        upload_done_ns=moved(outcome.upload_done_ns),
        first_byte_ns=moved(outcome.first_byte_ns),
        done_ns=moved(outcome.done_ns),
    )


def _totals(notes: list[dict[str, Any]], repeat: int) -> dict[str, Any]:
    """The run's note: counts over all repetitions, and each repetition's own summary."""
    totals: dict[str, Any] = {"repeat": repeat, "completed_repetitions": len(notes)}
    for key in ("planned", "sent", "completed", "warmup", "errors", "bytes_up", "bytes_down"):
        totals[key] = sum(int(note.get(key) or 0) for note in notes)
    totals["interrupted"] = any(note.get("interrupted") for note in notes)
    totals["repetitions"] = notes
    return totals
