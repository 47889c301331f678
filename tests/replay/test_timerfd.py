"""Precise waits: the event loop's timerfd, and the waker thread where there is none."""

from __future__ import annotations

import asyncio
import time

import pytest

from replayer import _waker
from replayer._timerfd import TimerFd
from replayer._waker import wait_precisely


async def _waits(offsets_ms: list[float]) -> list[tuple[float, int, int]]:
    """(offset, deadline, woke) for waits started together, in the order they ended."""
    start = time.perf_counter_ns()
    ended: list[tuple[float, int, int]] = []

    async def one(offset_ms: float) -> None:
        deadline = start + int(offset_ms * 1e6)
        await wait_precisely(deadline)
        ended.append((offset_ms, deadline, time.perf_counter_ns()))

    await asyncio.gather(*(one(offset) for offset in offsets_ms))
    return ended


@pytest.mark.parametrize("timerfd", [True, False], ids=["timerfd", "waker-thread"])
def test_waits_end_in_deadline_order_and_never_early(
    monkeypatch: pytest.MonkeyPatch, timerfd: bool
) -> None:
    if not timerfd:
        monkeypatch.setattr(TimerFd, "for_loop", classmethod(lambda cls, loop: None))
    # Registered out of order: a later registration with an earlier deadline re-arms the timer.
    offsets = [30.0, 5.0, 20.0, 5.0, 1.0, -1.0, 12.0]
    ended = asyncio.run(_waits(offsets))
    assert sorted(offset for offset, _, _ in ended) == sorted(offsets)
    assert [offset for offset, _, _ in ended] == sorted(offsets)
    assert all(woke >= deadline for _, deadline, woke in ended)


def test_one_timer_per_loop_and_a_cancelled_wait_is_passed_over() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        timer = TimerFd.for_loop(loop)
        assert timer is not None and TimerFd.for_loop(loop) is timer
        start = time.perf_counter_ns()
        order: list[str] = []

        async def wait(name: str, offset_ms: float) -> None:
            await wait_precisely(start + int(offset_ms * 1e6))
            order.append(name)

        first = asyncio.ensure_future(wait("cancelled", 2))
        later = asyncio.ensure_future(wait("later", 8))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.gather(later, return_exceptions=True)
        return order

    assert asyncio.run(main()) == ["later"]


def test_without_timerfd_the_waker_thread_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("replayer._timerfd._LIBC", None)

    async def main() -> bool:
        loop = asyncio.get_running_loop()
        assert TimerFd.for_loop(loop) is None
        await wait_precisely(time.perf_counter_ns() + 2_000_000)
        return loop in _waker._wakers

    assert asyncio.run(main())
