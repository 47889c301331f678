"""Paired moving-block bootstrap of quantile ratios, in send order.

Queueing makes neighbouring requests' latencies correlated: a slow request delays the ones
behind it. An i.i.d. bootstrap treats them as independent and gives intervals that are too
narrow. Resampling contiguous blocks of requests (in send order; the length comes from the
measured autocorrelation, `analyzer._dependence.block_length`) keeps that correlation, and
resampling the same blocks on both sides keeps the pairing, so the request mix cancels out.

Each resample is represented by weights (how many times each request was drawn), which turns a
quantile of the resample into a search in a cumulative sum: no copying of samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._stats import FloatArray

__all__ = ["BootstrapResult", "quantile_ratios", "quantile_ratios_by_group"]

# Resamples are built in chunks so memory stays at a few tens of MB for 100,000 pairs.
_CHUNK_CELLS = 2_000_000


@dataclass(frozen=True)
class BootstrapResult:
    """Log-ratios ln(Q_second(q) / Q_first(q)) with percentile CIs and bootstrap p-values."""

    quantiles: tuple[float, ...]
    log_ratio: FloatArray
    lo: FloatArray
    hi: FloatArray
    p: FloatArray
    block: int
    resamples: int
    draws: FloatArray | None = None
    """The resampled log-ratios, resamples x quantiles (None when no resample was usable)."""

    def interval_at(self, index: int) -> Callable[[float], tuple[float, float]]:
        """The percentile interval of quantile number `index` at any confidence level."""

        def at(confidence: float) -> tuple[float, float]:
            if self.draws is None:
                return math.nan, math.nan
            tail = (1.0 - confidence) / 2.0
            lo, hi = np.quantile(self.draws[:, index], [tail, 1.0 - tail])
            return float(lo), float(hi)

        return at


def _weighted_quantiles(
    sorted_values: FloatArray, cumulative: npt.NDArray[np.int64], targets: npt.NDArray[np.int64]
) -> FloatArray:
    """Inverted-CDF quantiles: the first value whose cumulative weight reaches each target."""
    index = np.searchsorted(cumulative, targets, side="left")
    return sorted_values[np.minimum(index, len(sorted_values) - 1)]


def _targets(quantiles: FloatArray, total: int) -> npt.NDArray[np.int64]:
    # ceil(q * total) in integers, so float rounding never moves a quantile by one rank.
    return np.maximum(1, np.ceil(quantiles * total - 1e-9)).astype(np.int64)


def _resample_weights(
    rng: np.random.Generator, rows: int, n: int, block: int, blocks_per_sample: int
) -> npt.NDArray[np.int32]:
    """For `rows` resamples, how many drawn blocks cover each request.

    Shape (n + 1) x rows, request-major so that gathering requests in another order moves
    whole rows of memory; the extra last request row is always 0 and serves as padding.
    """
    starts = rng.integers(0, n, size=(rows, blocks_per_sample))
    flat = (starts * rows + np.arange(rows)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n * rows).astype(np.int32).reshape(n, rows)
    # Circular blocks: a start near the end also covers the first requests.
    running = np.zeros((n + block, rows), dtype=np.int32)
    np.cumsum(counts[n - block + 1 :], axis=0, out=running[1:block])
    np.cumsum(counts, axis=0, out=running[block:])
    running[block:] += running[block - 1]
    weights = np.zeros((n + 1, rows), dtype=np.int32)
    np.subtract(running[block:], running[:n], out=weights[:n])
    return weights


class _SortedSide:
    """One side of one group: its values in ascending order and where they sit in the run."""

    GROUP = 256

    def __init__(self, values: FloatArray, members: npt.NDArray[np.intp], pad: int) -> None:
        order = members[np.argsort(values[members], kind="stable")]
        self.values = values[order]
        self.n = len(order)
        self.groups = max(1, -(-self.n // self.GROUP))
        # Pad with index `pad`, which points at the always-zero weight column.
        self.order = np.full(self.groups * self.GROUP, pad, dtype=np.intp)
        self.order[: self.n] = order

    def quantiles(self, weights: npt.NDArray[np.int32], quantiles: FloatArray) -> FloatArray:
        """Weighted quantiles of every resample (column of `weights`, (n + 1) x rows) at once.

        A full cumulative sum per row is the slow part of a bootstrap (it cannot vectorize);
        summing groups of 256 first and then scanning only the one group that holds each
        target does the same search with a few percent of the work. A row that drew none
        of this side's requests gives NaN.
        """
        rows = weights.shape[1]
        g = self.GROUP
        ordered = np.take(weights, self.order, axis=0).reshape(self.groups, g, rows)
        group_cum = np.cumsum(ordered.sum(axis=1, dtype=np.int64), axis=0).T
        totals = group_cum[:, -1]
        targets = np.maximum(1, np.ceil(quantiles[None, :] * totals[:, None] - 1e-9))
        targets = targets.astype(np.int64)
        # First group whose running total reaches each target, searched row by row in one call
        # by offsetting each row's totals past the previous row's.
        offsets = np.r_[0, np.cumsum(totals)[:-1]]
        shifted = (group_cum + offsets[:, None]).ravel()
        wanted = (targets + offsets[:, None]).ravel()
        group = np.searchsorted(shifted, wanted, side="left").reshape(rows, -1)
        group -= (np.arange(rows) * self.groups)[:, None]
        group = np.clip(group, 0, self.groups - 1)
        row = np.arange(rows)[:, None]
        before = np.where(group > 0, group_cum[row, np.maximum(group - 1, 0)], 0)
        # The one group that holds each target, element by element: rows x quantiles x g.
        inner = ordered[group[..., None], np.arange(g), row[..., None]]
        inner = np.cumsum(inner, axis=2, dtype=np.int64) + before[..., None]
        position = (inner < targets[..., None]).sum(axis=2)
        index = np.clip(group * g + position, 0, self.n - 1)
        result: FloatArray = np.where(totals[:, None] > 0, self.values[index], np.nan)
        return result


def quantile_ratios_by_group(
    first: FloatArray,
    second: FloatArray,
    groups: list[npt.NDArray[np.intp]],
    quantiles: tuple[float, ...],
    *,
    block: int,
    resamples: int,
    rng: np.random.Generator,
    confidence: float = 0.95,
) -> list[BootstrapResult]:
    """Bootstrap the ratios second/first of quantiles, for several groups of requests at once.

    `first[i]` and `second[i]` belong to the same request, and i runs in send order. Each
    resample draws blocks of the whole run (blocks start anywhere and wrap around the end), and
    every group's quantiles are read from that same resample, so groups (request classes)
    cost no extra resampling and keep their correlation with each other.
    """
    n = len(first)
    qs = np.array(quantiles, dtype=np.float64)
    sides = [(_SortedSide(first, g, n), _SortedSide(second, g, n)) for g in groups]
    estimates = []
    for side_a, side_b in sides:
        unit = np.arange(1, side_a.n + 1, dtype=np.int64)
        targets = _targets(qs, side_a.n)
        estimates.append(
            np.log(
                _weighted_quantiles(side_b.values, unit, targets)
                / _weighted_quantiles(side_a.values, unit, targets)
            )
        )
    block = max(1, min(block, n))
    blocks_per_sample = max(1, round(n / block))
    chunk = max(1, min(resamples, _CHUNK_CELLS // max(n, 1)))
    samples = np.empty((len(groups), resamples, len(qs)))
    done = 0
    while done < resamples:
        rows = min(chunk, resamples - done)
        weights = _resample_weights(rng, rows, n, block, blocks_per_sample)
        for index, (side_a, side_b) in enumerate(sides):
            ratio = side_b.quantiles(weights, qs) / side_a.quantiles(weights, qs)
            samples[index, done : done + rows] = np.log(ratio)
        done += rows
    tail = (1.0 - confidence) / 2.0
    results = []
    for index, estimate in enumerate(estimates):
        drawn = samples[index][~np.isnan(samples[index]).any(axis=1)]
        if len(drawn) == 0:
            nan = np.full(len(qs), np.nan)
            results.append(BootstrapResult(tuple(quantiles), estimate, nan, nan, nan, block, 0))
            continue
        lo = np.quantile(drawn, tail, axis=0)
        hi = np.quantile(drawn, 1.0 - tail, axis=0)
        smaller = np.minimum((drawn <= 0.0).sum(axis=0), (drawn >= 0.0).sum(axis=0))
        p = np.minimum(1.0, 2.0 * (smaller + 1) / (len(drawn) + 1))
        results.append(
            BootstrapResult(tuple(quantiles), estimate, lo, hi, p, block, len(drawn), drawn)
        )
    return results


def quantile_ratios(
    first: FloatArray,
    second: FloatArray,
    quantiles: tuple[float, ...],
    *,
    block: int,
    resamples: int,
    rng: np.random.Generator,
    confidence: float = 0.95,
) -> BootstrapResult:
    """Bootstrap the ratios second/first of the given quantiles over all paired requests."""
    everyone = np.arange(len(first), dtype=np.intp)
    return quantile_ratios_by_group(
        first,
        second,
        [everyone],
        quantiles,
        block=block,
        resamples=resamples,
        rng=rng,
        confidence=confidence,
    )[0]
