"""Latency plots as PNG bytes (matplotlib, imported only when a plot is asked for).

Figures are built with `matplotlib.figure.Figure` and the Agg canvas directly, never pyplot,
so no global state or display backend is involved.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from ._load import FloatArray, Rows

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["comparison_plots", "run_plots"]

# Scatter plots above this many points are thinned (evenly, deterministically) for speed.
MAX_POINTS = 20_000
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _figure() -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    return figure, figure.add_subplot()


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _ok_latency_ms(rows: Rows) -> FloatArray:
    mask = rows.ok & ~rows.warmup
    result: FloatArray = rows.latency[mask] / 1e6
    return result


def _label(rows: Rows) -> str:
    return rows.path.name


def ecdf_plot(runs: list[Rows]) -> bytes:
    """Empirical CDF of latency on a log axis, one line per run."""
    figure, axes = _figure()
    for index, rows in enumerate(runs):
        values = np.sort(_ok_latency_ms(rows))
        fraction = np.arange(1, len(values) + 1) / len(values)
        axes.step(
            values, fraction, where="post", color=COLORS[index % len(COLORS)], label=_label(rows)
        )
    axes.set_xscale("log")
    axes.set_xlabel("latency from intended send (ms, log scale)")
    axes.set_ylabel("fraction of requests at or below")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    return _png(figure)


def spectrum_plot(runs: list[Rows]) -> bytes:
    """HdrHistogram-style percentile spectrum: x = 1/(1-p) on a log axis."""
    figure, axes = _figure()
    for index, rows in enumerate(runs):
        values = np.sort(_ok_latency_ms(rows))
        n = len(values)
        levels = (np.arange(1, n + 1) - 0.5) / n
        axes.plot(
            1.0 / (1.0 - levels), values, color=COLORS[index % len(COLORS)], label=_label(rows)
        )
    axes.set_xscale("log")
    ticks = [1, 2, 10, 100, 1000, 10000]
    axes.set_xticks(ticks, ["0%", "50%", "90%", "99%", "99.9%", "99.99%"])
    axes.set_xlabel("percentile")
    axes.set_ylabel("latency (ms)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    return _png(figure)


def _thin(count: int) -> slice:
    return slice(None, None, max(1, count // MAX_POINTS))


def latency_over_time_plot(runs: list[Rows]) -> bytes:
    """Latency of each request against its intended send time."""
    figure, axes = _figure()
    for index, rows in enumerate(runs):
        mask = rows.ok & ~rows.warmup
        send_s = rows.intended[mask] / 1e9
        latency = rows.latency[mask] / 1e6
        step = _thin(len(send_s))
        axes.scatter(
            send_s[step],
            latency[step],
            s=3,
            alpha=0.5,
            color=COLORS[index % len(COLORS)],
            label=_label(rows),
        )
    axes.set_yscale("log")
    axes.set_xlabel("intended send time (s from start)")
    axes.set_ylabel("latency (ms, log scale)")
    axes.grid(True, alpha=0.3)
    axes.legend()
    return _png(figure)


def throughput_plot(runs: list[Rows]) -> bytes:
    """Completions per second and requests in flight over time."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5.5), dpi=100, layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    for index, rows in enumerate(runs):
        color = COLORS[index % len(COLORS)]
        measured = ~rows.warmup
        done = rows.done[measured & rows.ok] / 1e9
        if len(done):
            edges = np.arange(0.0, float(np.nanmax(done)) + 1.0, 1.0)
            counts, _ = np.histogram(done, bins=edges)
            top.step(edges[:-1], counts, where="post", color=color, label=_label(rows))
        sent = rows.sent[measured]
        finished = rows.done[measured]
        valid = np.isfinite(sent) & np.isfinite(finished)
        times = np.concatenate([sent[valid], finished[valid]]) / 1e9
        deltas = np.concatenate([np.ones(int(valid.sum())), -np.ones(int(valid.sum()))])
        order = np.argsort(times, kind="stable")
        bottom.step(times[order], np.cumsum(deltas[order]), where="post", color=color)
    top.set_ylabel("completions / s")
    top.legend()
    top.grid(True, alpha=0.3)
    bottom.set_ylabel("requests in flight")
    bottom.set_xlabel("time (s from start)")
    bottom.grid(True, alpha=0.3)
    return _png(figure)


def shift_plot(
    quantiles: list[float], estimate: FloatArray, lo: FloatArray, hi: FloatArray
) -> bytes:
    """Shift function: change of each quantile (CAND/BASE) with its bootstrap CI."""
    figure, axes = _figure()
    percent = (np.exp(estimate) - 1) * 100
    axes.errorbar(
        [q * 100 for q in quantiles],
        percent,
        yerr=[percent - (np.exp(lo) - 1) * 100, (np.exp(hi) - 1) * 100 - percent],
        fmt="o-",
        capsize=3,
    )
    axes.axhline(0.0, color="gray", linewidth=1)
    axes.set_xlabel("quantile of BASE latency (%)")
    axes.set_ylabel("change CAND/BASE (%)")
    axes.grid(True, alpha=0.3)
    return _png(figure)


def run_plots(rows: Rows) -> list[tuple[str, bytes]]:
    """The figures of `imgtrace report`."""
    runs = [rows]
    return [
        ("Latency ECDF (log axis)", ecdf_plot(runs)),
        ("Percentile spectrum", spectrum_plot(runs)),
        ("Latency over send time", latency_over_time_plot(runs)),
        ("Throughput and requests in flight", throughput_plot(runs)),
    ]


def comparison_plots(
    runs: list[Rows], shifts: list[tuple[str, list[float], FloatArray, FloatArray, FloatArray]]
) -> list[tuple[str, bytes]]:
    """The figures of `imgtrace compare`: overlays of all runs, one shift function per CAND."""
    plots = [
        ("Latency ECDF (log axis)", ecdf_plot(runs)),
        ("Percentile spectrum", spectrum_plot(runs)),
    ]
    for title, quantiles, estimate, lo, hi in shifts:
        plots.append((f"Shift function: {title}", shift_plot(quantiles, estimate, lo, hi)))
    plots.append(("Latency over send time", latency_over_time_plot(runs)))
    plots.append(("Throughput and requests in flight", throughput_plot(runs)))
    return plots
