"""The messages between the recording proxy and its recording process (msgpack frames).

Proxy to recording process, on the feed pipe: a `Capture` per finished exchange (its times,
heads and counts, without the bodies), followed by the request body's chunks and then the
response body's chunks, each a raw frame of its own (never copied into a message); `Close` at
the end. Recording process to proxy, on the result pipe: `Ready` once it runs, `Opened` per
part file it creates, `Progress` now and then, and `Final` with its counts after it closed the
trace. A result pipe that ends without `Final` means the recording process died.
"""

from __future__ import annotations

import msgspec

from ._capture import Exchange
from ._options import RecorderStats

__all__ = [
    "Capture",
    "Close",
    "Final",
    "Forwarded",
    "Opened",
    "Progress",
    "Ready",
    "decode_feed",
    "decode_result",
    "encode",
]


class Forwarded(msgspec.Struct, array_like=True):
    """The counts only the forwarding side knows, as of the message that carries them."""

    seen: int = 0
    dropped_queue_full: int = 0
    bodies_dropped_behind: int = 0
    dropped_after_close: int = 0

    @classmethod
    def of(cls, stats: RecorderStats) -> Forwarded:
        return cls(
            stats.seen,
            stats.dropped_queue_full,
            stats.bodies_dropped_behind,
            stats.dropped_after_close,
        )

    def apply(self, stats: RecorderStats) -> None:
        stats.seen = self.seen
        stats.dropped_queue_full = self.dropped_queue_full
        stats.bodies_dropped_behind = self.bodies_dropped_behind
        stats.dropped_after_close = self.dropped_after_close


class Capture(msgspec.Struct, tag=True, array_like=True):
    """One finished exchange; its chunks follow as `request_frames` + `response_frames` frames."""

    exchange: Exchange
    request_frames: int
    response_frames: int
    zero_ns: int
    zero_wall_ns: int
    forwarded: Forwarded


class Close(msgspec.Struct, tag=True, array_like=True):
    """Nothing more comes: close the trace with these final forwarding counts."""

    forwarded: Forwarded


class Ready(msgspec.Struct, tag=True, array_like=True):
    pid: int


class Opened(msgspec.Struct, tag=True, array_like=True):
    path: str


class Progress(msgspec.Struct, tag=True, array_like=True):
    stats: RecorderStats


class Final(msgspec.Struct, tag=True, array_like=True):
    stats: RecorderStats
    error: str | None = None


encode = msgspec.msgpack.Encoder().encode
_feed_decoder: msgspec.msgpack.Decoder[Capture | Close] = msgspec.msgpack.Decoder(Capture | Close)
_result_decoder: msgspec.msgpack.Decoder[Ready | Opened | Progress | Final] = (
    msgspec.msgpack.Decoder(Ready | Opened | Progress | Final)
)


def decode_feed(data: bytes) -> Capture | Close:
    return _feed_decoder.decode(data)


def decode_result(data: bytes) -> Ready | Opened | Progress | Final:
    return _result_decoder.decode(data)
