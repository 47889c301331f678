"""The partition (send k to part k mod N) and the shared start time, as library calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scale_support import write_trace

from replayer import (
    Partition,
    ReplayConfig,
    Selection,
    StartAt,
    Timing,
    dry_run,
    group_id,
    parse_shard,
    parse_start_at,
    part_of,
)
from replayer._start import clock_at
from traces import UsageError


@given(st.integers(1, 400), st.integers(1, 17))
def test_parts_are_disjoint_complete_and_thinned_evenly(total: int, count: int) -> None:
    parts = [Partition(i, count).size(total) for i in range(count)]
    assert sum(parts) == total
    assert max(parts) - min(parts) <= 1
    owners = [part_of(seq, count) for seq in range(total)]
    for index in range(count):
        assert [s for s in range(total) if owners[s] == index] == list(range(index, total, count))


def test_parse_shard() -> None:
    assert parse_shard(" 3/4 ") == Partition(3, 4)
    assert parse_shard("0/1").label == "0/1"


def test_start_at_forms() -> None:
    assert parse_start_at("2026-12-01T10:00:00Z") == 1_796_119_200 * 10**9
    assert parse_start_at("2026-12-01T11:00:00+01:00") == 1_796_119_200 * 10**9
    assert parse_start_at("2026-12-01T10:00:00.25Z") == 1_796_119_200_250_000_000
    assert parse_start_at("1796119200.5") == 1_796_119_200_500_000_000
    assert parse_start_at("1796119200.123456789") == 1_796_119_200_123_456_789
    assert parse_start_at("2026-12-01T09:59:59.999999Z") == 1_796_119_199_999_999_000


@pytest.mark.parametrize(
    ("parse", "text", "fragment"),
    [
        (parse_shard, "2/2", "I must be from 0 to 1"),
        (parse_shard, "0/0", "N must be at least 1"),
        (parse_shard, "-1/2", "expected I/N"),
        (parse_shard, "1", "expected I/N"),
        (parse_shard, "a/b", "expected I/N"),
        (parse_start_at, "tomorrow", "expected ISO 8601"),
        (parse_start_at, "2026-13-01T10:00:00Z", "expected ISO 8601"),
        (parse_start_at, "2026-12-01T10:00:00", "give a UTC offset"),
        (parse_start_at, "-5", "positive"),
        (parse_start_at, "nan", "positive"),
        (parse_start_at, "inf", "positive"),
    ],
)
def test_bad_shards_and_start_times(
    parse: Callable[[str], object], text: str, fragment: str
) -> None:
    with pytest.raises(UsageError, match=fragment):
        parse(text)


def test_a_start_past_the_grace_is_refused_within_it_kept() -> None:
    now = time.time_ns()
    StartAt(now - 500_000_000, grace_s=1.0).check_not_passed(now)
    with pytest.raises(UsageError, match=r"passed 1\.500 s ago \(grace 1 s\)"):
        StartAt(now - 1_500_000_000, grace_s=1.0).check_not_passed(now)
    with pytest.raises(UsageError, match="--start-grace"):
        StartAt(now, grace_s=-1)


def test_clock_at_names_the_given_instant_and_counts_from_it() -> None:
    start = time.time_ns() + 200_000_000
    clock = clock_at(StartAt(start))
    assert clock.t0_wall == start
    # Offset zero lies about 200 ms ahead on the monotonic clock too.
    assert -210_000_000 < clock.now() < -150_000_000


def test_group_id_is_a_function_of_trace_and_start() -> None:
    assert group_id("abc", 1) == group_id("abc", 1)
    assert len({group_id("abc", 1), group_id("abc", 2), group_id("abd", 1)}) == 3


def test_dry_run_of_a_shard_counts_its_part(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [i * 10 for i in range(10)])
    whole = dry_run(ReplayConfig(trace, "http://127.0.0.1:1"))
    assert whole.sends == 10
    parts = [
        dry_run(ReplayConfig(trace, "http://127.0.0.1:1", shard=Partition(i, 3))).sends
        for i in range(3)
    ]
    assert parts == [4, 3, 3]


def test_a_shard_keeps_the_unsharded_rate_schedule(tmp_path: Path) -> None:
    """Re-timed arrivals (poisson) are drawn for the whole schedule, then thinned."""
    from replayer import PartPlan, Plan, Shaper
    from traces import TraceReader

    trace = write_trace(tmp_path / "t.imgtrace", [0] * 12)
    timing = Timing("rate", rate=50, arrival="poisson", arrival_seed=7)
    shaper = Shaper(target="http://127.0.0.1:1")
    with TraceReader(trace) as reader:
        plan = Plan(reader, Selection(loop=2), timing, shaper)
        plan.run_survey()
        whole = {slot.seq: slot.intended_ns for slot in plan.slots()}
        merged: dict[int, int | None] = {}
        for index in range(5):
            part = PartPlan(reader, Selection(loop=2), timing, shaper, Partition(index, 5))
            part.run_survey()
            assert part.total == len(range(index, 24, 5))
            merged.update((slot.seq, slot.intended_ns) for slot in part.slots())
    assert merged == whole


@given(st.integers(1000, 9_000_000_000 * 10**9))
def test_start_at_round_trips_unix_seconds_and_iso(wall_ns: int) -> None:
    from datetime import datetime, timedelta, timezone

    seconds, rest = divmod(wall_ns, 10**9)
    assert parse_start_at(f"{seconds}.{rest:09d}") == wall_ns
    micro = wall_ns // 1000 * 1000
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micro // 1000)
    assert parse_start_at(moment.isoformat()) == micro
    assert parse_start_at(moment.isoformat().replace("+00:00", "Z")) == micro


@given(st.text(max_size=30))
def test_start_at_never_fails_other_than_usage_error(text: str) -> None:
    try:
        parse_start_at(text)
    except UsageError as exc:
        assert str(exc).startswith("--start-at ")


@pytest.mark.parametrize("text", ["1e30", "9999999999999", "1969-12-31T00:00:00Z"])
def test_start_at_outside_the_representable_range(text: str) -> None:
    with pytest.raises(UsageError, match="--start-at"):
        parse_start_at(text)


@pytest.mark.parametrize(
    "options",
    [{"group": "g"}, {"group": " ", "shard": Partition(0, 2)}],
)
def test_replay_config_refuses_a_group_without_a_shard_or_an_empty_one(
    options: dict[str, object],
) -> None:
    with pytest.raises(UsageError, match="--group"):
        ReplayConfig(Path("t.imgtrace"), "http://127.0.0.1", **options)  # type: ignore[arg-type]
