"""What watches a running replay from the storing side: Ctrl-C, and the live progress bar."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskGroup

from ._progress import Live
from ._runfiles import RunFiles
from ._wire import Counts

__all__ = ["REFRESH_S", "watched"]

REFRESH_S = 0.25

CountsOf = Callable[[], Sequence[Sequence[Counts]]]
"""Every dispatcher's counts (one list per dispatcher, one entry per target)."""


@asynccontextmanager
async def watched(
    files: RunFiles, background: TaskGroup, stop: Callable[[bool], None], counts: CountsOf
) -> AsyncIterator[None]:
    """While the body runs: Ctrl-C stops the sends (`stop(False)`: drain; twice: `stop(True)`:
    abort), and the progress bar, if any, shows the counts."""
    if files.config.handle_signals:
        background.start_soon(_watch_signals, files, stop)
    live = files.live()
    if live is None:
        yield
        files.update(counts())
        return
    with live.shown():
        background.start_soon(_refresh, files, live, counts)
        yield
        files.update(counts())
        files.refresh(live)


async def _refresh(files: RunFiles, live: Live, counts: CountsOf) -> None:
    while True:
        await anyio.sleep(REFRESH_S)
        files.update(counts())
        files.refresh(live)


async def _watch_signals(files: RunFiles, stop: Callable[[bool], None]) -> None:
    stopping = False
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if not stopping:
                stopping = True
                console = files.config.console
                if console is not None:
                    console.print(
                        f"stopping: waiting up to {files.config.drain:g} s for "
                        f"{files.in_flight()} requests in flight (Ctrl-C again to abort them)"
                    )
                stop(False)
            else:
                stop(True)
