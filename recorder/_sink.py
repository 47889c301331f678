"""The in-process recorder: a bounded hand-off and one writer thread per recording.

Recording must never slow down or break the traffic it watches. Producers (an application's
HTTP client, a proxy embedded in a program) only enqueue finished exchanges, without blocking;
when the queue is full, or the disk fails, the record is dropped and counted. The counts go to
stderr, to the file's metadata (as notes) and to `imgtrace show`. `imgtrace record` runs the
same writing in a process of its own instead (`RecorderProcess`).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ._intake import STOP, Handoff, Intake, IntakeSide
from ._options import RecorderStats, RecordOptions, check_output, part_path
from ._trace_sink import TraceSink, WriterFactory, warn

__all__ = ["RecordOptions", "Recorder", "RecorderStats", "check_output", "part_path"]


class Recorder(IntakeSide):
    """Turns finished exchanges into a trace file, on its own thread.

    `begin()` stamps an arriving request (or returns None if it is not to be recorded);
    `submit()` hands the finished exchange over without ever blocking; `close()` drains the
    queue, writes the counts as a note and closes the file. Checks on the output (exists,
    directory) happen in the constructor, so a bad `-o` fails before any traffic flows.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        source: str = "proxy",
        options: RecordOptions | None = None,
        force: bool = False,
        metadata: Mapping[str, Any] | None = None,
        writer_factory: WriterFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        warn: Callable[[str], None] = warn,
    ) -> None:
        self.path = Path(path)
        self.options = options or RecordOptions()
        check_output(self.path, self.options, force)
        self.stats = RecorderStats()
        self._intake = Intake(self.options, self.stats)
        self._handoff = Handoff(self.options, self.stats, warn)
        self._sink = TraceSink(
            self.path,
            source=source,
            options=self.options,
            stats=self.stats,
            metadata=metadata,
            writer_factory=writer_factory,
            clock=clock,
            warn=warn,
        )
        self._thread = threading.Thread(target=self._run, name="imgtrace-recorder", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def close(self) -> RecorderStats:
        """Write what is queued, note the counts, close the file. Safe to call twice."""
        self._stop_taking(self.close)
        self._thread.join()
        return self.stats

    # -- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._handoff.take(timeout=1.0)
            if item is None:
                self._sink.maybe_note()
                continue
            if item is STOP:
                break
            assert isinstance(item, tuple)
            exchange, size = item
            try:
                self._sink.zero = self._intake.zero
                self._sink.record(exchange)
            finally:
                self._handoff.release(size)
            self._sink.maybe_note()
        # Anything queued was submitted before close(): it was written (STOP came after it).
        self._sink.finish()
