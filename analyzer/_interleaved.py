"""Whether two runs were measured side by side, in one interleaved replay.

Runs replayed one after the other pair a request measured now with the same request measured
minutes later, under another machine load, other caches and another warm-up; the difference
between them then holds all of that too. Runs of one interleaved replay share a group id.
"""

from __future__ import annotations

from ._load import Rows

__all__ = ["interleave_note"]


def interleave_note(base: Rows, other: Rows, role: str = "CAND") -> str | None:
    """A note when `other` and `base` were not measured in one interleaved replay."""
    if base.group is not None and base.group == other.group:
        return None
    if base.group is not None and other.group is not None:
        how = "come from different interleaved replays"
    else:
        how = "were not measured in one interleaved replay"
    return (
        f"note: {role} {other.path} and BASE {base.path} {how}: their difference also holds "
        "whatever changed between the replays (machine load, caches, warm-up); measure them "
        "side by side: imgtrace replay TRACE --target base=URL --target cand=URL -o DIR"
    )
