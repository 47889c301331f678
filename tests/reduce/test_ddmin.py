"""The delta-debugging core, as a pure function over a test callback (no servers)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from imgtrace._reduce import ddmin, minimize, split


@given(st.lists(st.integers(), max_size=60), st.integers(min_value=1, max_value=70))
def test_split_keeps_order_and_balances_sizes(items: list[int], parts: int) -> None:
    chunks = split(items, parts)
    assert [item for chunk in chunks for item in chunk] == items
    assert all(chunks)
    sizes = [len(chunk) for chunk in chunks]
    assert not sizes or max(sizes) - min(sizes) <= 1
    assert len(chunks) == min(parts, len(items))


@st.composite
def planted(draw: st.DrawFn) -> tuple[int, set[int]]:
    size = draw(st.integers(min_value=1, max_value=120))
    culprits = draw(st.sets(st.integers(0, size - 1), min_size=1, max_size=min(3, size)))
    return size, culprits


@settings(max_examples=150, deadline=None)
@given(planted())
def test_finds_exactly_the_interacting_items(case: tuple[int, set[int]]) -> None:
    size, culprits = case
    calls: list[list[int]] = []

    def fails(candidate: list[int]) -> bool:
        calls.append(candidate)
        return culprits <= set(candidate)

    assert ddmin(list(range(size)), fails) == sorted(culprits)
    # The cache: no candidate is ever tested twice.
    assert len({tuple(c) for c in calls}) == len(calls)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=2, max_value=40), st.integers(min_value=0, max_value=10_000))
def test_result_is_one_minimal_for_any_test(size: int, salt: int) -> None:
    """For an arbitrary (non-monotone) test, no single item of the result can be dropped."""

    def fails(candidate: list[int]) -> bool:
        return len(candidate) == size or hash((salt, tuple(candidate))) % 3 == 0

    result = ddmin(list(range(size)), fails)
    assert fails(result)
    assert result == sorted(result)  # a subsequence, order kept
    if len(result) > 1:
        for index in range(len(result)):
            assert not fails(result[:index] + result[index + 1 :])


def test_equal_items_are_told_apart_by_position() -> None:
    items = ["a", "b", "a", "c", "a"]
    assert ddmin(items, lambda c: c.count("a") >= 2) == ["a", "a"]


def test_two_of_two_hundred_within_the_attempt_target() -> None:
    """The search's part of the 80-attempt target: at most 45 tests for a pair in 200."""
    worst = 0
    for seed in range(200):
        pair = set(random.Random(seed).sample(range(200), 2))
        count = 0

        def fails(candidate: list[int], pair: set[int] = pair) -> bool:
            nonlocal count
            count += 1
            return pair <= set(candidate)

        assert set(ddmin(list(range(200)), fails)) == pair
        worst = max(worst, count)
    assert worst <= 45


def test_minimize_survives_a_flaky_failure() -> None:
    """50% flaky, 4 tries per candidate: the exact pair in at least 95 of 100 seeds."""
    exact = 0
    for seed in range(100):
        rng = random.Random(seed)
        pair = set(rng.sample(range(200), 2))

        def fails(candidate: list[int], pair: set[int] = pair, rng: random.Random = rng) -> bool:
            return pair <= set(candidate) and any(rng.random() < 0.5 for _ in range(4))

        exact += set(minimize(list(range(200)), fails, settle=2)) == pair
    assert exact >= 97


def test_an_exception_from_the_test_propagates() -> None:
    class Budget(Exception):
        pass

    seen: list[int] = []

    def fails(candidate: list[int]) -> bool:
        seen.append(len(candidate))
        if len(seen) > 3:
            raise Budget
        return 7 in candidate

    try:
        ddmin(list(range(50)), fails)
    except Budget:
        pass
    else:
        raise AssertionError("the budget did not stop the search")
    assert len(seen) == 4
