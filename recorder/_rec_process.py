"""`RecorderProcess`: the recorder of `imgtrace record`, whose writing runs in its own process.

The forwarding process keeps only what costs nothing: stamping arrivals (`Intake`) and handing
each finished exchange over (`Handoff`, bounded, never waiting). A sender thread writes the
exchanges to the recording process's feed pipe, the bodies as raw frames of the very chunks the
proxy forwarded; a reader thread hears what the recording process reports. Parsing, base64,
sha256, compression and writing all happen over there (`_rec_child`), so they never hold the
forwarding loop's GIL.

The bodies go through a pipe (widened to 1 MiB), not shared memory: a pipe write copies in the
kernel with the GIL released, while copying into shared memory would hold this process's GIL
for the whole memcpy, which is what the split is there to avoid.

If the recording process dies, one warning line says so at once; traffic is still forwarded,
every later exchange is dropped and counted, and at `close()` the part file it left open is
sealed (`_seal`), so the recording still ends as a valid, closed trace.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from traces import Redaction

from ._capture import Exchange
from ._errors import RecorderError
from ._intake import STOP, Handoff, Intake, IntakeSide
from ._options import RecorderStats, RecordOptions, check_output
from ._rec_child import STOP_SIGNALS, RecordingSpec, recording_main
from ._rec_wire import (
    Capture,
    Close,
    Final,
    Forwarded,
    Opened,
    Progress,
    Ready,
    decode_result,
    encode,
)
from ._seal import count_requests, seal
from ._trace_sink import TraceSink, warn

__all__ = ["RecorderProcess"]

READY_TIMEOUT = 60.0
# A wider pipe takes a whole image exchange in a few writes instead of dozens.
PIPE_BYTES = 1 << 20
# The counts the recording process keeps; the forwarding side keeps the others.
_RECORDING_FIELDS = ("recorded", "sampled_out", "bodies_over_max", "dropped_write_failed")


@contextlib.contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    """A process started in here inherits the mask: Ctrl-C cannot kill it while it starts."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: nothing to inherit
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _widen(conn: Connection) -> None:
    try:
        import fcntl

        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass  # not Linux, or over the system's limit: the default pipe still works


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class RecorderProcess(IntakeSide):
    """Records exchanges like `Recorder`, with the writing in a process of its own.

    The same `begin()` / `submit()` / `close()` as `Recorder` (so `RecordingProxy` takes
    either). The constructor checks the output, starts the recording process and waits until
    it runs (`RecorderError` if it cannot start). `submit()` never blocks: past
    `options.max_queue_bytes` waiting, exchanges are recorded without their bodies, and past
    `options.max_queue` exchanges they are dropped; both are counted in `stats`.

    :param warn: where the one-line warnings go (stderr by default).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        source: str = "proxy",
        options: RecordOptions | None = None,
        force: bool = False,
        metadata: Mapping[str, Any] | None = None,
        warn: Callable[[str], None] = warn,
    ) -> None:
        self.path = Path(path)
        self.options = options or RecordOptions()
        check_output(self.path, self.options, force)
        self.stats = RecorderStats()
        """The counts: the recording process's as of its last report, all once closed."""
        self.failure: str | None = None
        """Why the recording process stopped early, or None."""
        self.pid: int | None = None
        self._source = source
        self._metadata = dict(metadata or {})
        self._warn = warn
        self._intake = Intake(self.options, self.stats)
        self._handoff = Handoff(self.options, self.stats, warn)
        self._lock = threading.Lock()
        self._opened: list[str] = []
        self._last: RecorderStats | None = None
        self._final: Final | None = None
        self._handed = 0
        self._gone = False
        self._ready = threading.Event()
        self._concluded = False
        context = multiprocessing.get_context("spawn")
        feed_end, self._feed = context.Pipe(duplex=False)
        self._results, results_end = context.Pipe(duplex=False)
        _widen(self._feed)
        spec = RecordingSpec(str(self.path), source, self.options, self._metadata)
        self._process = context.Process(
            target=recording_main,
            args=(spec, feed_end, results_end),
            name="imgtrace-recording",
            daemon=True,
        )
        with _stop_signals_blocked():
            self._process.start()
        feed_end.close()  # the recording process's ends: only it holds them now
        results_end.close()
        self._reader = threading.Thread(target=self._collect, name="imgtrace-rec-results")
        self._reader.daemon = True
        self._reader.start()
        try:
            self._ready.wait(READY_TIMEOUT)
        except BaseException:  # Ctrl-C while it starts: nothing may be left running
            self._abandon_start()
            raise
        if self.pid is None:
            self._abandon_start()
            raise RecorderError(
                "the recording process did not start: it " + _describe_exit(self._process.exitcode)
            )
        self._sender: threading.Thread = threading.Thread(
            target=self._send_all, name="imgtrace-rec-feed"
        )
        self._sender.daemon = True
        self._sender.start()
        atexit.register(self.close)

    def _abandon_start(self) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join(5.0)
        self._feed.close()
        self._reader.join(5.0)
        self._results.close()

    def close(self) -> RecorderStats:
        """Send what is waiting, let the recording process close the trace; the counts."""
        self._stop_taking(self.close)
        self._sender.join()
        self._reader.join()
        self._process.join(5.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        with self._lock:
            if not self._concluded:
                self._concluded = True
                self._conclude()
        return self.stats

    # -- the sender thread --------------------------------------------------------------------

    def _send_all(self) -> None:
        while True:
            item = self._handoff.take()
            if item is STOP:
                break
            assert isinstance(item, tuple)
            exchange, size = item
            if self._gone:
                self._handoff.drop(size)
                continue
            try:
                self._send(exchange)
            except OSError:
                self._stop_feeding()  # the reader thread reports it, once the pipe ends
                self._handoff.drop(size)
                continue
            self._handed += 1
            self._handoff.release(size)
        if not self._gone:
            try:
                self._feed.send_bytes(encode(Close(Forwarded.of(self.stats))))
            except OSError:
                self._stop_feeding()
        self._feed.close()

    def _send(self, exchange: Exchange) -> None:
        zero = self._intake.zero
        assert zero is not None
        request, response = exchange.request_chunks, exchange.response_chunks
        head = dataclasses.replace(exchange, request_chunks=[], response_chunks=[])
        capture = Capture(
            head, len(request), len(response), zero[0], zero[1], Forwarded.of(self.stats)
        )
        self._feed.send_bytes(encode(capture))
        for chunk in request:
            self._feed.send_bytes(chunk)
        for chunk in response:
            self._feed.send_bytes(chunk)

    # -- the reader thread --------------------------------------------------------------------

    def _collect(self) -> None:
        while True:
            try:
                message = decode_result(self._results.recv_bytes())
            except (EOFError, OSError):
                break
            if isinstance(message, Ready):
                self.pid = message.pid
                self._ready.set()
            elif isinstance(message, Opened):
                self._opened.append(message.path)
            elif isinstance(message, Progress | Final):
                self._last = message.stats
                for name in _RECORDING_FIELDS:  # so that `stats` is current while it runs
                    setattr(self.stats, name, getattr(message.stats, name))
                if isinstance(message, Final):
                    self._final = message
        self._ready.set()
        if self.pid is not None and (self._final is None or self._final.error is not None):
            self._lost()

    def _stop_feeding(self) -> None:
        """From now on, exchanges are counted as lost with the recording process."""
        self._gone = True
        self._handoff.consumer_gone()

    def _lost(self) -> None:
        """The recording process is gone (the reader thread saw its pipe end): say so once."""
        self._stop_feeding()
        self._process.join(5.0)
        final = self._final
        why = final.error if final is not None and final.error else None
        self.failure = f"the recording process (pid {self.pid}) " + (
            why or _describe_exit(self._process.exitcode)
        )
        self._warn(
            f"{self.failure}; traffic is still forwarded, and records from now on are dropped "
            "and counted"
        )

    # -- the end ------------------------------------------------------------------------------

    def _conclude(self) -> None:
        """Join the recording side's counts to ours; seal its file if it could not."""
        last = self._last or RecorderStats()
        for name in _RECORDING_FIELDS:
            setattr(self.stats, name, getattr(last, name))
        if self._final is not None:
            self.stats.files = list(self._final.stats.files)
            return
        parts = list(self._opened)
        self.stats.files = parts
        in_closed = sum(count_requests(Path(name)) for name in parts[:-1])
        died_after = self.stats.dropped_recorder_died
        # What the recording process was sent and neither wrote, sampled out nor failed to write.
        unaccounted = self._handed - last.sampled_out - last.dropped_write_failed

        def account(in_open: int) -> None:
            self.stats.recorded = in_closed + in_open
            self.stats.dropped_recorder_died = died_after + max(
                0, unaccounted - self.stats.recorded
            )

        def note_for(in_open: int, what: str) -> dict[str, Any]:
            account(in_open)
            return {**self.stats.as_metadata(), "recording_process": f"{self.failure}; {what}"}

        if parts:
            redaction = Redaction(
                redact=self.options.redact_headers, keep=self.options.keep_headers
            )
            account(seal(Path(parts[-1]), redaction, note_for))
        else:
            account(0)
            self._empty_trace()

    def _empty_trace(self) -> None:
        """The trace the recording process never created: empty, closed, with the counts."""
        sink = TraceSink(
            self.path,
            source=self._source,
            options=self.options,
            stats=self.stats,
            metadata={**self._metadata, "recording_process": self.failure},
            warn=self._warn,
        )
        sink.zero = self._intake.zero
        sink.finish()
