"""Bodies between the wire and the file: bytes to `Body` records with blobs, and back."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import msgspec

from ._errors import MultipartError
from ._multipart import (
    FormPartData,
    Framing,
    boundary_of,
    content_type_for,
    encode_multipart,
    new_boundary,
    parse_multipart,
    split_framing,
)
from ._schema import Body, FilePart, FormPart, JsonBody, MultipartBody, RawBody, TextField

__all__ = [
    "BlobSink",
    "BlobSource",
    "body_from_bytes",
    "body_from_parts",
    "encode_body",
    "form_parts",
    "restore_images",
    "strip_images",
]

BlobSink = Callable[[bytes, "str | None"], str]
"""Stores bytes (with an optional media type) and returns their digest: `TraceWriter.add_blob`."""
BlobSource = Callable[[str], bytes]
"""Returns the bytes for a digest: `TraceReader.blob`."""

_json_decoder = msgspec.json.Decoder()
_json_encoder = msgspec.json.Encoder()


def body_from_parts(
    parts: list[FormPartData],
    boundary: str,
    add_blob: BlobSink,
    *,
    content_type: str | None = None,
    framing: Framing | None = None,
) -> MultipartBody:
    """Form parts as records: UTF-8 fields inline, files (and binary fields) as blobs.

    `framing` (from `split_framing`) and `content_type` keep the body's bytes as they were sent.
    """
    if framing is not None:
        parts = _with_heads(parts, framing)
    records: list[FormPart] = []
    for part in parts:
        if part.filename is None:
            try:
                text = part.data.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                records.append(
                    TextField(
                        name=part.name,
                        value=text,
                        content_type=part.content_type,
                        head=part.head,
                    )
                )
                continue
        digest = add_blob(part.data, None)
        records.append(
            FilePart(
                name=part.name,
                blob=digest,
                size=len(part.data),
                filename=part.filename,
                content_type=part.content_type,
                head=part.head,
            )
        )
    if framing is None:
        return MultipartBody(parts=tuple(records), boundary=boundary, content_type=content_type)
    return MultipartBody(
        parts=tuple(records),
        boundary=boundary,
        content_type=content_type,
        preamble=framing.preamble,
        epilogue=framing.epilogue,
    )


def _with_heads(parts: list[FormPartData], framing: Framing) -> list[FormPartData]:
    pairs = zip(parts, framing.heads, strict=True)
    return [msgspec.structs.replace(part, head=head) for part, head in pairs]


def _framing_of(data: bytes, parts: list[FormPartData], boundary: str) -> Framing | None:
    """The body's framing, if it re-encodes to exactly `data` (else the plain encoding)."""
    framing = split_framing(data, boundary)
    if framing is None or len(framing.heads) != len(parts):
        return None
    again = encode_multipart(
        _with_heads(parts, framing), boundary, preamble=framing.preamble, epilogue=framing.epilogue
    )
    return framing if again == data else None


def body_from_bytes(content_type: str | None, data: bytes, add_blob: BlobSink) -> Body | None:
    """The record for a request body: parts if multipart, a value if JSON, else a raw blob.

    A body that claims to be multipart or JSON but does not parse is kept byte for byte as a
    `RawBody` whose `parse_error` says what was wrong.
    """
    if not data and not content_type:
        return None
    media = (content_type or "").split(";")[0].strip().lower()
    parse_error: str | None = None
    if media == "multipart/form-data":
        try:
            parts = parse_multipart(data, content_type)
        except MultipartError as exc:
            parse_error = str(exc)
        else:
            boundary = boundary_of(content_type) or ""
            return body_from_parts(
                parts,
                boundary,
                add_blob,
                content_type=content_type,
                framing=_framing_of(data, parts, boundary),
            )
    elif media == "application/json" or media.endswith("+json"):
        try:
            return JsonBody(value=_json_decoder.decode(data))
        except msgspec.DecodeError as exc:
            parse_error = f"invalid JSON: {exc}"
    digest = add_blob(data, content_type)
    return RawBody(blob=digest, size=len(data), content_type=content_type, parse_error=parse_error)


def form_parts(body: MultipartBody, get_blob: BlobSource) -> list[FormPartData]:
    """The parts of a recorded multipart body, with their bytes."""
    parts: list[FormPartData] = []
    for part in body.parts:
        if isinstance(part, TextField):
            data = part.value.encode("utf-8")
            parts.append(FormPartData(part.name, data, None, part.content_type, part.head))
        else:
            blob = get_blob(part.blob)
            parts.append(FormPartData(part.name, blob, part.filename, part.content_type, part.head))
    return parts


def encode_body(body: Body | None, get_blob: BlobSource) -> tuple[str | None, bytes]:
    """(Content-Type, bytes) to send for a recorded body.

    Multipart keeps its boundary, and its recorded Content-Type value and framing: an unchanged
    recorded body is sent byte for byte as it was recorded.
    """
    if body is None:
        return None, b""
    if isinstance(body, MultipartBody):
        boundary = body.boundary or new_boundary()
        data = encode_multipart(
            form_parts(body, get_blob), boundary, preamble=body.preamble, epilogue=body.epilogue
        )
        recorded = body.content_type
        if recorded is not None and boundary_of(recorded) == boundary:
            return recorded, data
        return content_type_for(boundary), data
    if isinstance(body, JsonBody):
        return "application/json", _json_encoder.encode(body.value)
    return body.content_type, get_blob(body.blob)


# Decoding a multi-megabyte image in slices lets other threads (a recorder's event loop) run
# between them: one b64decode call holds the GIL for its whole length. A multiple of 4.
_BASE64_SLICE = 128 * 1024


def _decode_base64(text: str) -> bytes:
    data = text.encode("ascii")
    if len(data) <= _BASE64_SLICE:
        return base64.b64decode(data, validate=True)
    return b"".join(
        base64.b64decode(data[start : start + _BASE64_SLICE], validate=True)
        for start in range(0, len(data), _BASE64_SLICE)
    )


def strip_images(value: Any, add_blob: BlobSink) -> tuple[Any, tuple[str, ...]]:
    """Replace every base64 `b64_json` string in a JSON value by `{"$blob": digest}`.

    Returns the envelope and the digests in document order (for `data[]`, the output order).
    A value that is not valid base64 is left as it was.
    """
    found: list[str] = []

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, item in node.items():
                if key == "b64_json" and isinstance(item, str) and item:
                    try:
                        raw = _decode_base64(item)
                    except (binascii.Error, ValueError):
                        out[key] = item
                        continue
                    digest = add_blob(raw, None)
                    found.append(digest)
                    out[key] = {"$blob": digest}
                else:
                    out[key] = walk(item)
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(value), tuple(found)


def restore_images(envelope: Any, get_blob: BlobSource) -> Any:
    """The inverse of `strip_images`: blob references become base64 strings again."""
    if isinstance(envelope, dict):
        if set(envelope) == {"$blob"} and isinstance(envelope["$blob"], str):
            return base64.b64encode(get_blob(envelope["$blob"])).decode("ascii")
        return {key: restore_images(item, get_blob) for key, item in envelope.items()}
    if isinstance(envelope, list):
        return [restore_images(item, get_blob) for item in envelope]
    return envelope
