"""One read-only view of an exchange, whether recorded (`Request.response`) or replayed (`Outcome`).

A recorded response and a replayed outcome describe the same thing (when a request went, when
its phases ended, what came back), but live in two records, because a recording stores the
response inside its request. Code that reads both (the analyzer, `imgtrace show`) takes this view
and needs no branch per record type. Times are ns offsets from the file's time zero; for a
recording, the intended and actual send are both the arrival, since the client sent it then.
"""

from __future__ import annotations

import operator
from typing import Any

import msgspec

from ._schema import ErrorInfo, Outcome, Request

__all__ = ["ExchangeView", "view_exchange"]

Headers = tuple[tuple[str, str], ...]


class ExchangeView(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What one send of one request got: its times, status or error, and response body."""

    request_id: str
    loop: int
    repeat: int
    """Which repetition of a `replay --repeat` run (0 for others and for recordings)."""
    seq: int
    intended_ns: int
    sent_ns: int | None
    upload_done_ns: int | None
    first_byte_ns: int | None
    done_ns: int | None
    status: int | None
    error: ErrorInfo | None
    bytes_up: int
    bytes_down: int
    headers: Headers
    content_type: str | None
    envelope: Any
    images: tuple[str, ...]
    body_blob: str | None
    warmup: bool
    recorded: bool
    """True for a recorded response, False for a replayed outcome."""

    @property
    def error_kind(self) -> str | None:
        return self.error.kind if self.error is not None else None


_ANSWER = (
    "upload_done_ns",
    "first_byte_ns",
    "done_ns",
    "status",
    "error",
    "bytes_down",
    "headers",
    "content_type",
    "envelope",
    "images",
    "body_blob",
)
"""What an outcome and a recorded response both hold, by the same names."""
_answer = operator.attrgetter(*_ANSWER)


def view_exchange(record: Request | Outcome, seq: int = 0) -> ExchangeView | None:
    """The view of an outcome, or of a request's recorded response (None when it has none).

    `seq` numbers recorded exchanges (a recording has no send order of its own); an outcome
    keeps its own.
    """
    if isinstance(record, Outcome):
        return ExchangeView(
            **dict(zip(_ANSWER, _answer(record), strict=True)),
            request_id=record.request_id,
            loop=record.loop,
            repeat=record.repeat,
            seq=record.seq,
            intended_ns=record.intended_ns,
            sent_ns=record.sent_ns,
            bytes_up=record.bytes_up,
            warmup=record.warmup,
            recorded=False,
        )
    response = record.response
    if response is None:
        return None
    # A recording: the client sent the request when it arrived, and its bytes up are unknown.
    return ExchangeView(
        **dict(zip(_ANSWER, _answer(response), strict=True)),
        request_id=record.id,
        loop=0,
        repeat=0,
        seq=seq,
        intended_ns=record.offset_ns,
        sent_ns=record.offset_ns,
        bytes_up=0,
        warmup=False,
        recorded=True,
    )
