"""What a recording is asked to do (`RecordOptions`), what it did (`RecorderStats`), its files."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from traces import OutputExists, UsageError

from ._capture import DEFAULT_PATHS

__all__ = ["RecordOptions", "RecorderStats", "check_output", "part_path"]


@dataclass(frozen=True)
class RecordOptions:
    """What to record and how; the same options serve the proxy and the transport.

    :param paths: request paths to record (exact, or shell patterns such as ``/v1/images/*``).
    :param sample: fraction of matching requests to keep, decided by a hash of the request's
        content, so the same request is always kept or always skipped.
    :param max_body: bodies larger than this many bytes are recorded without the body.
    :param user_key: key for the pseudonyms of the form field ``user``; a random key (stable
        only within this recording) when None.
    :param redact_headers: header names redacted on top of the default list.
    :param keep_headers: header names removed from the default redaction list.
    :param rotate_size: start a new file once the current one holds about this many bytes.
    :param rotate_time: start a new file after this many seconds.
    :param flush_interval: seconds between flushes; a crash loses at most about this much.
    :param max_queue: exchanges waiting for the recorder before new ones are dropped.
    :param max_queue_bytes: bytes held by exchanges waiting for the recorder; an exchange whose
        bodies would go past it is recorded without them (and counted), one whose head alone
        would is dropped.
    """

    paths: tuple[str, ...] = DEFAULT_PATHS
    sample: float = 1.0
    max_body: int = 64 << 20
    user_key: bytes | None = None
    redact_headers: tuple[str, ...] = ()
    keep_headers: tuple[str, ...] = ()
    rotate_size: int | None = None
    rotate_time: float | None = None
    flush_interval: float = 0.5
    max_queue: int = 10_000
    max_queue_bytes: int = 512 << 20

    def __post_init__(self) -> None:
        for path in self.paths:
            if not path.startswith("/"):
                raise UsageError(f"--paths takes URL paths starting with '/', not {path!r}")


@dataclass
class RecorderStats:
    """What a recording did; `dropped` counts records lost (queue full, write failures...)."""

    seen: int = 0
    recorded: int = 0
    sampled_out: int = 0
    bodies_over_max: int = 0
    bodies_dropped_behind: int = 0
    dropped_queue_full: int = 0
    dropped_write_failed: int = 0
    dropped_after_close: int = 0
    dropped_recorder_died: int = 0
    files: list[str] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return (
            self.dropped_queue_full
            + self.dropped_write_failed
            + self.dropped_after_close
            + self.dropped_recorder_died
        )

    def as_metadata(self) -> dict[str, Any]:
        counts = asdict(self)
        counts.pop("files")
        return {"dropped_records": self.dropped, "recorder": counts}

    def summary(self) -> str:
        text = (
            f"recorded {self.recorded} of {self.seen} matching requests into "
            f"{', '.join(self.files) or 'no file'}"
        )
        if self.sampled_out:
            text += f"; {self.sampled_out} skipped by --sample"
        if self.bodies_over_max:
            text += f"; {self.bodies_over_max} without body (over --max-body)"
        if self.bodies_dropped_behind:
            text += (
                f"; {self.bodies_dropped_behind} without bodies (the recorder fell behind: "
                "over --max-backlog)"
            )
        if self.dropped:
            died = (
                f", {self.dropped_recorder_died} lost with the recording process"
                if self.dropped_recorder_died
                else ""
            )
            text += (
                f"; DROPPED {self.dropped} records ({self.dropped_queue_full} writer behind, "
                f"{self.dropped_write_failed} write failures{died})"
            )
        return text


def check_output(path: Path, options: RecordOptions, force: bool) -> None:
    """Refuse bad options and an output that exists (or old rotated parts), before any work."""
    if not 0 < options.sample <= 1:
        raise UsageError(f"--sample must be in (0, 1], not {options.sample}")
    if options.max_body < 0:
        raise UsageError("--max-body must not be negative")
    if options.max_queue_bytes < 0:
        raise UsageError("--max-backlog must not be negative")
    if path.is_dir():
        raise UsageError(f"{path} is a directory: give a file name for the output")
    if not path.parent.is_dir():
        raise UsageError(f"cannot create {path}: {path.parent} is not a directory")
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"cannot create {path}: {path.parent} is not writable")
    if force:
        return
    if path.exists():
        raise OutputExists(path)
    if options.rotate_size or options.rotate_time:
        stale = sorted(path.parent.glob(f"{path.stem}.[0-9]*{path.suffix}"))
        if stale:
            raise OutputExists(stale[0], state="(a rotated part of an earlier recording) exists")


def part_path(path: Path, part: int) -> Path:
    """The file of rotation part `part`: the output itself, then `STEM.2.SUFFIX`, ..."""
    if part == 1:
        return path
    return path.with_name(f"{path.stem}.{part}{path.suffix}")
