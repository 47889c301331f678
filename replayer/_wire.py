"""The messages between the replay's coordinator and its dispatch workers (msgpack frames).

Coordinator to worker, on a worker's feed pipe: `FeedItem`s (a send's ticket, its bodies'
heads, the target order, and where its content is: in the feed's shared-memory ring, or in a
raw frame that follows), then `End`. On its control pipe:
`Start` (the shared t0), `Stop` (drain), `Abort`. Worker to coordinator, on its result pipe:
`Ready`, `Done` per exchange (its body in the worker's result ring, or in a raw frame that
follows), `Tick` for the progress bar, and `Final`
with its lane counts; a pipe that ends without `Final` means the worker died.
"""

from __future__ import annotations

import msgspec

from ._sender import Exchange
from ._shaping import Prepared

__all__ = [
    "INLINE",
    "NO_BODY",
    "Abort",
    "Counts",
    "Done",
    "End",
    "FeedItem",
    "Final",
    "Ready",
    "Start",
    "Stop",
    "Tick",
    "Ticket",
    "decode_control",
    "decode_feed",
    "decode_result",
    "encode",
]


class Ticket(msgspec.Struct, frozen=True, array_like=True):
    """What the dispatcher needs of a slot: who it is, and when it is due."""

    seq: int
    request_id: str
    loop: int
    warmup: bool
    intended_ns: int | None


class Counts(msgspec.Struct, array_like=True):
    """One target's dispatch side: sends started, in flight, lanes, waits for a lane."""

    sent: int = 0
    in_flight: int = 0
    peak: int = 0
    lanes: int = 0
    waited: int = 0


# Where a body is (`FeedItem.at`, `Done.at`): at a position of a ring (0 or more), or not there.
INLINE = -1
"""In a raw frame right after the message (a body too big for the ring)."""
NO_BODY = -2


class FeedItem(msgspec.Struct, tag=True, array_like=True):
    """One send, its body for each target but without the content: every target's body has the
    same content, which is at `at` (a ring position, or INLINE), `size` bytes."""

    ticket: Ticket
    heads: list[tuple[str, str, str, list[tuple[str, str]]]]
    order: tuple[int, ...]
    at: int
    size: int

    @classmethod
    def of(
        cls, ticket: Ticket, bodies: tuple[Prepared, ...], order: tuple[int, ...], at: int
    ) -> FeedItem:
        heads = [(b.method, b.url, b.target, b.headers) for b in bodies]
        return cls(ticket, heads, order, at, len(bodies[0].content))

    def prepared(self, content: bytes) -> tuple[Prepared, ...]:
        return tuple(Prepared(m, u, h, content, t) for m, u, t, h in self.heads)


class End(msgspec.Struct, tag=True, array_like=True):
    pass


class Start(msgspec.Struct, tag=True, array_like=True):
    t0_ns: int
    t0_wall_ns: int


class Stop(msgspec.Struct, tag=True, array_like=True):
    pass


class Abort(msgspec.Struct, tag=True, array_like=True):
    pass


class Ready(msgspec.Struct, tag=True, array_like=True):
    scheduling: str
    """How the worker's threads are scheduled (`_priority`)."""


class Done(msgspec.Struct, tag=True, array_like=True):
    """A finished exchange, without its body, which is at `at` (a ring position, INLINE or
    NO_BODY), `size` bytes."""

    run: int
    exchange: Exchange
    at: int
    size: int


class Tick(msgspec.Struct, tag=True, array_like=True):
    counts: list[Counts]


class Final(msgspec.Struct, tag=True, array_like=True):
    counts: list[Counts]
    error: str | None = None
    """A failure inside the worker, as one line (the worker closed cleanly anyway)."""


_encoder = msgspec.msgpack.Encoder()
_feed = msgspec.msgpack.Decoder(FeedItem | End)
_control: msgspec.msgpack.Decoder[Start | Stop | Abort] = msgspec.msgpack.Decoder(
    Start | Stop | Abort
)
_result: msgspec.msgpack.Decoder[Ready | Done | Tick | Final] = msgspec.msgpack.Decoder(
    Ready | Done | Tick | Final
)


def encode(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


def decode_feed(frame: bytes) -> FeedItem | End:
    return _feed.decode(frame)


def decode_control(frame: bytes) -> Start | Stop | Abort:
    return _control.decode(frame)


def decode_result(frame: bytes) -> Ready | Done | Tick | Final:
    return _result.decode(frame)
