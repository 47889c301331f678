"""The open run files of one process (each worker opens its own: readers do not pickle)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from traces import (
    TraceReader,
)

from .options import Thresholds

__all__ = ["WorkerState", "current", "init_worker"]


@dataclass
class WorkerState:
    """Open readers of one process; lazily opened, closed by `close()`."""

    paths: dict[str, str]
    thresholds: Thresholds
    assets_dir: str | None = None
    salvage: bool = False
    readers: dict[str, TraceReader] = field(default_factory=dict)

    def reader(self, role: str) -> TraceReader:
        reader = self.readers.get(role)
        if reader is None:
            with warnings.catch_warnings():
                # The main process already told the user about a torn tail.
                warnings.simplefilter("ignore")
                reader = TraceReader(self.paths[role], salvage=self.salvage)
            self.readers[role] = reader
        return reader

    def blob(self, role: str, digest: str) -> bytes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.reader(role).blob(digest)

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
        self.readers.clear()


_STATE: WorkerState | None = None


def init_worker(
    paths: dict[str, str], thresholds: Thresholds, assets_dir: str | None, salvage: bool
) -> None:
    """Process-pool initializer."""
    global _STATE
    _STATE = WorkerState(paths, thresholds, assets_dir, salvage)


def current() -> WorkerState:
    """The state `init_worker` made in this worker process."""
    assert _STATE is not None
    return _STATE
