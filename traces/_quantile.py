"""The one quantile definition every imgtrace number uses.

A q-quantile is the inverted-CDF quantile: the smallest observation with at least a fraction q
of the sample at or below it (Hyndman and Fan's definition 1). It is always one of the
observations, so "p99 lag 18.9 ms" names a send that really was that late, and the replay
summary, the live progress bar, `report` and `compare` give the same figure for the same values.
Pure Python on purpose: the live bar computes it on the event loop, where importing numpy would
stall sends; numpy arrays work as input too.
"""

from __future__ import annotations

import math
from typing import Protocol, SupportsFloat

__all__ = ["Ascending", "quantile", "quantile_index"]

# q * n in floating point may land a hair above an integer (0.29 * 100 = 29.000000000000004).
_EPSILON = 1e-9


class Ascending(Protocol):
    """An ascending sample: a sorted list, an `array.array`, a sorted numpy array."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> SupportsFloat: ...


def quantile_index(n: int, q: float) -> int:
    """The position of the q-quantile in an ascending sample of `n` values (n >= 1)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"a quantile is between 0 and 1, not {q!r}")
    return min(n - 1, max(0, math.ceil(q * n - _EPSILON) - 1))


def quantile(ascending: Ascending, q: float) -> float:
    """The inverted-CDF q-quantile (0 <= q <= 1) of an ascending sample; NaN when it is empty."""
    n = len(ascending)
    if n == 0:
        return math.nan
    return float(ascending[quantile_index(n, q)])
