"""One start time for every shard: `--start-at TIME`, read from the wall clock.

Each shard turns TIME into its own monotonic deadline and waits for it with the replayer's
never-early wait, so N processes on N machines start together to within their clocks' sync.
A shard that is handed a TIME already past (a pod scheduled late) refuses to start rather than
compress the schedule or drift from the others.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from traces import UsageError, shard_metadata

from ._partition import Partition
from ._sender import Clock

__all__ = [
    "DEFAULT_GRACE_S",
    "StartAt",
    "clock_at",
    "clock_facts",
    "group_id",
    "parse_start_at",
    "scale_out_metadata",
]

DEFAULT_GRACE_S = 1.0
NS = 1_000_000_000
# The kernel's clock states (adjtimex(2)): TIME_ERROR means "not synchronized".
_TIME_ERROR = 5
_TIMEX_BYTES = 512  # larger than struct timex on every Linux ABI; only `modes` (0) is read
# Nanoseconds since the epoch are stored as 64-bit integers: they last until April 2262.
_LAST_S = (2**63 - 1) // NS
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CLOCKSOURCE = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")


def parse_start_at(text: str) -> int:
    """ISO 8601 with a UTC offset (`2026-12-01T10:00:00Z`) or Unix seconds → ns since the epoch.

    A time without an offset is refused: shards on hosts in different time zones would read it
    as different instants.
    """
    stripped = text.strip()
    try:
        # Decimal, not float: 1796119200.123456789 is exact to the nanosecond.
        seconds = Decimal(stripped)
    except InvalidOperation:
        pass
    else:
        if seconds.is_finite() and 0 < seconds < _LAST_S:
            return int(seconds * NS)
        raise UsageError(
            f"--start-at {text!r}: Unix seconds must be a positive number before year 2262"
        )
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise UsageError(
            f"--start-at {text!r}: expected ISO 8601 with a UTC offset "
            "(e.g. 2026-12-01T10:00:00Z) or Unix seconds (e.g. 1796119200)"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise UsageError(
            f"--start-at {text!r}: give a UTC offset (e.g. {stripped}Z), so every shard reads "
            "the same instant"
        )
    wall_ns = (moment - _EPOCH) // timedelta(microseconds=1) * 1000
    if not 0 < wall_ns < _LAST_S * NS:
        raise UsageError(f"--start-at {text!r}: give a time between 1970 and 2262")
    return wall_ns


@dataclass(frozen=True)
class StartAt:
    """The shared start: `wall_ns` since the epoch, refused when more than `grace_s` past."""

    wall_ns: int
    grace_s: float = DEFAULT_GRACE_S

    def __post_init__(self) -> None:
        if not math.isfinite(self.grace_s) or self.grace_s < 0:
            raise UsageError(f"--start-grace {self.grace_s:g}: expected seconds >= 0")

    def check_not_passed(self, now_ns: int | None = None) -> None:
        """Refuse a start that is already more than the grace in the past."""
        now = time.time_ns() if now_ns is None else now_ns
        late_s = (now - self.wall_ns) / NS
        if late_s > self.grace_s:
            raise UsageError(
                f"--start-at {_utc(self.wall_ns)} passed {late_s:.3f} s ago (grace "
                f"{self.grace_s:g} s): choose a later start for every shard, or raise "
                "--start-grace"
            )


def _utc(wall_ns: int) -> str:
    moment = datetime.fromtimestamp(wall_ns / NS, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clock_at(start: StartAt) -> Clock:
    """A replay clock whose offset zero is the wall-clock instant `start.wall_ns`."""
    start.check_not_passed()
    clock = Clock(start_in_ns=start.wall_ns - time.time_ns())
    # The header names t0 exactly as given, so every shard's file states the same instant.
    clock.t0_wall = start.wall_ns
    return clock


def group_id(trace_digest: str, start_wall_ns: int | None) -> str:
    """The id shared by the shards of one replay: from the trace and the common start."""
    seed = f"{trace_digest}:{start_wall_ns if start_wall_ns is not None else 'none'}"
    return hashlib.sha256(seed.encode()).hexdigest()[:12]


def scale_out_metadata(
    shard: Partition | None,
    start_at: StartAt | None,
    group: str | None,
    trace_digest: str,
    clock: Clock,
) -> dict[str, Any]:
    """The run header's record of which shard of which replay this is, and how t0 was set."""
    out: dict[str, Any] = {}
    if shard is not None:
        start = None if start_at is None else start_at.wall_ns
        out.update(shard_metadata(shard.index, shard.count, group or group_id(trace_digest, start)))
    if shard is not None or start_at is not None:
        out["clock"] = {"t0_wall_ns": clock.t0_wall, "start_at": start_at is not None}
        out["clock"].update(clock_facts())
    return out


def clock_facts() -> dict[str, Any]:
    """How this host tells the time: the clock read, its source, and whether NTP syncs it."""
    facts: dict[str, Any] = {
        "read": "time.clock_gettime(CLOCK_REALTIME)",
        "ntp_synchronized": _ntp_synchronized(),
    }
    try:
        facts["clocksource"] = _CLOCKSOURCE.read_text().strip()
    except OSError:
        facts["clocksource"] = "unknown"
    return facts


def _ntp_synchronized() -> bool | str:
    """The kernel's own answer (adjtimex with no changes), or "unknown" where unavailable."""
    try:
        # The interpreter's own symbols include libc's (no library search, no subprocess).
        libc = ctypes.CDLL(None, use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError):
        return "unknown"
    buffer = ctypes.create_string_buffer(_TIMEX_BYTES)  # zeroed: modes = 0 reads only
    state = adjtimex(buffer)
    if state < 0:
        return "unknown"
    return bool(state != _TIME_ERROR)
