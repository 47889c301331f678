"""Counting, the progress line, the summary and the lag-health line, from made-up exchanges."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from analyzer import _stats
from replayer._progress import LagHealth, Live, Stats, summary_table
from replayer._sender import Exchange
from traces import ErrorInfo, quantile

MS = 1_000_000


def exchange(seq: int, lag_ms: float, **kwargs: object) -> Exchange:
    intended = seq * 10 * MS
    fields: dict[str, object] = {
        "seq": seq,
        "request_id": f"r{seq}",
        "loop": 0,
        "warmup": False,
        "intended_ns": intended,
        "attempt_ns": intended,
        "sent_ns": intended + int(lag_ms * MS),
        "done_ns": intended + int(lag_ms * MS) + 50 * MS,
        "status": 200,
    }
    fields.update(kwargs)
    return Exchange(**fields)  # type: ignore[arg-type]


def stats_of(lags_ms: list[float]) -> Stats:
    stats = Stats(planned=len(lags_ms))
    for seq, lag in enumerate(lags_ms):
        stats.on_dispatch()
        stats.on_done(exchange(seq, lag))
    return stats


def test_lag_health_counts_late_sends_and_stays_quiet_when_kept_up() -> None:
    health = stats_of([0.1] * 95 + [2.0] * 5).lag_health()
    assert health.sends == 100
    assert health.late_share == 0.05
    assert health.max_ms == 2.0
    assert health.kept_up
    assert health.warning(100.0, 100.0) is None
    assert "5.0% of 100 sends later than 1 ms" in health.line()


def test_lag_health_warns_loudly_when_behind() -> None:
    health = stats_of([0.1] * 90 + [20.0] * 10).lag_health(waited=7)
    assert not health.kept_up
    warning = health.warning(300.0, 250.0)
    assert warning is not None
    assert warning.startswith("WARNING: the replayer could not keep up")
    assert "250.0 req/s of 300.0 planned" in warning
    assert "7 sends waited for a free slot" in warning


def test_warmup_and_failures_stay_out_of_latency_and_lag() -> None:
    stats = Stats(planned=4)
    stats.on_done(exchange(0, 50.0, warmup=True))
    stats.on_done(exchange(1, 0.2))
    stats.on_done(exchange(2, 0.3, status=500))
    stats.on_done(exchange(3, 0.1, status=None, sent_ns=None, error=ErrorInfo(kind="connect")))
    # A send that never went out counts from when it was started (here: on time).
    assert list(stats.lags) == [int(0.2 * MS), int(0.3 * MS), 0]
    assert len(stats.latency) == 1  # only the successful, non-warmup exchange
    assert stats.errors == 2 and stats.warmup == 1
    assert stats.connected == 3
    assert stats.error_kinds == {"connect": 1}
    rows = dict(summary_table(stats, 99.0, 1.0))
    assert rows["statuses"] == "200: 2, 500: 1"
    assert rows["transport errors"] == "connect: 1"


def test_live_progress_line() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200)
    stats = stats_of([0.1, 0.2, 3.0])
    live = Live(console, total=10)
    with live.shown():
        live.refresh(stats, in_flight=2, now_ns=1_000 * MS)
    text = buffer.getvalue()
    assert "3/10" in text
    assert "in flight 2" in text and "errors 0" in text
    assert "lag p99 3.00 ms" in text


def test_lag_health_as_dict_round_trip() -> None:
    health = LagHealth(sends=3, p50_ms=0.2, p99_ms=0.5, max_ms=0.6, late_share=0.0)
    assert health.as_dict()["kept_up"] is True


def test_summary_live_bar_and_report_agree_on_lag_p99() -> None:
    # 200 lags from 0.1 to 20 ms: the summary used to interpolate (19.801 ms) and the live bar
    # to take index ceil(0.99 * 199) (19.9 ms); the shared inverted-CDF rule gives 19.8 ms.
    lags = [0.1 * (i + 1) for i in range(200)]
    stats = stats_of(lags)
    ordered = sorted(stats.lags)
    expected = quantile(ordered, 0.99) / MS
    assert stats.lag_health().p99_ms == expected == stats.current_lag_p99_ms()
    assert expected == pytest.approx(19.8, abs=0.01)
    assert _stats.quantile(np.array(ordered, dtype=np.float64), 0.99) / MS == expected
    latency = sorted(stats.latency)
    assert stats.latency_ms("intended", 99) == quantile(latency, 0.99) / MS
