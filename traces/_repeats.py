"""How often each failure reproduced across the repetitions of a run (`replay --repeat K`).

One home for the meaning, shared by `imgtrace show` and `imgtrace report`: a failure is the
status of an HTTP error (`status 500`) or the kind of a transport error (`timeout`, `read`...),
and it reproduced in a repetition when at least one send of that repetition ended with it.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ._schema import ErrorInfo, Outcome

__all__ = ["Reproduction", "count_reproductions", "failure_label", "reproductions"]

MAX_IDS = 8


def failure_label(status: int | None, error: ErrorInfo | None) -> str:
    """`status 500`, `timeout`, ...; "" for a success."""
    if error is not None:
        return error.kind
    if status is None:
        return "no status"
    if status >= 400 or status < 100:
        return f"status {status}"
    return ""


class Reproduction(msgspec.Struct, frozen=True, kw_only=True):
    """One failure and the repetitions and requests it showed up in."""

    failure: str
    repetitions: int
    """How many repetitions saw it at least once."""
    total: int
    """Repetitions in the run."""
    requests: tuple[str, ...]
    """The request ids that ended with it, in first-seen order."""

    def line(self) -> str:
        """`status 500: 7 of 10 repetitions, requests r-0412, r-0413`."""
        ids = ", ".join(self.requests[:MAX_IDS])
        more = f" (+{len(self.requests) - MAX_IDS} more)" if len(self.requests) > MAX_IDS else ""
        noun = "request" if len(self.requests) == 1 else "requests"
        return f"{self.failure}: {self.repetitions} of {self.total} repetitions, {noun} {ids}{more}"


def reproductions(outcomes: Iterable[Outcome], total: int | None = None) -> list[Reproduction]:
    """Failures of the (non-warmup) outcomes, most often reproduced first.

    `total` is the number of repetitions (the header's `repeat` option); by default one more
    than the highest repetition index seen.
    """
    failures: list[tuple[str, int, str]] = []
    highest = 0
    for outcome in outcomes:
        highest = max(highest, outcome.repeat)
        label = failure_label(outcome.status, outcome.error)
        if label and not outcome.warmup:
            failures.append((label, outcome.repeat, outcome.request_id))
    return count_reproductions(failures, total if total is not None else highest + 1)


def count_reproductions(failures: Iterable[tuple[str, int, str]], total: int) -> list[Reproduction]:
    """(failure, repetition, request id) triples -> one `Reproduction` per failure."""
    seen: dict[str, tuple[set[int], dict[str, None]]] = {}
    for label, repeat, request_id in failures:
        repeats, ids = seen.setdefault(label, (set(), {}))
        repeats.add(repeat)
        ids.setdefault(request_id, None)
    found = [
        Reproduction(failure=label, repetitions=len(repeats), total=total, requests=tuple(ids))
        for label, (repeats, ids) in seen.items()
    ]
    return sorted(found, key=lambda r: (-r.repetitions, r.failure))
