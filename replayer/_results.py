"""What a replay did: one target's result, and an interleaved replay's results side by side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._progress import LagHealth, Stats

__all__ = ["InterleavedResult", "ReplayResult"]


@dataclass
class ReplayResult:
    """What a replay did to one target, for the summary, `--json` and the exit code."""

    output: Path
    stats: Stats
    lag: LagHealth
    interrupted: bool
    duration_s: float
    planned_rate: float | None
    peak_in_flight: int
    lanes: int
    target: str = ""
    """The base URL, without credentials."""
    not_stored: int = 0
    """Responses whose body was left out because storing fell behind the sends."""
    workers: int = 0
    """Dispatch processes (0: the sends ran in the calling process)."""
    failures: tuple[str, ...] = ()
    """Dispatch workers that died during the replay, one line each."""
    scheduling: str = ""
    """How the dispatch workers were scheduled: "realtime", or "normal (why)"."""

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
            "not_stored": self.not_stored,
            "workers": self.workers,
            "worker_failures": list(self.failures),
            "dispatch_scheduling": self.scheduling,
        }


@dataclass
class InterleavedResult:
    """An interleaved replay: one `ReplayResult` per target name, measured side by side."""

    group: str
    order_seed: int
    runs: dict[str, ReplayResult]

    @property
    def interrupted(self) -> bool:
        return any(result.interrupted for result in self.runs.values())

    def unreachable(self) -> list[str]:
        """Targets that not a single request could connect to."""
        return [name for name, result in self.runs.items() if result.nothing_connected]

    def problems(self) -> tuple[str | None, list[str]]:
        """The error to stop with (a target nothing reached), and warnings (some did not)."""
        dead = self.unreachable()
        error = None
        if dead:
            named = ", ".join(f"{name} ({self.runs[name].target})" for name in dead)
            error = (
                f"not a single request could connect to {named}; check its --target and that "
                "the server is up (every run file was written anyway)"
            )
        warnings = []
        for name, result in self.runs.items():
            failed = result.stats.error_kinds.get("connect", 0)
            if failed and name not in dead:
                warnings.append(
                    f"{failed} of {result.stats.done} requests could not connect to {name} "
                    f"({result.target})"
                )
        return error, warnings

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "order_seed": self.order_seed,
            "interrupted": self.interrupted,
            "targets": {
                name: {"target": result.target, **result.as_dict()}
                for name, result in self.runs.items()
            },
        }
