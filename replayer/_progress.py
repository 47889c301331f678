"""Counting a replay as it goes, the live progress bar, and the final summary and lag health."""

from __future__ import annotations

import math
from array import array
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from traces import LAG_FLOOR_NS, lag_advice, lag_matters, lag_rule_text, quantile

from ._sender import Exchange

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["LAG_LATE_NS", "LAG_WARN_NS", "LagHealth", "Live", "Stats", "summary_table"]

LAG_LATE_NS = 1_000_000
"""A send more than 1 ms after its intended time counts as late in the lag-health line."""
LAG_WARN_NS = int(LAG_FLOOR_NS)
"""Below this lag p99 the replayer never warns (`traces.lag_matters` is the whole rule)."""
_RECENT = 1000


def _quantile_ms(values: Iterable[int], q: float) -> float:
    """The shared quantile (`traces.quantile`) of ns values, in ms; 0 when there are none."""
    ordered = sorted(values)
    return quantile(ordered, q) / 1e6 if ordered else 0.0


@dataclass
class LagHealth:
    """How faithfully the schedule was kept (sends, warmup excluded)."""

    sends: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    late_share: float
    """Share of sends later than 1 ms."""
    waited: int = 0
    """Sends that waited for a free slot under --max-inflight."""
    median_latency_ms: float = math.nan
    """Median latency from the intended send of the successful requests: what the lag shapes."""

    @property
    def kept_up(self) -> bool:
        """No lag that matters for the latencies (`traces.lag_matters`, as in `report`)."""
        return not lag_matters(self.p99_ms * 1e6, self.median_latency_ms * 1e6)

    def line(self) -> str:
        return (
            f"lag health: p50 {self.p50_ms:.3f} ms, p99 {self.p99_ms:.3f} ms, "
            f"max {self.max_ms:.3f} ms; {self.late_share:.1%} of {self.sends} sends later "
            "than 1 ms"
        )

    def warning(self, planned_rate: float | None, achieved_rate: float) -> str | None:
        """The loud line when the lag matters for the latencies, with what to do about it."""
        if self.kept_up:
            return None
        share = (
            f", {self.p99_ms / self.median_latency_ms:.0%} of the median latency"
            if self.median_latency_ms > 0
            else ""
        )
        text = (
            f"WARNING: the replayer could not keep up: send lag p99 {self.p99_ms:.1f} ms{share} "
            f"({lag_rule_text()} matters)"
        )
        if planned_rate:
            text += f"; sent at {achieved_rate:.1f} req/s of {planned_rate:.1f} planned"
        if self.waited:
            text += f"; {self.waited} sends waited for a free slot (--max-inflight)"
        return (
            text + ". Latencies from the intended time stay honest, but the load did not reach "
            f"the server on schedule: {lag_advice()}."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "sends": self.sends,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "late_share": self.late_share,
            "waited": self.waited,
            "median_latency_ms": self.median_latency_ms
            if self.median_latency_ms == self.median_latency_ms
            else None,
            "kept_up": self.kept_up,
        }


@dataclass
class Stats:
    """Running counts of a replay, updated on the event loop (cheap appends only)."""

    planned: int = 0
    sent: int = 0
    done: int = 0
    errors: int = 0
    warmup: int = 0
    connected: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    first_sent_ns: int | None = None
    last_sent_ns: int = 0
    last_done_ns: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)
    lags: array[int] = field(default_factory=lambda: array("q"))
    latency: array[int] = field(default_factory=lambda: array("q"))
    service: array[int] = field(default_factory=lambda: array("q"))
    recent_lags: deque[int] = field(default_factory=lambda: deque(maxlen=_RECENT))

    def on_dispatch(self) -> None:
        self.sent += 1

    def on_done(self, exchange: Exchange) -> None:
        """Count a finished exchange (its lag is known only once its first bytes went out)."""
        self.done += 1
        lag = exchange.lag_ns
        self.recent_lags.append(lag)
        sent = exchange.sent_ns if exchange.sent_ns is not None else exchange.attempt_ns
        self.first_sent_ns = sent if self.first_sent_ns is None else min(self.first_sent_ns, sent)
        self.last_sent_ns = max(self.last_sent_ns, sent)
        if not exchange.warmup:
            self.lags.append(lag)
        self.last_done_ns = max(self.last_done_ns, exchange.done_ns or 0)
        self.bytes_up += exchange.bytes_up
        self.bytes_down += exchange.bytes_down
        self.connected += exchange.connected
        failed = exchange.error is not None or (exchange.status or 0) >= 400
        self.errors += failed
        if exchange.error is not None:
            self.error_kinds[exchange.error.kind] += 1
        if exchange.status is not None:
            self.statuses[str(exchange.status)] += 1
        if exchange.warmup:
            self.warmup += 1
        elif not failed and exchange.done_ns is not None:
            self.latency.append(exchange.done_ns - exchange.intended_ns)
            self.service.append(exchange.done_ns - sent)

    def on_invalid(self, exchange: Exchange) -> None:
        """Count again as an error an exchange `on_done` took for a success (see OutcomeSink)."""
        assert exchange.error is not None
        self.errors += 1
        self.error_kinds[exchange.error.kind] += 1
        if not exchange.warmup and exchange.done_ns is not None:
            sent = exchange.sent_ns if exchange.sent_ns is not None else exchange.attempt_ns
            # Equal values are interchangeable: removing any one leaves the right multiset.
            self.latency.remove(exchange.done_ns - exchange.intended_ns)
            self.service.remove(exchange.done_ns - sent)

    def elapsed_s(self, now_ns: int) -> float:
        return max(now_ns - (self.first_sent_ns or 0), 1) / 1e9

    def achieved_rate(self) -> float:
        """Sends per second over the span of the sends (n sends, n - 1 gaps)."""
        if self.first_sent_ns is None or self.last_sent_ns <= self.first_sent_ns:
            return 0.0
        return (self.done - 1) / ((self.last_sent_ns - self.first_sent_ns) / 1e9)

    def current_lag_p99_ms(self) -> float:
        """Lag p99 of the last 1000 sends; runs on the event loop (pure Python, no numpy)."""
        return _quantile_ms(self.recent_lags, 0.99)

    def lag_health(self, waited: int = 0) -> LagHealth:
        lags = self.lags
        late = sum(1 for lag in lags if lag > LAG_LATE_NS)
        return LagHealth(
            sends=len(lags),
            p50_ms=_quantile_ms(lags, 0.5),
            p99_ms=_quantile_ms(lags, 0.99),
            max_ms=(max(lags) / 1e6) if lags else 0.0,
            late_share=late / len(lags) if lags else 0.0,
            waited=waited,
            median_latency_ms=self.latency_ms("intended", 50) if self.latency else math.nan,
        )

    def latency_ms(self, which: str, percent: float) -> float:
        """The `percent`-th percentile (e.g. 99) of "intended" or "service" latency, in ms."""
        values = self.latency if which == "intended" else self.service
        return _quantile_ms(values, percent / 100)


SATURATED = 0.9
"""The server kept under 90% of the send rate: it fell behind the load and requests queued."""


def saturated(stats: Stats, send_rate: float, duration_s: float) -> bool:
    """Whether the server completed (well or not) fewer requests per second than were sent.

    The run's duration ends one latency after the last send; the fastest service latency (a
    request that did not queue) is taken off, so a short run that kept up is not called
    saturated for the time its last request took.
    """
    if stats.done < 2 or send_rate <= 0 or not stats.service:
        return False
    busy_s = duration_s - min(stats.service) / 1e9
    return busy_s > 0 and stats.done / busy_s < SATURATED * send_rate


def summary_table(
    stats: Stats, achieved_rate: float, duration_s: float, planned_rate: float | None = None
) -> list[tuple[str, str]]:
    """The final summary as (label, value) rows; rendered by rich or as plain text.

    Three rates, never one for another: what was sent (the replayer's side), and what
    succeeded over the whole run (what the server sustained).
    """
    succeeded = stats.done - stats.errors
    throughput = succeeded / duration_s if duration_s > 0 else 0.0
    planned = f" (planned {planned_rate:.2f})" if planned_rate else ""
    sustained = f"{throughput:.2f} req/s succeeded"
    if saturated(stats, achieved_rate, duration_s):
        sustained += " - below the sent rate: the server was saturated and requests queued"
    rows = [
        ("requests sent", f"{stats.sent} of {stats.planned} planned"),
        ("completed", f"{stats.done} ({succeeded} succeeded)"),
        ("warmup (excluded below)", str(stats.warmup)),
        ("errors", str(stats.errors)),
        ("duration", f"{duration_s:.2f} s"),
        ("sent rate", f"{achieved_rate:.2f} req/s{planned}"),
        ("server throughput", sustained),
    ]
    if stats.statuses:
        rows.append(("statuses", ", ".join(f"{k}: {v}" for k, v in sorted(stats.statuses.items()))))
    if stats.error_kinds:
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(stats.error_kinds.items()))
        rows.append(("transport errors", kinds))
    for label, which in (("latency from intended", "intended"), ("service latency", "service")):
        if len(stats.latency):
            cells = ", ".join(f"p{q:g} {stats.latency_ms(which, q):.1f}" for q in (50, 90, 99))
            rows.append((f"{label} (ms)", cells))
    rows.append(("bytes up / down", f"{stats.bytes_up:,} / {stats.bytes_down:,}"))
    return rows


class Live:
    """The rich progress bar on stderr: sent, in flight, done, errors, rate, current lag p99.

    `refresh()` updates the figures from a periodic task, never per request; rich draws them
    from its own thread.
    """

    def __init__(self, console: Console, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress: Progress = Progress(
            TextColumn("replay"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
            # Rendering happens on rich's own thread (~1 ms per frame): on the event loop it
            # would delay sends; on a thread the loop takes the GIL back within 0.5 ms.
            auto_refresh=True,
            refresh_per_second=4,
            transient=False,
        )
        self.task: TaskID = self.progress.add_task("replay", total=total, detail="")

    @contextmanager
    def shown(self) -> Iterator[Live]:
        with self.progress:
            yield self

    def refresh(self, stats: Stats, in_flight: int, now_ns: int) -> None:
        rate = stats.sent / stats.elapsed_s(now_ns) if stats.sent else 0.0
        detail = (
            f"sent {stats.sent} · in flight {in_flight} · done {stats.done} · "
            f"errors {stats.errors} · {rate:.1f} req/s · lag p99 "
            f"{stats.current_lag_p99_ms():.2f} ms"
        )
        self.progress.update(self.task, completed=stats.sent, detail=detail)
