"""Delta debugging over a sequence: the smallest subsequence for which a test still fails.

`ddmin` is Zeller and Hildebrandt's minimizing delta debugging, with two changes that suit
interaction bugs in request traces:

- complements are tried before subsets: a failure that needs two requests is far more likely
  to survive dropping one chunk than to live inside a single chunk, so complements first cuts
  the number of tests (a two-request bug in 200 requests: at most 43 tests instead of 57);
- every outcome is cached per candidate within one pass, so no candidate is tested twice.

`minimize` repeats passes until one removes nothing (two in a row for a flaky failure). A flaky
failure can make a test miss a candidate that does fail; a fresh pass tests it again, so a pass
that shrank the input is followed by another over the result.

Both are pure functions of the sequence and a test callback; they never touch a server.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["ddmin", "minimize", "split"]

T = TypeVar("T")


def split(items: Sequence[T], parts: int) -> list[list[T]]:
    """`items` cut into `parts` contiguous chunks whose sizes differ by at most one."""
    if parts < 1:
        raise ValueError("parts must be >= 1")
    size, extra = divmod(len(items), parts)
    chunks: list[list[T]] = []
    start = 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        chunks.append(list(items[start:end]))
        start = end
    return [chunk for chunk in chunks if chunk]


def ddmin(items: Sequence[T], fails: Callable[[list[T]], bool]) -> list[T]:
    """A 1-minimal subsequence of `items` on which `fails` holds.

    `fails(items)` is assumed true (the caller checks it first). The order of the kept items is
    their order in `items`. An exception raised by `fails` (a budget, Ctrl-C) propagates; the
    caller keeps track of the smallest failing candidate it has seen.
    """
    # Work on positions, so equal items (or items without a hash) are never confused.
    current = list(range(len(items)))
    seen: dict[tuple[int, ...], bool] = {}

    def test(candidate: list[int]) -> bool:
        key = tuple(candidate)
        if key not in seen:
            seen[key] = fails([items[index] for index in candidate])
        return seen[key]

    granularity = 2
    while len(current) >= 2:
        chunks = split(current, granularity)
        reduced = False
        if len(chunks) > 2:
            # With two chunks a complement is the other chunk: tried below as a subset.
            for index in range(len(chunks)):
                complement = [i for j, chunk in enumerate(chunks) if j != index for i in chunk]
                if test(complement):
                    current = complement
                    granularity = max(granularity - 1, 2)
                    reduced = True
                    break
        if not reduced:
            for chunk in chunks:
                if test(chunk):
                    current = chunk
                    granularity = 2
                    reduced = True
                    break
        if not reduced:
            if granularity >= len(current):
                break
            granularity = min(granularity * 2, len(current))
    return [items[index] for index in current]


def minimize(items: Sequence[T], fails: Callable[[list[T]], bool], *, settle: int = 1) -> list[T]:
    """`ddmin` repeated until `settle` passes in a row remove nothing.

    With a flaky `fails`, a pass can miss the one candidate that would have shrunk the result;
    `settle=2` gives every candidate of the final pass a second, fresh chance.
    """
    if settle < 1:
        raise ValueError("settle must be >= 1")
    current = list(items)
    quiet = 0
    while quiet < settle:
        smaller = ddmin(current, fails)
        if len(smaller) >= len(current):
            quiet += 1
        else:
            current, quiet = smaller, 0
    return current
