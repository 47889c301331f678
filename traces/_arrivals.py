"""Arrival processes: when requests of a synthetic trace arrive, or when a re-timed replay sends.

One implementation for `imgtrace synth` and `imgtrace replay --rate`. A process is a renewal
process (constant, Poisson or gamma gaps) under a piecewise-constant rate schedule. Gaps are
drawn with mean 1 in "operational time" and mapped to seconds through the integral of the rate
(the time-rescaling theorem), so a rate change takes effect at its time and a gamma process
keeps its burstiness at every rate. Gamma gaps have shape `burstiness` (coefficient of variation
1/sqrt(burstiness)): 1 is Poisson, below 1 burstier, above 1 smoother. The first arrival is at
the first moment the rate is positive.

Randomness comes from a numpy `Generator` handed in by the caller (this package does not import
numpy itself), so a seed fixes the times exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Literal, Protocol

import msgspec

from ._errors import UsageError

__all__ = ["ArrivalKind", "ArrivalProcess", "GapSource"]

ArrivalKind = Literal["constant", "poisson", "gamma"]
_KINDS = ("constant", "poisson", "gamma")


class GapSource(Protocol):
    """What a process draws its gaps from: `numpy.random.Generator` fits."""

    def exponential(self, scale: float, /) -> Any: ...

    def gamma(self, shape: float, scale: float, /) -> Any: ...


class ArrivalProcess(msgspec.Struct, frozen=True, kw_only=True):
    """Arrival times of a renewal process under a rate schedule of (start s, rate per s)."""

    kind: ArrivalKind = "poisson"
    schedule: tuple[tuple[float, float], ...] = ((0.0, 1.0),)
    burstiness: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise UsageError(f"arrival process {self.kind!r}: expected one of {', '.join(_KINDS)}")
        if not (math.isfinite(self.burstiness) and self.burstiness > 0):
            raise UsageError("--burstiness must be positive")
        rates = [rate for _, rate in self.schedule]
        if not all(math.isfinite(r) and r >= 0 for r in rates) or not any(r > 0 for r in rates):
            raise UsageError("--rate must be positive (and finite)")
        starts = [start for start, _ in self.schedule]
        if starts[0] != 0 or not all(math.isfinite(s) for s in starts):
            raise UsageError("a rate schedule starts at time 0, and its times are finite")
        if any(b <= a for a, b in zip(starts, starts[1:], strict=False)):
            raise UsageError("the segment start times of a schedule must increase")

    @classmethod
    def steady(cls, kind: ArrivalKind, rate: float, burstiness: float = 1.0) -> ArrivalProcess:
        """One rate for ever."""
        return cls(kind=kind, schedule=((0.0, float(rate)),), burstiness=burstiness)

    def gap(self, rng: GapSource | None) -> float:
        """One inter-arrival gap in operational time (mean 1); constant gaps need no `rng`."""
        if self.kind == "constant":
            return 1.0
        if rng is None:
            raise ValueError(f"a {self.kind} process needs a random generator")
        if self.kind == "poisson":
            return float(rng.exponential(1.0))
        return float(rng.gamma(self.burstiness, 1.0 / self.burstiness))

    def arrivals(self, rng: GapSource | None) -> Iterator[float]:
        """Arrival times in seconds, ascending; endless unless the schedule ends with rate 0."""
        starts = [s for s, _ in self.schedule]
        rates = [r for _, r in self.schedule]
        # Operational time at each segment start.
        cumulative = [0.0]
        for i in range(1, len(starts)):
            cumulative.append(cumulative[-1] + rates[i - 1] * (starts[i] - starts[i - 1]))
        u = 0.0
        segment = 0
        while True:
            # Idle segments have an empty operational-time interval and are skipped here.
            while segment + 1 < len(starts) and u >= cumulative[segment + 1]:
                segment += 1
            if rates[segment] == 0:
                return  # the last segment is idle: no more arrivals ever
            yield starts[segment] + (u - cumulative[segment]) / rates[segment]
            u += self.gap(rng)

    def expected_count(self, duration: float) -> float:
        """The mean number of arrivals before `duration` seconds: the integral of the rate."""
        ends = [start for start, _ in self.schedule[1:]] + [math.inf]
        return sum(
            rate * max(0.0, min(duration, end) - start)
            for (start, rate), end in zip(self.schedule, ends, strict=True)
        )

    def times(
        self, rng: GapSource | None, count: int | None, duration: float | None
    ) -> list[float]:
        """Arrival times in seconds: `count` of them, or all before `duration`, or both limits."""
        if count is None and duration is None:
            raise UsageError("give a count or a duration for the arrivals")
        out: list[float] = []
        for t in self.arrivals(rng):
            if (count is not None and len(out) >= count) or (
                duration is not None and t >= duration
            ):
                break
            out.append(t)
        if count is not None and duration is None and len(out) < count:
            raise UsageError(
                f"the rate schedule ends with rate 0 after {len(out)} of {count} requests: "
                "end it with a positive rate or give --duration"
            )
        return out

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "arrival": self.kind,
            "schedule": [list(segment) for segment in self.schedule],
        }
        if len(self.schedule) == 1:
            described["rate"] = self.schedule[0][1]
        if self.kind == "gamma":
            described["burstiness"] = self.burstiness
        return described
