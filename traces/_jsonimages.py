"""Pull base64 images out of a JSON response body in short steps (`strip_images_from_json`).

Decoding a 2 MB `b64_json` string with the standard library holds the GIL for about 10 ms
(about 4 ms per MB for base64, 1.4 ms per MB for the JSON string), and an event loop that needs
the GIL to send the next request on time waits that long. Here the base64 spans are found in
the raw bytes and decoded by pybase64 (SIMD, about 50 times faster than `binascii`), and only
the small rest of the document goes through the JSON decoder. The result is the same as
`strip_images(json.loads(body), add_blob)`; anything unusual falls back to that. Used by the
recorder and the replayer, which both handle multi-megabyte image responses beside an event loop.
"""

from __future__ import annotations

import binascii
from typing import Any

import msgspec
import pybase64

from ._body import BlobSink, strip_images

__all__ = ["is_json_media", "json_envelope", "strip_images_from_json"]

_KEY = b'"b64_json"'
_WHITESPACE = b" \t\r\n"
_decoder = msgspec.json.Decoder()


def strip_images_from_json(body: bytes, add_blob: BlobSink) -> tuple[Any, tuple[str, ...]]:
    """The envelope (images as `{"$blob": digest}`) and the image digests in `data[]` order.

    Raises `msgspec.DecodeError` when the body is not JSON.
    """
    pieces: list[bytes] = []
    position = search = 0
    while True:
        key = body.find(_KEY, search)
        if key < 0:
            break
        search = key + len(_KEY)
        start = _string_value_start(body, key, search)
        if start is None:
            continue
        end = body.find(b'"', start)
        if end < 0 or body.find(b"\\", start, end) >= 0:
            # An escape inside the value: not plain base64; let the full decoder judge.
            return strip_images(_decoder.decode(body), add_blob)
        search = end + 1
        data = _decode_base64(body, start, end)
        if data is None:
            continue  # not valid base64: left in the envelope as the string it was
        digest = add_blob(data, None)
        pieces.append(body[position : start - 1])
        pieces.append(b'{"$blob":"' + digest.encode() + b'"}')
        position = end + 1
    if not pieces:
        return strip_images(_decoder.decode(body), add_blob)
    pieces.append(body[position:])
    envelope = _decoder.decode(b"".join(pieces))
    return envelope, tuple(_digests(envelope))


def is_json_media(content_type: str | None) -> bool:
    """True for `application/json` and any `+json` media type, parameters ignored."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def json_envelope(
    content_type: str | None, body: bytes, add_blob: BlobSink
) -> tuple[Any, tuple[str, ...]] | None:
    """A JSON response body as a response's `envelope` and `images`; None when it is not JSON.

    The one rule by which a recorded `Response` and a replayed `Outcome` store a body: JSON
    (by its content type, and parsing) becomes an envelope, anything else a `body_blob`.
    """
    if not is_json_media(content_type):
        return None
    try:
        return strip_images_from_json(body, add_blob)
    except msgspec.DecodeError:
        return None


def _string_value_start(body: bytes, key: int, after: int) -> int | None:
    """Where the string value of the key at `key` starts, or None if it is not a key with a
    non-empty string value (a value that only looks like the key, an escaped quote, null)."""
    if key > 0 and body[key - 1 : key] == b"\\":
        return None
    i = after
    while body[i : i + 1] in _WHITESPACE and i < len(body):
        i += 1
    if body[i : i + 1] != b":":
        return None
    i += 1
    while body[i : i + 1] in _WHITESPACE and i < len(body):
        i += 1
    if body[i : i + 1] != b'"' or body[i + 1 : i + 2] == b'"':
        return None
    return i + 1


def _decode_base64(body: bytes, start: int, end: int) -> bytes | None:
    """Strict base64 (as `base64.b64decode(validate=True)`), or None when it is not."""
    try:
        return pybase64.b64decode(memoryview(body)[start:end], validate=True)
    except (binascii.Error, ValueError):
        return None


def _digests(node: Any) -> list[str]:
    """The `{"$blob": digest}` values under `b64_json` keys, in document order."""
    found: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "b64_json" and isinstance(value, dict) and set(value) == {"$blob"}:
                    found.append(value["$blob"])
                else:
                    walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)

    walk(node)
    return found
