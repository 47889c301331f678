"""Small inputs that several test folders (and the benchmarks) build alike.

A plain module beside tests/conftest.py (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from traces import FilePart, MultipartBody, Outcome, Request, TextField

MS = 1_000_000


def png(seed: int = 0, size: int = 8) -> bytes:
    """A one-colour PNG; seeds under 256 give different bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (seed % 256, 40, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(
    digest: str, size: int, filename: str = "in.png", content_type: str | None = "image/png"
) -> FilePart:
    """The `image` part of an edit: the blob `digest`, said to be `size` bytes."""
    return FilePart(
        name="image", blob=digest, size=size, filename=filename, content_type=content_type
    )


def edit(
    request_id: str,
    offset_ns: int,
    image: FilePart,
    prompt: str,
    *,
    boundary: str = "",
    **fields: str,
) -> Request:
    """An image edit to /v1/images/edits: the prompt, the image, then the other text fields."""
    texts = [TextField(name=name, value=value) for name, value in fields.items()]
    parts: tuple[TextField | FilePart, ...] = (
        TextField(name="prompt", value=prompt),
        image,
        *texts,
    )
    body = MultipartBody(parts=parts, boundary=boundary)
    return Request(id=request_id, offset_ns=offset_ns, path="/v1/images/edits", body=body)


def answered(request_id: str, seq: int, intended_ns: int, done_ns: int, **fields: Any) -> Outcome:
    """A send answered 200, done at `done_ns`: sent 0.2 ms and fully uploaded 1 ms after
    `intended_ns`, its first byte 1 ms before the end; `fields` replace or add to these."""
    times = {
        "sent_ns": intended_ns + 200_000,
        "upload_done_ns": intended_ns + MS,
        "first_byte_ns": done_ns - MS,
    }
    return Outcome(
        request_id=request_id,
        seq=seq,
        intended_ns=intended_ns,
        done_ns=done_ns,
        status=200,
        **{**times, **fields},
    )


def returned(*digests: str) -> dict[str, Any]:
    """The `envelope` and `images` of an answer that returned these image blobs."""
    return {
        "envelope": {"created": 0, "data": [{"b64_json": {"$blob": d}} for d in digests]},
        "images": digests,
    }
