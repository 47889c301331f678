"""Sending: absolute deadlines, one HTTP connection per in-flight request, phase timings.

Every send owns a lane (a connection of its own) from its start to its end: a pool that
matches queued requests against shared connections does work that grows with the square of
the concurrency, and beyond about 16 requests in flight it becomes the bottleneck (the
`connection design` table of benchmarks/replay_fidelity.py). The bytes go through
`traces.Http1Pool`, whose C parser (httptools) leaves a sized response body alone once the head
is read: a 0.8 MB image response costs the event loop a few socket reads, not the ~5 ms of CPU
that httpx spent on it, which was send lag for the next request.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable

import anyio
import anyio.lowlevel

from traces import ErrorInfo, Http1Error, Http1Pool, MeasuredSend, error_kind

from ._shaping import Prepared
from ._waker import wait_precisely

__all__ = ["Clock", "Exchange", "LanePool", "classify_error", "decoded_body", "send_one"]

# Sleep on the event loop's own timers until this long before a deadline (they fire up to
# ~1 ms late: epoll rounds its timeout up to whole milliseconds), then precisely (`_waker`).
COARSE_NS = 2_000_000
# The precise wake-up itself takes time (the loop's timerfd: p50 ~0.07 ms, p99 ~0.25 ms measured
# on a busy machine; the waker thread where there is none: a few hundred µs): it is asked for
# this long before the deadline, and the rest is yield-spun.
SPIN_NS = 400_000
# Under real-time scheduling (`_priority`) the timerfd wake-up is prompter (p50 ~0.02 ms, p99
# ~0.17 ms with both cores busy): a shorter spin costs less CPU, and a fast schedule's
# back-to-back spins hold the core for less of the time that other processes then cannot have.
SPIN_REALTIME_NS = 100_000
# Below the keep-alive timeout of common servers (uvicorn 5 s, nginx 75 s): a connection idle
# longer is closed by us first, instead of racing the server's close with the next request.
KEEPALIVE_EXPIRY = 4.0


class Clock:
    """Monotonic nanoseconds from the replay's start (`t0`), and waits that are never early."""

    def __init__(self, start_in_ns: int = 0) -> None:
        self.t0 = time.perf_counter_ns() + start_in_ns
        self.t0_wall = time.time_ns() + start_in_ns
        self.spin_ns = SPIN_NS

    @classmethod
    def at(cls, t0_ns: int, t0_wall_ns: int) -> Clock:
        """A clock whose t0 was chosen elsewhere: the monotonic clock is one per machine, so
        every process of a replay shares it."""
        clock = cls()
        clock.t0, clock.t0_wall = t0_ns, t0_wall_ns
        return clock

    def now(self) -> int:
        return time.perf_counter_ns() - self.t0

    async def wait_until(self, offset_ns: int) -> None:
        deadline = self.t0 + offset_ns
        remaining = deadline - time.perf_counter_ns()
        if remaining <= 0:
            return
        if remaining > COARSE_NS:
            await anyio.sleep((remaining - COARSE_NS) / 1e9)
        if deadline - time.perf_counter_ns() > self.spin_ns:
            await wait_precisely(deadline - self.spin_ns)
        while time.perf_counter_ns() < deadline:
            # Yield, not sleep: responses of requests in flight are handled meanwhile.
            await anyio.lowlevel.checkpoint()


class LanePool:
    """The lanes of one target: an in-flight request holds one, with its connection.

    `limit` caps the lanes (the closed loop's N, or --max-inflight); `acquire` then waits,
    and the wait shows up as lag because the send time is taken after it. The connections
    live in one `Http1Pool`, which reuses the most recently used idle one (the warmest).
    """

    def __init__(self, limit: int | None, url: str = "http://127.0.0.1", timeout: float = 300.0):
        self.limit = limit
        self.in_flight = 0
        self.peak = 0
        self.waits = 0
        self.lanes = 0
        """Lanes opened: the most requests that were in flight at once, or the cap."""
        self._freed: anyio.Event | None = None
        # The pool's own limits are above the send's (`send_one`), so a send that runs out of
        # time is always a `timeout`, as its outcome says.
        self.pool = Http1Pool(
            url,
            timeout=2 * timeout + 1,
            max_connections=0,
            keepalive_expiry=KEEPALIVE_EXPIRY,
        )

    def try_acquire(self) -> Http1Pool | None:
        """A lane now, or None when the cap is reached (the caller queues the send)."""
        if self.in_flight == self.lanes:
            if self.limit is not None and self.lanes >= self.limit:
                return None
            self.lanes += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        return self.pool

    async def acquire(self) -> Http1Pool:
        waited = False
        while (pool := self.try_acquire()) is None:
            waited = True
            self._freed = anyio.Event()
            await self._freed.wait()
        self.waits += waited
        return pool

    def release(self, pool: Http1Pool) -> None:
        self.in_flight -= 1
        if self._freed is not None:
            self._freed.set()

    async def idle(self) -> None:
        """Return once no request is in flight."""
        while self.in_flight:
            self._freed = anyio.Event()
            await self._freed.wait()

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.pool.aclose()


class Exchange(MeasuredSend, kw_only=True):
    """What happened to one send, as measured on the event loop: the outcome's measured part,
    filled in as the send goes, and the body before it is stored."""

    attempt_ns: int
    body: bytes = b""
    body_dropped: bool = False
    """The body was left out because storing fell behind (see `Backlog`)."""

    @property
    def lag_ns(self) -> int:
        return (self.sent_ns if self.sent_ns is not None else self.attempt_ns) - self.intended_ns

    @property
    def connected(self) -> bool:
        return self.error is None or self.error.kind != "connect"


def classify_error(exc: BaseException) -> ErrorInfo:
    """A failed exchange as an outcome's error (kinds: `traces.error_kind`)."""
    return ErrorInfo(kind=error_kind(exc, default="local"), message=str(exc) or type(exc).__name__)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _phases(exchange: Exchange, clock: Clock) -> Callable[[str], None]:
    def phase(name: str) -> None:
        if name == "sending":
            exchange.sent_ns = clock.now()
        else:
            exchange.upload_done_ns = clock.now()

    return phase


async def send_one(
    pool: Http1Pool,
    prepared: Prepared,
    exchange: Exchange,
    clock: Clock,
    limit_s: float,
) -> Exchange:
    """Send one request and fill in `exchange`; failures are outcomes, never exceptions.

    The body is kept as it came (any Content-Encoding undone later, by `decoded_body`, on the
    side that stores it). Cancellation (an interrupted replay past its drain time) is recorded
    as an `aborted` outcome and re-raised.
    """
    exchange.bytes_up = len(prepared.content)
    try:
        with anyio.move_on_after(limit_s) as scope:
            response = await pool.request(
                prepared.method,
                prepared.target,
                prepared.headers,
                prepared.content,
                on_phase=_phases(exchange, clock),
            )
            try:
                # The head is parsed as soon as the first read returns (one segment on any
                # real server): its time is the first byte's.
                exchange.first_byte_ns = clock.now()
                exchange.status = response.status
                body = await response.aread()
                exchange.done_ns = clock.now()
                exchange.body = body
                exchange.bytes_down = len(body)
                exchange.headers = tuple((_text(n), _text(v)) for n, v in response.headers)
                exchange.content_type = _header(exchange.headers, "content-type")
            finally:
                await response.aclose()
        if scope.cancelled_caught:
            exchange.error = ErrorInfo(
                kind="timeout", message=f"no complete response within --timeout {limit_s:g} s"
            )
    except anyio.get_cancelled_exc_class():
        exchange.error = ErrorInfo(kind="aborted", message="interrupted before the response")
        raise
    except Http1Error as exc:
        exchange.error = classify_error(exc)
    except OSError as exc:
        exchange.error = ErrorInfo(kind="local", message=str(exc))
    if exchange.error is not None:
        exchange.done_ns = clock.now()
        exchange.body = b""
    return exchange


def _header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _unzstd(body: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress(body)


def _unbrotli(body: bytes) -> bytes:
    try:
        import brotli  # type: ignore[import-not-found, unused-ignore]
    except ImportError:  # optional, as for httpx: without it the body stays as it came
        return body
    return bytes(brotli.decompress(body))


def _gunzip(body: bytes) -> bytes:
    return zlib.decompress(body, zlib.MAX_WBITS | 16)


def _inflate(body: bytes) -> bytes:
    try:
        return zlib.decompress(body)
    except zlib.error:  # raw deflate, as some servers send it
        return zlib.decompress(body, -zlib.MAX_WBITS)


_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _inflate,
    "zstd": _unzstd,
    "br": _unbrotli,
    "identity": bytes,
}


def decoded_body(exchange: Exchange) -> ErrorInfo | None:
    """Undo the response's Content-Encoding on `exchange.body`, as httpx's `aread` does.

    Done by the side that stores the outcome, never on a dispatcher's event loop. Unknown
    codings are left as they are; a body that does not decode is a `protocol` error.
    """
    coding = _header(exchange.headers, "content-encoding")
    if not exchange.body or coding is None:
        return None
    body = exchange.body
    try:
        for name in reversed([c.strip().lower() for c in coding.split(",") if c.strip()]):
            decoder = _DECODERS.get(name)
            if decoder is None:
                return None
            body = decoder(body)
    except Exception as exc:  # zlib's, zstandard's or brotli's error: the server's fault
        message = f"the {coding} response body does not decode: {exc}"
        return ErrorInfo(kind="protocol", message=message)
    exchange.body = body
    return None
