"""Percentile-distribution text in HdrHistogram's `.hgrm` layout (values in milliseconds).

HdrHistogram's online plotter and its scripts read these columns: Value, Percentile,
TotalCount, 1/(1-Percentile). Percentile levels get denser toward 100%: five steps per halving
of the remaining distance, as HdrHistogram's own output does. imgtrace keeps every latency
raw, so each value is an exact order statistic rather than a bucket's upper edge.
"""

from __future__ import annotations

import math

import numpy as np

from ._stats import FloatArray

__all__ = ["hgrm_text"]

TICKS_PER_HALF_DISTANCE = 5


def _levels(n: int) -> list[float]:
    """Percentile levels (0..1) from 0 up to where one more step would pass the last value."""
    levels = [0.0]
    level = 0.0
    while True:
        halvings = math.floor(math.log2(1.0 / (1.0 - level)))
        level += 1.0 / (TICKS_PER_HALF_DISTANCE * 2 ** (halvings + 1))
        # Past (n-1)/n the quantile is the maximum, which the closing 100% line reports.
        if level >= 1.0 - 0.5 / n or level >= 1.0 - 1e-12:
            return levels
        levels.append(level)


def hgrm_text(latencies_ns: FloatArray) -> str:
    """The `.hgrm` text for a sample of latencies in ns."""
    ordered = np.sort(np.asarray(latencies_ns, dtype=np.float64))
    n = len(ordered)
    values_ms = ordered / 1e6
    lines = [f"{'Value':>12} {'Percentile':>14} {'TotalCount':>10} {'1/(1-Percentile)':>14}", ""]
    for level in _levels(n):
        index = min(n - 1, max(0, math.ceil(level * n) - 1))
        value = values_ms[index]
        count = int(np.searchsorted(ordered, ordered[index], side="right"))
        lines.append(f"{value:12.3f} {level:14.12f} {count:10d} {1.0 / (1.0 - level):14.2f}")
    lines.append(f"{values_ms[-1]:12.3f} {1.0:14.12f} {n:10d}")
    mean = float(values_ms.mean())
    std = float(values_ms.std())
    lines.append(f"#[Mean    = {mean:12.3f}, StdDeviation   = {std:12.3f}]")
    lines.append(f"#[Max     = {values_ms[-1]:12.3f}, Total count    = {n:12d}]")
    # Raw values have no buckets; report the sample as one bucket of n values.
    lines.append(f"#[Buckets = {1:12d}, SubBuckets     = {n:12d}]")
    return "\n".join(lines) + "\n"
