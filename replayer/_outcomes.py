"""Exchanges become `Outcome` records on a thread of their own.

Decoding a response, pulling base64 images out into blobs and compressing frames costs
milliseconds per image; done on the event loop it would delay the next send. The event loop
only hands the finished exchange over.

That decoding is also where a 2xx whose body is not JSON is found out (`invalid-response`): the
exchange was counted as a success on the event loop, so `close()` hands each such exchange to
`on_invalid`, which corrects the counts once the replay is over.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import msgspec

from traces import MeasuredSend, Outcome, TraceWriter, invalid_response, json_envelope

from ._backlog import BODY_BUDGET, Backlog
from ._sender import Exchange, decoded_body

__all__ = ["OutcomeSink"]

POLL_S = 0.05
# An outcome is what the exchange measured (the fields they share), and its body as stored.
_MEASURED = tuple(field.name for field in msgspec.structs.fields(MeasuredSend))


def _digest_only(data: bytes, media_type: str | None) -> str:
    return hashlib.sha256(data).hexdigest()


class OutcomeSink:
    """Writes one `Outcome` per exchange, in completion order, from a background thread.

    :param keep_images: store output images as blobs; without it (--no-images) only their
        digests are kept, which still tells identical outputs apart.
    :param on_invalid: called by `close()`, on the caller's thread, once per exchange whose 2xx
        response turned out not to be JSON (its outcome carries the `invalid-response` error).
    :param budget: bytes of bodies that may wait to be written; past it bodies are left out
        (counted in `dropped`) rather than held or waited for.
    """

    def __init__(
        self,
        writer: TraceWriter,
        *,
        keep_images: bool = True,
        thread: bool = True,
        on_invalid: Callable[[Exchange], None] | None = None,
        budget: int = BODY_BUDGET,
    ) -> None:
        self.writer = writer
        self.keep_images = keep_images
        self.on_invalid = on_invalid
        self.invalid: list[Exchange] = []
        self.error: BaseException | None = None
        self.dropped = 0
        """Outcomes written without their body, because storing fell behind."""
        # Not a queue: appending never wakes the thread, so a send does not pay for a thread
        # switch; the thread collects what piled up every POLL_S instead.
        self._pending: Backlog[None] = Backlog(budget)
        self._closing = threading.Event()
        # thread=False: another thread calls write_pending() (one thread for several sinks).
        self._thread: threading.Thread | None = None
        if thread:
            self._thread = threading.Thread(target=self._run, name="imgtrace-outcomes", daemon=True)
            self._thread.start()

    def put(self, exchange: Exchange) -> None:
        self._pending.put(None, exchange)

    def close(self) -> None:
        """Write everything handed over, then stop; re-raises a failure of the writer thread."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join()
        else:
            self.write_pending()
        if self.on_invalid is not None:
            for exchange in self.invalid:
                self.on_invalid(exchange)
        if self.error is not None:
            raise self.error

    def write_pending(self) -> None:
        """Write every exchange handed over so far; a writer's failure is kept for close()."""
        while (taken := self._pending.take()) is not None:
            exchange = taken[1]
            self.dropped += exchange.body_dropped
            if self.error is not None:
                continue  # keep draining so memory does not grow behind a dead writer
            try:
                self.writer.write(self.outcome(exchange))
            except BaseException as exc:  # reported by close()
                self.error = exc

    def _run(self) -> None:
        while True:
            closing = self._closing.wait(POLL_S)
            self.write_pending()
            if closing:
                return

    def outcome(self, exchange: Exchange) -> Outcome:
        envelope: Any = None
        images: tuple[str, ...] = ()
        body_blob: str | None = None
        undecodable = decoded_body(exchange)
        if undecodable is not None and exchange.error is None:
            exchange.error = undecodable
        body = exchange.body
        split = None
        if body:
            sink = self.writer.add_blob if self.keep_images else _digest_only
            split = json_envelope(exchange.content_type, body, sink)
            if split is not None:
                envelope, images = split
            elif self.keep_images or not (exchange.content_type or "").startswith("image/"):
                body_blob = self.writer.add_blob(body, exchange.content_type)
            else:
                body_blob = _digest_only(body, None)
        if exchange.error is None:
            # No envelope: a JSON body that did not decode, or a body of another type, which
            # may still be JSON (decoded once more by the rule).
            decoded = True if split is not None else None if body else False
            exchange.error = invalid_response(
                exchange.status, exchange.content_type, body, decoded=decoded
            )
            if exchange.error is not None:
                self.invalid.append(exchange)
        measured = {name: getattr(exchange, name) for name in _MEASURED}
        return Outcome(**measured, envelope=envelope, images=images, body_blob=body_blob)
