"""The dispatcher's parts: the shared-memory ring for bodies, and the precise wake-up."""

from __future__ import annotations

import time

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replayer._ring import Ring
from replayer._waker import wait_precisely


def _fits(size: int, written: int, consumed: int, capacity: int) -> bool:
    """The ring's rule: a body never wraps, so one that would starts over at the beginning."""
    offset = written % capacity
    needed = size if offset + size <= capacity else capacity - offset + size
    return size <= capacity and written + needed - consumed <= capacity


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 700), st.booleans()), max_size=60))
def test_ring_hands_bodies_over_in_order_and_never_overwrites_one_not_taken(
    steps: list[tuple[int, bool]],
) -> None:
    # Each step puts a body of that size, and then, when told, takes the oldest one out.
    producer = Ring(1024)
    consumer = Ring(1024, producer.name)
    waiting: list[tuple[int, bytes]] = []
    written = consumed = 0
    try:
        for index, (size, take) in enumerate(steps):
            body = bytes([index % 251]) * size
            fits = _fits(size, written, consumed, 1024)
            at = producer.put(body)
            assert (at is not None) == fits
            if at is not None:
                waiting.append((at, body))
                written = at + size
            if take and waiting:
                position, expected = waiting.pop(0)
                assert consumer.take(position, len(expected)) == expected
                consumed = position + len(expected)
        for position, expected in waiting:
            assert consumer.take(position, len(expected)) == expected
    finally:
        consumer.close()
        producer.close()


def test_ring_refuses_a_body_bigger_than_itself_and_frees_space_when_taken() -> None:
    producer = Ring(100)
    consumer = Ring(100, producer.name)
    try:
        assert producer.put(b"x" * 101) is None
        first = producer.put(b"a" * 60)
        assert first is not None
        assert producer.put(b"b" * 60) is None  # full until the first is taken
        assert consumer.take(first, 60) == b"a" * 60
        second = producer.put(b"b" * 60)
        assert second is not None and consumer.take(second, 60) == b"b" * 60
    finally:
        consumer.close()
        producer.close()
    assert consumer.take(0, 1) == b""  # closed: nothing, and no crash


async def test_wait_precisely_is_never_early_and_wakes_each_deadline() -> None:
    woke: list[tuple[int, int]] = []

    async def sleeper(deadline: int) -> None:
        await wait_precisely(deadline)
        woke.append((deadline, time.perf_counter_ns()))

    now = time.perf_counter_ns()
    deadlines = [now + offset * 300_000 for offset in (7, 1, 4, 0, 9, 2)]
    async with anyio.create_task_group() as group:
        for deadline in deadlines:
            group.start_soon(sleeper, deadline)
    assert sorted(d for d, _ in woke) == sorted(deadlines)
    assert all(at >= deadline for deadline, at in woke)


async def test_a_cancelled_wait_leaves_the_others_on_time() -> None:
    woke: list[int] = []
    start = time.perf_counter_ns()

    async def sleeper(deadline: int) -> None:
        await wait_precisely(deadline)
        woke.append(deadline)

    async with anyio.create_task_group() as group:
        group.start_soon(sleeper, start + 50_000_000)  # cancelled long before it is due
        group.start_soon(sleeper, start + 2_000_000)
        await anyio.sleep(0.01)
        group.cancel_scope.cancel()
    assert woke == [start + 2_000_000]
    await wait_precisely(time.perf_counter_ns() + 1_000_000)  # and the waker still wakes


@pytest.mark.parametrize("delay_ms", [0, -5])
async def test_a_deadline_already_passed_returns_at_once(delay_ms: int) -> None:
    before = time.perf_counter_ns()
    await wait_precisely(before + delay_ms * 1_000_000)
    assert time.perf_counter_ns() - before < 1_000_000_000
