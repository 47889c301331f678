"""The recording process: everything CPU-heavy about recording, away from the forwarding loop.

It reads finished exchanges from the proxy's feed pipe (their bodies as raw frames), parses
them, decodes and hashes the images, compresses and writes the trace (`TraceSink`). It runs at a
lower CPU priority than the proxy, so on a busy host forwarding comes first and recording is
what falls behind (the proxy then leaves bodies out, within its budget). Ctrl-C and SIGTERM
are the proxy's to handle: this process closes the trace when the proxy says `Close`, or when
the proxy is gone (the feed ends), so even a killed proxy leaves a closed trace.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ._capture import Exchange
from ._options import RecorderStats, RecordOptions
from ._rec_wire import Capture, Close, Final, Opened, Progress, Ready, decode_feed, encode
from ._trace_sink import TraceSink

__all__ = ["STOP_SIGNALS", "RecordingSpec", "recording_main"]

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
IDLE_POLL_S = 1.0
PROGRESS_S = 0.25
NICENESS = 5


@dataclass(frozen=True)
class RecordingSpec:
    """What the recording process writes, and how."""

    path: str
    source: str
    options: RecordOptions
    metadata: dict[str, Any] = field(default_factory=dict)


def _tell(results: Connection, message: Ready | Opened | Progress | Final) -> None:
    try:
        results.send_bytes(encode(message))
    except OSError:
        pass  # the proxy is gone; the feed ends too, and the trace is closed then


def _exchange_of(feed: Connection, capture: Capture) -> Exchange:
    exchange = capture.exchange
    exchange.request_chunks = [feed.recv_bytes() for _ in range(capture.request_frames)]
    exchange.response_chunks = [feed.recv_bytes() for _ in range(capture.response_frames)]
    return exchange


def _record_all(feed: Connection, sink: TraceSink, results: Connection) -> None:
    """Record what comes until `Close`, or until the proxy is gone."""
    progress_at = time.monotonic() + PROGRESS_S
    while True:
        if not feed.poll(IDLE_POLL_S):
            sink.maybe_note()
            continue
        try:
            message = decode_feed(feed.recv_bytes())
            if isinstance(message, Close):
                message.forwarded.apply(sink.stats)
                return
            exchange = _exchange_of(feed, message)
        except (EOFError, OSError):
            return  # the proxy is gone: what it sent in full is recorded, then the file closed
        message.forwarded.apply(sink.stats)
        sink.zero = (message.zero_ns, message.zero_wall_ns)
        sink.record(exchange)
        sink.maybe_note()
        if time.monotonic() >= progress_at:
            _tell(results, Progress(sink.stats))
            progress_at = time.monotonic() + PROGRESS_S


def recording_main(spec: RecordingSpec, feed: Connection, results: Connection) -> None:
    """The recording process's entry point (started with the spawn method)."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    # The proxy started this process with these signals blocked, so a Ctrl-C during its start
    # could not kill it; ignored from now on, they can be let through.
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        os.nice(NICENESS)
    except (AttributeError, OSError):
        pass  # not POSIX, or not allowed: the same priority as the proxy
    stats = RecorderStats()

    def opened(path: Path) -> None:
        _tell(results, Opened(str(path)))

    sink = TraceSink(
        Path(spec.path),
        source=spec.source,
        options=spec.options,
        stats=stats,
        metadata=spec.metadata,
        on_open=opened,
    )
    error: str | None = None
    try:
        _tell(results, Ready(os.getpid()))
        _record_all(feed, sink, results)
    except Exception as exc:  # a bug: close what was recorded, and say why it stopped
        error = f"stopped on {type(exc).__name__}: {exc}"
    try:
        sink.finish()
    except Exception as exc:
        error = error or f"could not close the trace: {type(exc).__name__}: {exc}"
    _tell(results, Final(stats, error))
    results.close()
    # The trace writer's flush threads must not keep the process alive.
    os._exit(0)
