"""Planted bugs: failures that appear only under an interaction of requests (`--plant`).

They are fixtures for testing a regression search such as `imgtrace reduce`, for imgtrace's own
tests and for users who want to try one on a known bug:

    mask-after-size[:W]       a 500 for an edit with a mask that arrives within W simulated
                              seconds (default 1) after an edit of another output size
    slow-after-concurrent:N[:X]
                              once N edits of 1024x1024 are in flight at the same time, every
                              later request takes X times its compute time (default 10), until
                              reset: a leak that only a restart clears
    image-after-seed:S        once a request with seed S has been served, every later output
                              image changes (the disc moves), until reset: a poisoned cache

`--plant-rate P` makes each bug fire with probability P when its condition holds (a flaky bug;
drawn from `--random-seed`). `POST /v1/planted/reset` clears the state of the last two, as a
restart would.
"""

from __future__ import annotations

import dataclasses
import random
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from traces import UsageError

from ._errors import ApiError

if TYPE_CHECKING:
    from ._config import ServerConfig
    from ._engine import Job
    from ._params import EditRequest

__all__ = ["RESET_ROUTE", "Effect", "Plant", "Planted", "parse_plant"]

RESET_ROUTE = "/v1/planted/reset"
BIG = (1024, 1024)
_SPEC = re.compile(r"^([a-z-]+)(?::([^:]+))?(?::([^:]+))?$")
KINDS = ("mask-after-size", "slow-after-concurrent", "image-after-seed")


@dataclass(frozen=True)
class Plant:
    """One planted bug, as given to `--plant`."""

    kind: str
    number: float
    factor: float = 10.0


def parse_plant(text: str) -> Plant:
    """`mask-after-size:1`, `slow-after-concurrent:4:10`, `image-after-seed:42` -> Plant."""
    match = _SPEC.match(text.strip())
    kind = match.group(1) if match else ""
    if match is None or kind not in KINDS:
        raise UsageError(f"--plant {text!r}: use one of {', '.join(KINDS)} (with its :VALUE)")
    try:
        number = float(match.group(2)) if match.group(2) else _default(kind)
        factor = float(match.group(3)) if match.group(3) else 10.0
    except ValueError:
        raise UsageError(f"--plant {text!r}: its values must be numbers") from None
    if kind == "slow-after-concurrent" and (number < 1 or number != int(number) or factor < 1):
        raise UsageError(f"--plant {text!r}: N must be a whole number >= 1 and X >= 1")
    if kind == "mask-after-size" and not number > 0:
        raise UsageError(f"--plant {text!r}: the window must be > 0 seconds")
    if kind == "image-after-seed" and number != int(number):
        raise UsageError(f"--plant {text!r}: the seed must be a whole number")
    if kind != "slow-after-concurrent" and match.group(3):
        raise UsageError(f"--plant {text!r}: {kind} takes one value")
    return Plant(kind, number, factor)


def _default(kind: str) -> float:
    if kind == "mask-after-size":
        return 1.0
    raise UsageError(f"--plant {kind}: give its value, e.g. {kind}:4")


@dataclass
class Effect:
    """What the planted bugs do to one request."""

    error: str = ""
    slow_factor: float = 1.0
    seed_shift: int = 0

    def check(self) -> None:
        """Raise the planted 500, if one fired."""
        if self.error:
            raise ApiError(500, self.error, code="planted_bug")

    def rendered(self, request: EditRequest) -> EditRequest:
        """The request as the (buggy) renderer sees it."""
        if not self.seed_shift:
            return request
        return dataclasses.replace(request, seed=request.seed + self.seed_shift)


@dataclass
class Planted:
    """The state the planted bugs keep across requests."""

    config: ServerConfig
    _rng: random.Random = field(init=False)
    _last: list[tuple[float, tuple[int, int]]] = field(default_factory=list)
    _big: list[Job] = field(default_factory=list)
    _leaking: bool = False
    _poisoned: bool = False

    def __post_init__(self) -> None:
        seed = self.config.random_seed
        self._rng = random.Random(None if seed is None else seed + 1)

    @property
    def active(self) -> bool:
        return bool(self.config.plant)

    def reset(self) -> None:
        self._last.clear()
        self._big.clear()
        self._leaking = self._poisoned = False

    def arrive(self, request: EditRequest, job: Job, masked: bool) -> Effect:
        """Register a request that is about to be queued; what the bugs do to it."""
        effect = Effect()
        if not self.active:
            return effect
        now = time.monotonic()
        size = (job.width, job.height)
        for plant in self.config.plant:
            if plant.kind == "mask-after-size":
                self._mask_after_size(plant, masked, size, now, effect)
                self._last.append((now, size))
            elif plant.kind == "slow-after-concurrent":
                self._slow_after_concurrent(plant, job, effect)
            elif plant.kind == "image-after-seed":
                if self._poisoned and self._fires():
                    effect.seed_shift = 1
                if request.seed == int(plant.number):
                    self._poisoned = True
        return effect

    def _fires(self) -> bool:
        rate = self.config.plant_rate
        return rate >= 1 or self._rng.random() < rate

    def _mask_after_size(
        self,
        plant: Plant,
        masked: bool,
        size: tuple[int, int],
        now: float,
        effect: Effect,
    ) -> None:
        window = self.config.scaled(plant.number)
        self._last = [(at, seen) for at, seen in self._last if now - at <= window]
        if masked and any(seen != size for _, seen in self._last) and self._fires():
            effect.error = (
                "planted bug (--plant mask-after-size): a masked edit followed an edit of "
                "another size too closely"
            )

    def _slow_after_concurrent(self, plant: Plant, job: Job, effect: Effect) -> None:
        if (job.width, job.height) == BIG:
            self._big = [other for other in self._big if not other.finished]
            self._big.append(job)
            if len(self._big) >= plant.number and self._fires():
                self._leaking = True
        if self._leaking:
            effect.slow_factor = max(effect.slow_factor, plant.factor)
