"""Replay a trace against a server with original or scaled timing, and measure it.

`replay(ReplayConfig(trace, target, output=...))` runs a replay and writes a run file;
`dry_run(config)` describes the schedule without sending. The command line is `imgtrace replay`
(docs/replaying.md).
"""

from ._errors import ReplayError
from ._progress import LagHealth, Stats
from ._runner import ReplayConfig, ReplayResult, dry_run, replay, replay_async
from ._schedule import DryRun, Filter, Plan, Selection, Slot, Timing
from ._shaping import Prepared, SeedPolicy, Shaper

__all__ = [
    "DryRun",
    "Filter",
    "LagHealth",
    "Plan",
    "Prepared",
    "ReplayConfig",
    "ReplayError",
    "ReplayResult",
    "SeedPolicy",
    "Selection",
    "Shaper",
    "Slot",
    "Stats",
    "Timing",
    "dry_run",
    "replay",
    "replay_async",
]
