"""The records of a trace file, as frozen msgspec Structs.

A file is a `Header` followed by any mix of `Blob`, `Request` and `Outcome` records. Schema
evolution follows msgspec's rules (docs/trace-format.md): new fields are appended with defaults,
no field changes type, and tags never change. Timestamps are integer nanoseconds; offsets are
measured from the file's time zero (the first arrival of a trace, the start of a replay).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "Blob",
    "Body",
    "ErrorInfo",
    "FilePart",
    "FormPart",
    "Header",
    "Interleave",
    "JsonBody",
    "MeasuredSend",
    "MultipartBody",
    "Note",
    "Outcome",
    "RawBody",
    "Record",
    "Request",
    "Response",
    "TextField",
]

FORMAT_VERSION = 1
# Every on-disk version this reader understands; anything else is UnsupportedTraceVersion.
READABLE_VERSIONS = frozenset({1})

Headers = tuple[tuple[str, str], ...]


class Interleave(msgspec.Struct, frozen=True, kw_only=True):
    """For a run of an interleaved replay: the group of runs measured side by side.

    Every run of a group replayed one schedule, each request sent to every target at the same
    intended time in a per-request order drawn from `order_seed`.
    """

    group: str
    """An id shared by the runs of one interleaved replay, and by no other run."""
    name: str
    """This run's target name (its file is NAME.imgtrace)."""
    order_seed: int
    targets: dict[str, str] = {}
    """Every target of the group, name to base URL (without credentials), in send-order index."""


class Header(msgspec.Struct, frozen=True, kw_only=True, tag="header"):
    """First record of every file: what it is, where it came from, and (for runs) what ran."""

    format_version: int = FORMAT_VERSION
    kind: Literal["trace", "run"] = "trace"
    created_ns: int = 0
    """Wall-clock creation time, ns since the Unix epoch."""
    source: str = "unknown"
    """proxy, transport, synthetic, import:aiperf-raw, import:har, replay, ..."""
    tool_version: str = ""
    metadata: dict[str, Any] = {}
    trace_digest: str | None = None
    """For runs: the digest of the trace that was replayed (`trace_digest()` of its requests)."""
    trace_path: str | None = None
    target: str | None = None
    options: dict[str, Any] = {}
    """For runs: the replay options, without secrets."""
    start_wall_ns: int | None = None
    """Wall-clock time of offset zero, when known."""
    interleave: Interleave | None = None
    """For runs of an interleaved replay: the group, its order seed and its targets."""


class Blob(msgspec.Struct, frozen=True, kw_only=True, tag="blob"):
    """Bytes stored once per file and referred to by their sha256 hex digest."""

    digest: str
    media_type: str
    data: bytes


class TextField(msgspec.Struct, frozen=True, kw_only=True, tag="text"):
    """A multipart form field without a filename whose value is UTF-8 text."""

    name: str
    value: str
    content_type: str | None = None
    head: str | None = None
    """The part's header block as it was sent (see `MultipartBody`); None: write a plain one."""


class FilePart(msgspec.Struct, frozen=True, kw_only=True, tag="file"):
    """A multipart part whose bytes live in a blob (uploads, and non-UTF-8 fields)."""

    name: str
    blob: str
    size: int
    filename: str | None = None
    content_type: str | None = None
    head: str | None = None
    """The part's header block as it was sent (see `MultipartBody`); None: write a plain one."""


FormPart = TextField | FilePart


class MultipartBody(msgspec.Struct, frozen=True, kw_only=True, tag="multipart"):
    """A multipart/form-data body as its ordered parts; re-encoded with `boundary` on replay.

    When the recorded framing was UTF-8 text, `content_type` (the request's Content-Type value),
    each part's `head`, `preamble` and `epilogue` keep it as it was, so that a replay sends the
    recorded bytes unchanged: quoted boundaries and RFC 5987 `filename*=` parameters included.
    """

    parts: tuple[FormPart, ...]
    boundary: str = ""
    content_type: str | None = None
    preamble: str = ""
    epilogue: str | None = None
    """What followed the closing delimiter; None: the usual CRLF."""


class JsonBody(msgspec.Struct, frozen=True, kw_only=True, tag="json"):
    """A JSON body (e.g. /v1/images/generations), kept inline so it can be read and edited."""

    value: Any


class RawBody(msgspec.Struct, frozen=True, kw_only=True, tag="raw"):
    """Any other body, byte for byte; `parse_error` says why it was not kept as parts."""

    blob: str
    size: int
    content_type: str | None = None
    parse_error: str | None = None


Body = MultipartBody | JsonBody | RawBody


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Why an exchange produced no (complete) HTTP response.

    `kind` is one of connect, timeout, read, write, protocol, aborted, upstream, local.
    """

    kind: str
    message: str = ""


class Response(msgspec.Struct, frozen=True, kw_only=True):
    """A response recorded with its request (by the proxy, the transport or an importer).

    Times are offsets in ns from the trace's time zero, like `Request.offset_ns`.
    """

    status: int | None = None
    headers: Headers = ()
    upload_done_ns: int | None = None
    first_byte_ns: int | None = None
    done_ns: int | None = None
    error: ErrorInfo | None = None
    bytes_down: int = 0
    content_type: str | None = None
    envelope: Any = None
    """The JSON body with every `b64_json` value replaced by `{"$blob": digest}`."""
    images: tuple[str, ...] = ()
    """Digests of the returned images, in `data[]` order."""
    body_blob: str | None = None
    """A body that is not JSON (an image, an error page), stored as a blob."""


class Request(msgspec.Struct, frozen=True, kw_only=True, tag="request"):
    """One request of a trace, redacted, with its recorded response when there was one."""

    id: str
    offset_ns: int
    path: str
    method: str = "POST"
    query: str = ""
    headers: Headers = ()
    body: Body | None = None
    wall_ns: int | None = None
    """Wall-clock arrival time, ns since the Unix epoch, when known."""
    response: Response | None = None
    notes: dict[str, Any] = {}
    """Free-form facts from the capture, e.g. {"body_dropped": "over --max-body"}."""


class MeasuredSend(msgspec.Struct, kw_only=True):
    """What sending one request measured, offsets in ns from the replay's start: the part of an
    `Outcome` that the replayer fills in while the send is under way (its mutable record of it
    extends this), before the body is stored."""

    request_id: str
    seq: int
    """Send order within the run."""
    intended_ns: int
    sent_ns: int | None = None
    upload_done_ns: int | None = None
    first_byte_ns: int | None = None
    done_ns: int | None = None
    status: int | None = None
    error: ErrorInfo | None = None
    bytes_up: int = 0
    bytes_down: int = 0
    headers: Headers = ()
    content_type: str | None = None
    warmup: bool = False
    loop: int = 0
    """Which pass over the trace (--loop) this send belongs to."""


# msgspec lets a frozen record extend a mutable one (instances of `Outcome` are frozen); mypy
# applies the dataclass rule, which forbids it.
class Outcome(MeasuredSend, frozen=True, kw_only=True, tag="outcome"):  # type: ignore[misc]
    """What happened when a replay sent one request: what it measured, and the body as stored."""

    envelope: Any = None
    images: tuple[str, ...] = ()
    body_blob: str | None = None
    repeat: int = 0
    """Which repetition of the replay (--repeat) this send belongs to."""


class Note(msgspec.Struct, frozen=True, kw_only=True, tag="note"):
    """Metadata learned after the header was written (counts at exit, an interruption).

    Readers apply notes over `Header.metadata` in file order.
    """

    created_ns: int = 0
    metadata: dict[str, Any] = {}


Record = Header | Blob | Request | Outcome | Note
