"""Interleaved replays against real echo servers: one schedule, every target, a seeded order.

Assertions are on recorded values (intended and sent offsets, headers, counts), never on how
long something took on the wall clock.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from replay_helpers import MS, Server, start_echo, write_trace

from replayer import (
    InterleavedResult,
    ReplayConfig,
    Selection,
    Target,
    Timing,
    replay,
    replay_interleaved,
    replay_interleaved_async,
    send_order,
)
from traces import Outcome, TraceReader


@pytest.fixture(scope="module")
def other_echo() -> Iterator[Server]:
    """A second server, so that A and B are different processes."""
    server = start_echo()
    yield server
    server.stop()


def targets(a: Server, b: Server) -> list[Target]:
    return [Target("a", a.url), Target("a2", a.url), Target("b", b.url)]


def read_run(path: Path) -> tuple[list[Outcome], TraceReader]:
    reader = TraceReader(path)
    outcomes = sorted(reader.outcomes(), key=lambda o: o.seq)
    return outcomes, reader


def interleaved(
    trace: Path, out: Path, group: list[Target], **options: object
) -> InterleavedResult:
    config = ReplayConfig(trace=trace, targets=group, output=out, **options)  # type: ignore[arg-type]
    return replay_interleaved(config)


def runs_of(out: Path, names: list[str]) -> dict[str, list[Outcome]]:
    found = {}
    for name in names:
        outcomes, reader = read_run(out / f"{name}.imgtrace")
        with reader:
            assert reader.closed_cleanly
        found[name] = outcomes
    return found


@pytest.mark.parametrize(
    "timing",
    [Timing(), Timing("rate", rate=80.0, arrival="poisson", arrival_seed=3)],
    ids=["original", "poisson"],
)
def test_schedule_is_identical_across_targets(
    tmp_path: Path, echo: Server, other_echo: Server, timing: Timing
) -> None:
    offsets = [0, 15, 30, 32, 60, 90, 95, 140]
    trace = write_trace(tmp_path / "t.imgtrace", offsets)
    out = tmp_path / "group"
    result = interleaved(trace, out, targets(echo, other_echo), timing=timing, order_seed=11)
    assert sorted(result.runs) == ["a", "a2", "b"]
    runs = runs_of(out, ["a", "a2", "b"])
    schedules = {
        name: [(o.seq, o.request_id, o.loop, o.intended_ns) for o in outcomes]
        for name, outcomes in runs.items()
    }
    assert len(schedules["a"]) == len(offsets)
    assert schedules["a"] == schedules["a2"] == schedules["b"]
    if timing.mode == "original":
        assert [o.intended_ns for o in runs["a"]] == [o * MS for o in offsets]
    for outcomes in runs.values():
        assert all(o.status == 200 and o.error is None for o in outcomes)
        # Never early, each against the one intended time of its slot.
        assert all(o.sent_ns is not None and o.sent_ns >= o.intended_ns for o in outcomes)
    # Each target's lag is its own: the run's summary counts its own sends.
    for name, run in result.runs.items():
        assert run.lag.sends == len(offsets) and run.stats.done == len(offsets), name


def test_headers_name_the_group_seed_and_targets(
    tmp_path: Path, echo: Server, other_echo: Server
) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0, 10])
    out = tmp_path / "group"
    result = interleaved(trace, out, targets(echo, other_echo), order_seed=5)
    groups = set()
    for name in ("a", "a2", "b"):
        with TraceReader(out / f"{name}.imgtrace") as reader:
            info = reader.header.interleave
            assert info is not None
            assert info.name == name and info.order_seed == 5
            assert info.targets == {"a": echo.url, "a2": echo.url, "b": other_echo.url}
            assert reader.header.target == (other_echo.url if name == "b" else echo.url)
            groups.add(info.group)
    assert groups == {result.group}
    # Another replay is another group, and a drawn seed is recorded.
    again = interleaved(trace, tmp_path / "again", targets(echo, other_echo))
    assert again.group != result.group
    with TraceReader(tmp_path / "again" / "a.imgtrace") as reader:
        assert reader.header.interleave is not None
        assert reader.header.interleave.order_seed == again.order_seed


def test_single_plain_target_writes_no_group(tmp_path: Path, echo: Server) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0, 10])
    replay(ReplayConfig(trace=trace, target=echo.url, output=tmp_path / "run.imgtrace"))
    with TraceReader(tmp_path / "run.imgtrace") as reader:
        assert reader.header.interleave is None


def test_send_order_is_a_seeded_uniform_permutation() -> None:
    orders = [send_order(7, seq, 3) for seq in range(3000)]
    assert orders == [send_order(7, seq, 3) for seq in range(3000)]  # reproducible
    assert all(sorted(order) == [0, 1, 2] for order in orders)
    counts = Counter(orders)
    assert set(counts) == set(itertools.permutations(range(3)))
    # 500 expected per order; 4 standard deviations (~4 x 20) either side.
    assert all(420 <= count <= 580 for count in counts.values()), counts
    assert [send_order(8, seq, 3) for seq in range(3000)] != orders
    # Each target goes first about equally often, for any count.
    firsts = Counter(send_order(1, seq, 5)[0] for seq in range(5000))
    assert all(850 <= count <= 1150 for count in firsts.values()), firsts
    assert send_order(3, 0, 1) == (0,)


def test_sends_go_out_in_the_drawn_order(tmp_path: Path, echo: Server, other_echo: Server) -> None:
    # Slots 20 ms apart: every target has an idle connection at each deadline, so the sends of
    # a slot leave in the order the dispatcher started them.
    count = 60
    trace = write_trace(tmp_path / "t.imgtrace", [i * 20 for i in range(count)])
    out = tmp_path / "group"
    group = targets(echo, other_echo)
    interleaved(trace, out, group, order_seed=1234)
    runs = runs_of(out, [t.name for t in group])
    matches = 0
    for seq in range(1, count):  # the first slot opens its connections
        sent = [runs[t.name][seq].sent_ns or 0 for t in group]
        observed = tuple(sorted(range(len(group)), key=lambda i: sent[i]))
        matches += observed == send_order(1234, seq, len(group))
    # A fixed order (a, a2, b) would match about 1 slot in 6.
    assert matches >= 0.8 * (count - 1), matches


def test_dead_target_does_not_stop_the_others(tmp_path: Path, echo: Server, refused: str) -> None:
    offsets = [0, 10, 20, 30, 40]
    trace = write_trace(tmp_path / "t.imgtrace", offsets)
    out = tmp_path / "group"
    dead = refused
    result = interleaved(trace, out, [Target("a", echo.url), Target("b", dead)])
    assert result.unreachable() == ["b"]
    error, _ = result.problems()
    assert error is not None and "b (" in error and dead in error
    runs = runs_of(out, ["a", "b"])
    assert [o.status for o in runs["a"]] == [200] * len(offsets)
    assert len(runs["b"]) == len(offsets)
    assert all(o.error is not None and o.error.kind == "connect" for o in runs["b"])
    assert all(o.sent_ns is None and o.status is None for o in runs["b"])
    assert [o.intended_ns for o in runs["a"]] == [o.intended_ns for o in runs["b"]]


def test_a_capped_slow_target_queues_only_its_own_sends(
    tmp_path: Path, echo: Server, slow_echo: Server
) -> None:
    # 40 req/s against a target taking 50 ms with one request in flight: B's sends wait for
    # its one lane, A's (answered at once) hardly ever, and A's sends go on schedule while
    # B's queue is still working off.
    trace = write_trace(tmp_path / "t.imgtrace", [0] * 12)
    out = tmp_path / "group"
    result = interleaved(
        trace,
        out,
        [Target("a", echo.url), Target("b", slow_echo.url)],
        timing=Timing("rate", rate=40.0, max_inflight=1),
    )
    assert result.runs["a"].lag.waited <= 3
    assert result.runs["b"].lag.waited >= 6
    assert result.runs["b"].peak_in_flight == 1
    runs = runs_of(out, ["a", "b"])
    assert len(runs["a"]) == len(runs["b"]) == 12
    assert all(o.status == 200 for o in runs["a"] + runs["b"])
    # B needs >= 11 x 50 ms for its sends, A's schedule ends at 275 ms.
    last_a = max(o.sent_ns or 0 for o in runs["a"])
    last_b = max(o.sent_ns or 0 for o in runs["b"])
    assert last_a + 100 * MS < last_b
    # B's sends left in schedule order, each after the previous one finished.
    b = runs["b"]
    for before, after in itertools.pairwise(b):
        assert before.done_ns is not None and after.sent_ns is not None
        assert after.sent_ns >= before.done_ns


def test_closed_loop_runs_each_target_at_its_own_pace(
    tmp_path: Path, echo: Server, slow_echo: Server
) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [i * 10 for i in range(10)])
    out = tmp_path / "group"
    result = interleaved(
        trace,
        out,
        [Target("fast", echo.url), Target("slow", slow_echo.url)],
        timing=Timing("closed", concurrency=2),
    )
    runs = runs_of(out, ["fast", "slow"])
    for name, outcomes in runs.items():
        assert [o.request_id for o in outcomes] == [f"r{i:04d}" for i in range(10)]
        assert all(o.status == 200 for o in outcomes), name
        assert result.runs[name].peak_in_flight <= 2
    # The fast target did not wait for the slow one's loop.
    fast_end = max(o.done_ns or 0 for o in runs["fast"])
    slow_end = max(o.done_ns or 0 for o in runs["slow"])
    assert fast_end < slow_end


def test_selection_loop_and_warmup_apply_to_every_target(
    tmp_path: Path, echo: Server, other_echo: Server
) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0, 10, 20, 30, 40])
    out = tmp_path / "group"
    result = interleaved(
        trace,
        out,
        targets(echo, other_echo),
        selection=Selection(limit=3, loop=2, warmup=2),
        timing=Timing(speed=2.0),
        sets=[("num_inference_steps", "8")],
    )
    runs = runs_of(out, ["a", "a2", "b"])
    expected = [(f"r{i:04d}", loop) for loop in range(2) for i in range(3)]
    for name, outcomes in runs.items():
        assert [(o.request_id, o.loop) for o in outcomes] == expected, name
        assert [o.warmup for o in outcomes] == [True, True] + [False] * 4
        assert result.runs[name].lag.sends == 4
        fields = [o.envelope["fields"]["num_inference_steps"] for o in outcomes]
        assert fields == ["8"] * 6


@pytest.mark.anyio
async def test_interleaved_inside_an_event_loop(tmp_path: Path, echo: Server) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0, 10])
    config = ReplayConfig(
        trace=trace, targets=[Target("x", echo.url), Target("y", echo.url)], output=tmp_path / "d"
    )
    result = await replay_interleaved_async(config)
    assert {name: run.stats.done for name, run in result.runs.items()} == {"x": 2, "y": 2}
