"""Sending: absolute deadlines, one HTTP connection per in-flight request, phase timings.

Why lanes instead of one shared client: whenever a request enters or leaves httpx's shared
pool (httpcore's `_assign_requests_to_connections`), the pool re-checks every connection (an
idle one by polling its socket) and matches every queued request against every connection,
all under one lock. The work per request grows with the square of the concurrency, and beyond
about 16 requests in flight the pool itself becomes the bottleneck (the `connection design`
table of benchmarks/replay_fidelity.py). A lane is a client whose pool holds exactly one
connection; an in-flight request owns its lane, so every pool stays trivially small.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import httpx

from traces import ErrorInfo, error_kind

from ._shaping import Prepared

__all__ = ["Clock", "Exchange", "LanePool", "classify_error", "send_one"]

# Sleep until this long before a deadline, then yield-spin: the event loop's timers fire up
# to ~1 ms late (epoll rounds its timeout up to whole milliseconds).
SPIN_NS = 1_500_000
# Below the keep-alive timeout of common servers (uvicorn 5 s, nginx 75 s): a connection idle
# longer is closed by us first, instead of racing the server's close with the next request.
KEEPALIVE_EXPIRY = 4.0


class Clock:
    """Monotonic nanoseconds from the replay's start (`t0`), and waits that are never early."""

    def __init__(self, start_in_ns: int = 0) -> None:
        self.t0 = time.perf_counter_ns() + start_in_ns
        self.t0_wall = time.time_ns() + start_in_ns

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
        while True:
            remaining = deadline - time.perf_counter_ns()
            if remaining <= 0:
                return
            if remaining > SPIN_NS:
                await anyio.sleep((remaining - SPIN_NS) / 1e9)
            else:
                # Yield, not sleep: responses of requests in flight are handled meanwhile.
                await anyio.lowlevel.checkpoint()


class LanePool:
    """Clients with one connection each; an in-flight request holds one lane.

    `limit` caps the lanes (the closed loop's N, or --max-inflight); `acquire` then waits,
    and the wait shows up as lag because the send time is taken after it.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.in_flight = 0
        self.peak = 0
        self.waits = 0
        self._free: list[httpx.AsyncClient] = []
        self._all: list[httpx.AsyncClient] = []
        self._freed: anyio.Event | None = None
        # One TLS context for every lane: building one per client costs milliseconds.
        self._ssl = ssl.create_default_context()
        self._limits = httpx.Limits(
            max_connections=1, max_keepalive_connections=1, keepalive_expiry=KEEPALIVE_EXPIRY
        )

    def _new_client(self) -> httpx.AsyncClient:
        # trust_env=False: no proxy or .netrc credentials from the environment sneak in.
        client = httpx.AsyncClient(
            limits=self._limits, timeout=None, verify=self._ssl, trust_env=False
        )
        self._all.append(client)
        return client

    def try_acquire(self) -> httpx.AsyncClient | None:
        """A lane now, or None when the cap is reached (the caller queues the send)."""
        if self._free:
            client = self._free.pop()  # LIFO: reuse the warmest connection
        elif self.limit is None or len(self._all) < self.limit:
            client = self._new_client()
        else:
            return None
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        return client

    async def acquire(self) -> httpx.AsyncClient:
        waited = False
        while True:
            if self._free:
                client = self._free.pop()  # LIFO: reuse the warmest connection
                break
            if self.limit is None or len(self._all) < self.limit:
                client = self._new_client()
                break
            waited = True
            self._freed = anyio.Event()
            await self._freed.wait()
        self.waits += waited
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        return client

    def release(self, client: httpx.AsyncClient) -> None:
        self.in_flight -= 1
        self._free.append(client)
        if self._freed is not None:
            self._freed.set()

    async def idle(self) -> None:
        """Return once no request is in flight."""
        while self.in_flight:
            self._freed = anyio.Event()
            await self._freed.wait()

    @property
    def lanes(self) -> int:
        return len(self._all)

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            for client in self._all:
                await client.aclose()


@dataclass
class Exchange:
    """What happened to one send, as measured on the event loop (offsets from t0, in ns)."""

    seq: int
    request_id: str
    loop: int
    warmup: bool
    intended_ns: int
    attempt_ns: int
    sent_ns: int | None = None
    upload_done_ns: int | None = None
    first_byte_ns: int | None = None
    done_ns: int | None = None
    status: int | None = None
    error: ErrorInfo | None = None
    bytes_up: int = 0
    bytes_down: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None
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
    """An exception from httpx as an outcome's error (kinds: `traces.error_kind`)."""
    return ErrorInfo(kind=error_kind(exc, default="local"), message=str(exc) or type(exc).__name__)


def _tracer(exchange: Exchange, clock: Clock) -> Callable[[str, Any], Any]:
    # httpcore calls this on every phase of the exchange; the names end the same for HTTP/1.1
    # and HTTP/2 (e.g. "http11.send_request_body.complete").
    async def trace(name: str, info: Any) -> None:
        if name.endswith("send_request_headers.started"):
            exchange.sent_ns = clock.now()
        elif name.endswith("send_request_body.complete"):
            exchange.upload_done_ns = clock.now()
        elif name.endswith("receive_response_headers.complete"):
            # The status line and headers are the first bytes of a response: parsing them
            # completes as soon as the first read returns (one segment on any real server).
            exchange.first_byte_ns = clock.now()

    return trace


async def send_one(
    client: httpx.AsyncClient,
    prepared: Prepared,
    exchange: Exchange,
    clock: Clock,
    limit_s: float,
) -> Exchange:
    """Send one request and fill in `exchange`; failures are outcomes, never exceptions.

    Cancellation (an interrupted replay past its drain time) is recorded as an `aborted`
    outcome and re-raised.
    """
    request = prepared.request
    request.extensions = {"trace": _tracer(exchange, clock)}
    exchange.bytes_up = len(prepared.content)
    try:
        with anyio.move_on_after(limit_s) as scope:
            response = await client.send(request, stream=True)
            try:
                exchange.status = response.status_code
                body = await response.aread()
                exchange.done_ns = clock.now()
                exchange.body = body
                exchange.bytes_down = response.num_bytes_downloaded
                exchange.headers = tuple(response.headers.multi_items())
                exchange.content_type = response.headers.get("content-type")
            finally:
                await response.aclose()
        if scope.cancelled_caught:
            exchange.error = ErrorInfo(
                kind="timeout", message=f"no complete response within --timeout {limit_s:g} s"
            )
    except anyio.get_cancelled_exc_class():
        exchange.error = ErrorInfo(kind="aborted", message="interrupted before the response")
        raise
    except httpx.HTTPError as exc:
        exchange.error = classify_error(exc)
    except OSError as exc:
        exchange.error = ErrorInfo(kind="local", message=str(exc))
    if exchange.error is not None:
        exchange.done_ns = clock.now()
        exchange.body = b""
    return exchange
