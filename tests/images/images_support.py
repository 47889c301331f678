"""Helpers for the image tests: synthetic pictures and run files written with TraceWriter."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from traces import (
    ErrorInfo,
    FilePart,
    Header,
    MultipartBody,
    Outcome,
    Request,
    TextField,
    TraceWriter,
)


def scene(size: int = 512, seed: int = 0) -> np.ndarray:
    """A photo-like test picture: gradients, shapes, soft texture; deterministic per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.dstack([90 + 100 * x, 80 + 120 * y, 160 - 80 * x * y])
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.integers(0, size - size // 5, 2)
        w, h = rng.integers(size // 12, size // 4, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        else:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
    pixels = np.asarray(image).astype(np.int16)
    texture = rng.normal(0, 6, (size, size, 1))
    return np.clip(pixels + texture, 0, 255).astype(np.uint8)


def png(pixels: np.ndarray, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", **options)
    return buffer.getvalue()


def jpeg(pixels: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def write_trace(path: Path, requests: Sequence[tuple[str, str, bytes]]) -> Path:
    """A trace of edit requests (id, prompt, input image)."""
    with TraceWriter(path, Header(kind="trace", source="synthetic")) as writer:
        for index, (request_id, prompt, image) in enumerate(requests):
            digest = writer.add_blob(image, "image/png")
            body = MultipartBody(parts=(
                TextField(name="prompt", value=prompt),
                TextField(name="size", value="512x512"),
                TextField(name="n", value="1"),
                FilePart(name="image", blob=digest, size=len(image), filename="in.png",
                         content_type="image/png"),
            ), boundary="b")  # fmt: skip
            writer.write(Request(id=request_id, offset_ns=index * 1000, path="/v1/images/edits",
                                 body=body))  # fmt: skip
    return path


Output = Sequence[bytes] | ErrorInfo | int


def write_run(
    path: Path,
    outputs: Mapping[str, Output],
    *,
    trace: Path | None = None,
    missing_blobs: bool = False,
) -> Path:
    """A run file: per request id its output images, an ErrorInfo, or an HTTP error status.

    With `missing_blobs`, outcomes refer to images whose blobs were never written.
    """
    import hashlib

    header = Header(kind="run", source="replay", trace_path=str(trace) if trace else None)
    if trace is not None:
        from traces import TraceReader

        with TraceReader(trace) as reader:
            header = Header(kind="run", source="replay", trace_path=str(trace),
                            trace_digest=reader.trace_digest())  # fmt: skip
    with TraceWriter(path, header) as writer:
        for seq, (request_id, result) in enumerate(outputs.items()):
            if isinstance(result, ErrorInfo):
                writer.write(Outcome(request_id=request_id, seq=seq, intended_ns=seq, error=result))
                continue
            if isinstance(result, int):
                writer.write(
                    Outcome(request_id=request_id, seq=seq, intended_ns=seq, status=result)
                )
                continue
            if missing_blobs:
                digests = tuple(hashlib.sha256(data).hexdigest() for data in result)
            else:
                digests = tuple(writer.add_blob(data, None) for data in result)
            writer.write(Outcome(request_id=request_id, seq=seq, intended_ns=seq, sent_ns=seq,
                                 done_ns=seq + 10, status=200, images=digests))  # fmt: skip
    return path
