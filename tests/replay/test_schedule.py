"""The replay plan, without sending: offsets, speed, re-timing, selection, dry run."""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from replay_helpers import MS, write_trace

from replayer import Plan, Selection, Shaper, Timing
from replayer._schedule import parse_arrival, parse_filter, parse_window
from traces import ArrivalProcess, TraceReader, UsageError

OFFSETS = [0, 30, 60, 150, 200, 420]


_open: list[TraceReader] = []


@pytest.fixture(autouse=True)
def _close_readers() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def plan(path: Path, timing: Timing, selection: Selection | None = None, **shaping: Any) -> Plan:
    reader = TraceReader(path)
    _open.append(reader)
    shaper = Shaper("http://127.0.0.1:9", **shaping)
    result = Plan(reader, selection or Selection(), timing, shaper)
    result.run_survey()
    return result


def times(p: Plan) -> list[int]:
    out = [s.intended_ns for s in p.slots()]
    assert None not in out
    return [t for t in out if t is not None]


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    return write_trace(
        tmp_path / "t.imgtrace",
        OFFSETS,
        fields=lambda i: {"size": "512x512" if i % 2 else "1024x1024"},
    )


def test_original_offsets_are_the_trace_offsets(trace: Path) -> None:
    slots = list(plan(trace, Timing()).slots())
    assert [s.intended_ns for s in slots] == [int(o * MS) for o in OFFSETS]
    assert [s.request.id for s in slots] == [f"r{i:04d}" for i in range(len(OFFSETS))]


def test_speed_divides_offsets(trace: Path) -> None:
    slots = list(plan(trace, Timing(speed=2.0)).slots())
    assert [s.intended_ns for s in slots] == [int(o * MS / 2) for o in OFFSETS]
    assert slots[-1].intended_ns == 210 * MS  # half of the 420 ms span


def test_constant_rate_retimes_and_keeps_order(trace: Path) -> None:
    slots = list(plan(trace, Timing("rate", rate=100.0)).slots())
    assert [s.intended_ns for s in slots] == [i * 10 * MS for i in range(len(OFFSETS))]
    assert [s.seq for s in slots] == list(range(len(OFFSETS)))


def test_poisson_and_gamma_are_seeded_and_have_the_right_mean(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "many.imgtrace", list(range(2000)))
    for arrival, shape in (("poisson", 1.0), ("gamma", 0.5), ("gamma", 4.0)):
        timing = Timing("rate", rate=100.0, arrival=arrival, shape=shape, arrival_seed=7)
        first = times(plan(path, timing))
        again = times(plan(path, timing))
        assert first == again
        assert first == sorted(first)
        gaps = [b - a for a, b in zip(first, first[1:], strict=False)]
        assert statistics.mean(gaps) == pytest.approx(10 * MS, rel=0.1)
    other = Timing("rate", rate=100.0, arrival="poisson", arrival_seed=8)
    assert [s.intended_ns for s in plan(path, other).slots()] != first


def test_rate_retiming_is_the_arrival_process_synth_uses(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "many.imgtrace", list(range(300)))
    timing = Timing("rate", rate=40.0, arrival="gamma", shape=0.5, arrival_seed=11)
    selection = Selection(loop=2)
    process = ArrivalProcess.steady("gamma", 40.0, burstiness=0.5)
    # The same seed and process give `synth` its arrivals; a second pass continues the process.
    expected = process.times(np.random.default_rng(11), 600, None)
    assert times(plan(path, timing, selection)) == [round(t * 1e9) for t in expected]


def test_gamma_shape_changes_burstiness(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "many.imgtrace", list(range(2000)))

    def cv(shape: float) -> float:
        timing = Timing("rate", rate=100.0, arrival="gamma", shape=shape)
        offsets = times(plan(path, timing))
        gaps = [b - a for a, b in zip(offsets, offsets[1:], strict=False)]
        return statistics.stdev(gaps) / statistics.mean(gaps)

    assert cv(0.25) > 1.5 > 1.0 > 0.6 > cv(4.0)


def test_window_limit_loop_and_warmup(trace: Path) -> None:
    selection = Selection(window=(0.03, 0.2), limit=2, loop=3, warmup=2)
    slots = list(plan(trace, Timing(), selection).slots())
    assert [s.request.id for s in slots] == ["r0001", "r0002"] * 3
    assert [s.loop for s in slots] == [0, 0, 1, 1, 2, 2]
    assert [s.warmup for s in slots] == [True, True, False, False, False, False]
    # Rebased to the first selected request; a pass lasts its span plus one mean gap.
    assert [s.intended_ns for s in slots] == [0, 30 * MS, 60 * MS, 90 * MS, 120 * MS, 150 * MS]


def test_filter_by_field_and_path(trace: Path) -> None:
    selection = Selection(filters=(parse_filter("size=512*"), parse_filter("path=/v1/*")))
    slots = list(plan(trace, Timing(), selection).slots())
    assert [s.request.id for s in slots] == ["r0001", "r0003", "r0005"]
    assert slots[0].intended_ns == 0


def test_closed_loop_has_no_intended_times(trace: Path) -> None:
    assert all(s.intended_ns is None for s in plan(trace, Timing("closed", concurrency=2)).slots())


def test_dry_run_reports_duration_rates_and_mix(trace: Path) -> None:
    result = plan(trace, Timing(speed=2.0)).dry_run()
    assert result.sends == len(OFFSETS)
    assert result.duration_s == pytest.approx(0.21)
    assert result.mean_rate == pytest.approx(5 / 0.21)
    assert result.peak_rate == len(OFFSETS)
    assert result.mix["size"] == {"512x512": 3, "1024x1024": 3}
    assert result.mix["endpoint"] == {"POST /v1/images/edits": 6}


def test_dry_run_mix_shows_set_overrides(trace: Path) -> None:
    p = plan(trace, Timing(), sets=[("num_inference_steps", "8")])
    assert p.dry_run().mix["num_inference_steps"] == {"8": 6}


@pytest.mark.parametrize("text", ["", "5", "a:b", "10:5", "3:3"])
def test_bad_window(text: str) -> None:
    with pytest.raises(UsageError, match="--window"):
        parse_window(text)


@pytest.mark.parametrize("text", ["uniform", "gamma", "gamma:0", "gamma:x", "poisson:2"])
def test_bad_arrival(text: str) -> None:
    with pytest.raises(UsageError, match="--arrival"):
        parse_arrival(text)


def test_bad_filter() -> None:
    with pytest.raises(UsageError, match="--filter"):
        parse_filter("size")


def test_out_of_order_trace_is_sent_in_time_order_without_a_warning(tmp_path: Path) -> None:
    # Recordings list requests as they finished: arrival order is the reader's business.
    path = write_trace(tmp_path / "shuffled.imgtrace", [0, 50, 20, 80])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = plan(path, Timing())
    assert times(p) == [0, 20 * MS, 50 * MS, 80 * MS]
    assert [s.request.id for s in p.slots()] == ["r0000", "r0002", "r0001", "r0003"]
    assert [s.seq for s in p.slots()] == [0, 1, 2, 3]


def test_out_of_order_trace_is_re_timed_in_arrival_order(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "shuffled.imgtrace", [0, 50, 20, 80])
    p = plan(path, Timing(mode="rate", rate=10.0))
    assert [s.request.id for s in p.slots()] == ["r0000", "r0002", "r0001", "r0003"]
    assert times(p) == [0, 100 * MS, 200 * MS, 300 * MS]


def test_window_and_limit_select_by_arrival_in_an_unsorted_trace(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "shuffled.imgtrace", [0, 50, 20, 80, 10])
    first_three = plan(path, Timing(), Selection(limit=3))
    assert [s.request.id for s in first_three.slots()] == ["r0000", "r0004", "r0002"]
    window = plan(path, Timing(), Selection(window=(0.015, 0.06)))
    assert [s.request.id for s in window.slots()] == ["r0002", "r0001"]
