"""A captured HTTP exchange, and how it becomes a `Request` record (shared by proxy and transport).

The hot path (the proxy's event loop, the application's HTTP client) only appends chunk
references to an `Exchange` and stamps monotonic times; all parsing, hashing and redaction happen
later, on the recorder's writer thread or in the proxy's recording process, in `to_request`.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import hmac
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from traces import (
    BlobSink,
    Body,
    ErrorInfo,
    ErrorKind,
    JsonBody,
    MultipartBody,
    RawBody,
    Request,
    Response,
    TextField,
    body_from_bytes,
    json_envelope,
    redact_query,
    strip_images,
)
from traces import error_kind as classify

__all__ = [
    "DEFAULT_PATHS",
    "HOP_BY_HOP",
    "Exchange",
    "PathMatcher",
    "error_kind",
    "pseudonymise",
    "sample_key",
    "to_request",
]

DEFAULT_PATHS = ("/v1/images/edits", "/v1/images/generations")

# RFC 9110 section 7.6.1 connection-specific headers, plus the non-standard ones proxies meet.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

_json_decoder = msgspec.json.Decoder()
_sample_encoder = msgspec.msgpack.Encoder()

Headers = list[tuple[str, str]]


def _went_over(chunks: list[bytes], chunk: bytes, size: int, max_body: int) -> bool:
    """Whether the body went over `max_body` with this chunk (then none is kept), else keeps it."""
    if size > max_body:
        # Forwarded in full, recorded without its body: memory stays bounded.
        chunks.clear()
        return True
    chunks.append(chunk)
    return False


@dataclass(eq=False)
class Exchange:
    """One request/response pair as the wire saw it; times are `time.monotonic_ns()` values."""

    id: str
    arrival_ns: int
    wall_ns: int
    method: str
    path: str
    query: str
    headers: Headers
    max_body: int
    request_chunks: list[bytes] = field(default_factory=list)
    request_size: int = 0
    request_over: bool = False
    upload_done_ns: int | None = None
    status: int | None = None
    response_headers: Headers = field(default_factory=list)
    first_byte_ns: int | None = None
    response_chunks: list[bytes] = field(default_factory=list)
    response_size: int = 0
    response_over: bool = False
    done_ns: int | None = None
    client_done_ns: int | None = None
    error: ErrorInfo | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    left_out: str | None = None
    """Why both bodies were left out of the recording (the recorder was behind), or None."""

    def add_request_chunk(self, chunk: bytes) -> None:
        self.request_size += len(chunk)
        if not self.request_over:
            self.request_over = _went_over(
                self.request_chunks, chunk, self.request_size, self.max_body
            )

    def add_response_chunk(self, chunk: bytes) -> None:
        self.response_size += len(chunk)
        if not self.response_over:
            self.response_over = _went_over(
                self.response_chunks, chunk, self.response_size, self.max_body
            )

    @property
    def held_bytes(self) -> int:
        """Body bytes this exchange keeps alive until it is written."""
        if self.left_out is not None:
            return 0
        held = 0 if self.request_over else self.request_size
        return held + (0 if self.response_over else self.response_size)

    @property
    def head_bytes(self) -> int:
        """About what the rest of the exchange (line, headers, notes) holds."""
        headers = sum(len(n) + len(v) for n, v in (*self.headers, *self.response_headers))
        return 256 + len(self.path) + len(self.query) + headers

    def leave_out_bodies(self, reason: str) -> None:
        """Record this exchange without its bodies (timings, status and headers stay)."""
        self.left_out = reason
        self.request_chunks = []
        self.response_chunks = []

    def fail(self, kind: ErrorKind, message: str) -> None:
        if self.error is None:
            self.error = ErrorInfo(kind=kind, message=message)


class PathMatcher:
    """Which request paths are recorded: exact paths, or shell-style patterns like `/v1/*`."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._exact = frozenset(p for p in self.patterns if not any(c in p for c in "*?["))
        self._globs = tuple(p for p in self.patterns if p not in self._exact)

    def __call__(self, path: str) -> bool:
        if path in self._exact:
            return True
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self._globs)


def error_kind(exc: BaseException) -> ErrorKind:
    """The `ErrorInfo.kind` for a failure of the upstream leg (see `traces.error_kind`)."""
    return classify(exc, default="upstream")


def pseudonymise(value: str, key: bytes) -> str:
    """A stable stand-in for an end-user id: the same value and key always give the same one."""
    return "anon-" + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:24]


def sample_key(request: Request) -> float:
    """A number in [0, 1) fixed by the request's content (not its multipart boundary or time)."""
    body = request.body
    if isinstance(body, MultipartBody):
        body = MultipartBody(parts=body.parts)
    payload = _sample_encoder.encode((request.method, request.path, request.query, body))
    if body is None:
        payload += str(request.notes.get("body_size", "")).encode()
    digest = hashlib.sha256(payload).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def to_request(exchange: Exchange, add_blob: BlobSink, zero_ns: int, user_key: bytes) -> Request:
    """The record for `exchange`: body parsed and stored as blobs, times as offsets.

    Headers and response secrets are redacted by the `TraceWriter` (`traces.Redaction`); the
    `user` pseudonym, which needs the recording's key, is made here.
    """
    notes = dict(exchange.notes)
    body = _request_body(exchange, add_blob, notes, user_key)

    def offset(ns: int | None) -> int | None:
        return None if ns is None else ns - zero_ns

    response: Response | None = None
    if exchange.status is not None or exchange.error is not None:
        response = _response(exchange, add_blob, notes, offset)
    if exchange.client_done_ns is not None:
        notes["client_done_ns"] = exchange.client_done_ns - zero_ns
    return Request(
        id=exchange.id,
        offset_ns=exchange.arrival_ns - zero_ns,
        wall_ns=exchange.wall_ns,
        method=exchange.method,
        path=exchange.path,
        query=redact_query(exchange.query),  # before sampling hashes it
        headers=tuple(
            (name, value) for name, value in exchange.headers if name.lower() not in HOP_BY_HOP
        ),
        body=body,
        response=response,
        notes=notes,
    )


def _header(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _request_body(
    exchange: Exchange, add_blob: BlobSink, notes: dict[str, Any], user_key: bytes
) -> Body | None:
    content_type = _header(exchange.headers, "content-type")
    notes["body_size"] = exchange.request_size
    if exchange.left_out is not None and exchange.request_size and not exchange.request_over:
        notes["body_dropped"] = exchange.left_out
        return None
    if exchange.request_over:
        notes["body_dropped"] = f"over --max-body ({exchange.max_body} bytes)"
        return None
    data = b"".join(exchange.request_chunks)
    exchange.request_chunks.clear()
    if not data and exchange.method in ("GET", "HEAD", "DELETE", "OPTIONS"):
        return None
    if exchange.error is not None and exchange.error.kind == "aborted":
        notes["body_incomplete"] = True
    if _header(exchange.headers, "content-encoding") not in (None, "identity"):
        # A compressed upload is kept exactly as sent rather than guessed at.
        digest = add_blob(data, content_type)
        return RawBody(blob=digest, size=len(data), content_type=content_type)

    def parts_only(blob: bytes, media_type: str | None) -> str:
        # The whole body is stored below, once it is known whether it must be scrubbed.
        return "" if blob is data else add_blob(blob, media_type)

    body = body_from_bytes(content_type, data, parts_only)
    if isinstance(body, RawBody):
        kept = data
        if body.parse_error is not None:
            # Kept byte for byte because it did not parse, but a `user` value must not leak.
            kept = _scrub_raw_user(data, user_key)
            if kept != data:
                notes["raw_body_scrubbed"] = "the user field was pseudonymised in the raw bytes"
        return RawBody(
            blob=add_blob(kept, content_type),
            size=len(kept),
            content_type=body.content_type,
            parse_error=body.parse_error,
        )
    return _pseudonymise_body(body, user_key)


# The value of a form part named `user` (up to the next delimiter, or the end of a cut-off
# body), and a JSON "user" string: best effort for bodies that do not parse.
_RAW_FORM_USER = re.compile(
    rb'(name="?user"?(?:;[^\r\n]*)?\r\n(?:[^\r\n]+\r\n)*\r\n)(.*?)(?=\r\n--|\Z)', re.DOTALL
)
_RAW_JSON_USER = re.compile(rb'("user"\s*:\s*")((?:[^"\\]|\\.)*)(")')


def _scrub_raw_user(data: bytes, key: bytes) -> bytes:
    def form(match: re.Match[bytes]) -> bytes:
        value = match.group(2).decode("utf-8", "replace")
        return match.group(1) + pseudonymise(value, key).encode()

    def json_value(match: re.Match[bytes]) -> bytes:
        value = match.group(2).decode("utf-8", "replace")
        return match.group(1) + pseudonymise(value, key).encode() + match.group(3)

    return _RAW_JSON_USER.sub(json_value, _RAW_FORM_USER.sub(form, data))


def _pseudonymise_body(body: Body | None, key: bytes) -> Body | None:
    if isinstance(body, MultipartBody):
        if not any(isinstance(p, TextField) and p.name == "user" for p in body.parts):
            return body
        parts = tuple(
            msgspec.structs.replace(p, value=pseudonymise(p.value, key))
            if isinstance(p, TextField) and p.name == "user"
            else p
            for p in body.parts
        )
        return msgspec.structs.replace(body, parts=parts)
    if isinstance(body, JsonBody) and isinstance(body.value, dict):
        user = body.value.get("user")
        if isinstance(user, str):
            return JsonBody(value={**body.value, "user": pseudonymise(user, key)})
    return body


def _decoded_response(exchange: Exchange, notes: dict[str, Any]) -> bytes | None:
    data = b"".join(exchange.response_chunks)
    exchange.response_chunks.clear()
    encoding = (_header(exchange.response_headers, "content-encoding") or "identity").lower()
    try:
        if encoding == "gzip":
            return gzip.decompress(data)
        if encoding == "deflate":
            try:
                return zlib.decompress(data)
            except zlib.error:
                return zlib.decompress(data, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error) as exc:
        notes["response_decode_error"] = f"{encoding}: {exc}"
        return None
    if encoding not in ("identity", ""):
        notes["response_encoding_kept"] = encoding
        return None
    return data


def _response(
    exchange: Exchange, add_blob: BlobSink, notes: dict[str, Any], offset: Any
) -> Response:
    content_type = _header(exchange.response_headers, "content-type")
    envelope: Any = None
    images: tuple[str, ...] = ()
    body_blob: str | None = None
    if exchange.response_over:
        notes["response_body_dropped"] = f"over --max-body ({exchange.max_body} bytes)"
    elif exchange.left_out is not None and exchange.response_size:
        notes["response_body_dropped"] = exchange.left_out
    elif exchange.response_size:
        raw = b"".join(exchange.response_chunks)
        data = _decoded_response(exchange, notes)
        media = (content_type or "").split(";")[0].strip().lower()
        if data is None:
            body_blob = add_blob(raw, content_type)
        elif media == "text/event-stream":
            envelope, images = _sse_envelope(data, add_blob)
        elif (split := json_envelope(content_type, data, add_blob)) is not None:
            envelope, images = split
        else:
            body_blob = add_blob(data, content_type)
    return Response(
        status=exchange.status,
        headers=tuple((n, v) for n, v in exchange.response_headers if n.lower() not in HOP_BY_HOP),
        upload_done_ns=offset(exchange.upload_done_ns),
        first_byte_ns=offset(exchange.first_byte_ns),
        done_ns=offset(exchange.done_ns),
        error=exchange.error,
        bytes_down=exchange.response_size,
        content_type=content_type,
        envelope=envelope,
        images=images,
        body_blob=body_blob,
    )


def _sse_envelope(data: bytes, add_blob: BlobSink) -> tuple[Any, tuple[str, ...]]:
    """A server-sent event stream as `[{"event": name, "data": value}]`, images as blobs.

    `images` lists the images of `*.completed` events (the outputs) when there are any, else
    every image in stream order.
    """
    events: list[dict[str, Any]] = []
    completed: list[str] = []
    every: list[str] = []
    for block in data.replace(b"\r\n", b"\n").split(b"\n\n"):
        name: str | None = None
        lines: list[bytes] = []
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode("utf-8", "replace")
            elif line.startswith(b"data:"):
                lines.append(line[5:].removeprefix(b" "))
        if not lines and name is None:
            continue
        payload = b"\n".join(lines)
        try:
            value: Any = _json_decoder.decode(payload)
        except msgspec.DecodeError:
            value = payload.decode("utf-8", "replace")
        value, found = strip_images(value, add_blob)
        every.extend(found)
        kind = name or (value.get("type") if isinstance(value, dict) else None)
        if isinstance(kind, str) and kind.endswith(".completed"):
            completed.extend(found)
        events.append({"event": name, "data": value})
    return events, tuple(completed or every)
