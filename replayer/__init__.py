"""Replay a trace against a server with original or scaled timing, and measure it.

`replay(ReplayConfig(trace, target, output=...))` runs a replay and writes a run file;
`replay_interleaved(ReplayConfig(trace, targets=[Target("a", URL_A), ...], output=DIR))` sends
one schedule to several targets side by side, one run file each; `dry_run(config)` describes
the schedule without sending. Every option type checks its own values (`UsageError`); the
`parse_*` functions (and `Targets.parse`) turn the command line's text forms into them.
The sends run in `ReplayConfig.workers` dispatch processes (spawned; 0: in this process).
The command line is `imgtrace replay` (docs/replaying.md).
"""

from ._errors import ReplayError
from ._partition import Partition, PartPlan, parse_shard, part_of
from ._progress import LagHealth, Stats
from ._repeat import RepeatResult, replay_repeated, run_reset
from ._results import InterleavedResult, ReplayResult
from ._runner import (
    ReplayConfig,
    dry_run,
    replay,
    replay_async,
    replay_interleaved,
    replay_interleaved_async,
)
from ._schedule import (
    DryRun,
    Filter,
    Plan,
    Selection,
    Slot,
    Timing,
    parse_arrival,
    parse_filter,
    parse_window,
)
from ._shaping import (
    Prepared,
    SeedPolicy,
    Shaper,
    parse_header,
    parse_query,
    parse_seed,
    parse_set,
)
from ._start import DEFAULT_GRACE_S, StartAt, clock_facts, group_id, parse_start_at
from ._targets import Target, Targets, send_order

__all__ = [
    "DEFAULT_GRACE_S",
    "DryRun",
    "Filter",
    "InterleavedResult",
    "LagHealth",
    "PartPlan",
    "Partition",
    "Plan",
    "Prepared",
    "RepeatResult",
    "ReplayConfig",
    "ReplayError",
    "ReplayResult",
    "SeedPolicy",
    "Selection",
    "Shaper",
    "Slot",
    "StartAt",
    "Stats",
    "Target",
    "Targets",
    "Timing",
    "clock_facts",
    "dry_run",
    "group_id",
    "parse_arrival",
    "parse_filter",
    "parse_header",
    "parse_query",
    "parse_seed",
    "parse_set",
    "parse_shard",
    "parse_start_at",
    "parse_window",
    "part_of",
    "replay",
    "replay_async",
    "replay_interleaved",
    "replay_interleaved_async",
    "replay_repeated",
    "run_reset",
    "send_order",
]
