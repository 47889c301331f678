"""How much serial correlation in send order widens a paired comparison's intervals.

Neighbouring requests of one replay share machine state (a busy core, a warm cache, a queue),
so their per-request scores are correlated and carry less information than independent ones:
the variance of a sum is the long-run variance, not n times the variance. The estimate is one
AR(1) fit, (1 + rho) / (1 - rho), with rho the lag-1 autocorrelation (Kendall's bias
correction), shrunk toward 0 by its own sampling noise: rho * (1 - se^2 / rho^2), se^2 =
(1 - rho^2) / n. A long run keeps its rho (at n = 300 and rho = 0.8 the shrinkage is 0.2%);
a short one, whose rho is mostly noise (se 0.17 at n = 33), is not widened on noise. Taking the
larger of two estimators, as an earlier version did, biased the factor upward on short runs.
Student-t degrees of freedom, the effective sample size n / factor minus one, allow for the
uncertainty of the estimate itself. docs/analyzing.md gives the calibration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._stats import FloatArray

__all__ = ["Dependence", "autocorrelations", "block_length", "dependence"]

# A lag-1 correlation above this is treated as this: the factor stays finite (at most 39).
_MAX_RHO = 0.95
# Below this many values the autocorrelation is too noisy to act on.
_MIN_VALUES = 10
# Blocks never grow past n / _MIN_BLOCKS, so even a short run has enough blocks to resample.
_MIN_BLOCKS = 20


@dataclass(frozen=True)
class Dependence:
    """Long-run over plain variance of a series (>= 1), with what it implies."""

    factor: float
    rho: float
    """Lag-1 autocorrelation used (bias-corrected, shrunk, clipped to [0, 0.95])."""
    n: int

    @property
    def effective_n(self) -> float:
        return self.n / self.factor

    @property
    def df(self) -> int:
        """Degrees of freedom for Student-t critical values; 0 (normal) when nothing widens."""
        if self.factor <= 1.0:
            return 0
        return max(1, math.floor(self.effective_n) - 1)


def autocorrelations(series: FloatArray, lags: int) -> FloatArray:
    """Sample autocorrelations at lags 1..`lags` (the biased, positive-definite estimator)."""
    x = np.asarray(series, dtype=np.float64) - float(np.mean(series))
    n = len(x)
    variance = float(x @ x)
    if variance <= 0.0 or lags < 1:
        return np.zeros(max(lags, 0))
    lags = min(lags, n - 1)
    products = [float(x[k:] @ x[: n - k]) for k in range(1, lags + 1)]
    result: FloatArray = np.array(products) / variance
    return result


def _lag_one(series: FloatArray) -> float:
    """Lag-1 autocorrelation, bias-corrected, then shrunk toward 0 by its sampling noise."""
    n = len(series)
    raw = float(autocorrelations(series, 1)[0]) if n > 1 else 0.0
    # Kendall's first-order bias correction: the sample value is low by about (1 + 3 rho) / n.
    rho = min(max(raw + (1.0 + 3.0 * raw) / n, 0.0), _MAX_RHO)
    if rho <= 0.0:
        return 0.0
    noise = (1.0 - rho * rho) / n
    return max(0.0, rho * (1.0 - noise / (rho * rho)))


def dependence(series: FloatArray) -> Dependence:
    """The variance factor of a sum of `series` (values in send order) over independence."""
    n = len(series)
    if n < _MIN_VALUES:
        return Dependence(1.0, 0.0, n)
    rho = _lag_one(series)
    return Dependence((1.0 + rho) / (1.0 - rho), rho, n)


def block_length(n: int, rho: float) -> int:
    """Moving-block length for a series of `n` with lag-1 autocorrelation `rho`.

    The plug-in optimum for circular blocks (Politis and White) under an AR(1) model,
    (6 rho^2 / ((1 - rho)^2 (1 + rho)^2))^(1/3) n^(1/3), never below n^(1/3) and capped so that
    at least 20 blocks fit in the sample.
    """
    if n <= 1:
        return 1
    rho = min(max(rho, 0.0), _MAX_RHO)
    scale = (6.0 * rho * rho / ((1.0 - rho) ** 2 * (1.0 + rho) ** 2)) ** (1.0 / 3.0)
    length = max(1.0, scale) * n ** (1.0 / 3.0)
    return int(max(1, min(math.ceil(length), n // _MIN_BLOCKS)))
