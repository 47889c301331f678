"""A replay in one process (`workers=0`): the dispatcher and the run files share it.

The same `Engine` as in a dispatch worker, fed by a thread of this process and delivering
straight to the run files; for the library's callers that want no processes, and for
comparing the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from anyio.abc import TaskGroup

from ._control import watched
from ._engine import Engine
from ._produce import Feed
from ._results import ReplayResult
from ._runfiles import RunFiles
from ._targetrun import TargetRun

__all__ = ["run_local"]


async def run_local(
    files: RunFiles, feeds: Sequence[Feed], background: TaskGroup
) -> list[ReplayResult]:
    config = files.config
    runs = [
        TargetRun(
            config.lane_limit, config.timeout, partial(files.deliver, index), str(run.shaper.url)
        )
        for index, run in enumerate(files.runs)
    ]
    engine = Engine(config.timing, runs, feeds, config.drain)
    await engine.prime(background)
    clock = files.new_clock()
    files.open(clock)
    try:
        async with watched(files, background, engine.halt, lambda: [[r.counts() for r in runs]]):
            await engine.dispatch(clock)
    finally:
        files.update([[run.counts() for run in runs]])
        results = files.close(engine.interrupted)
    return results
