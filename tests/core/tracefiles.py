"""Small real trace files for the core tests (imported by the tests of this folder)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from traces import (
    FormPartData,
    Header,
    Outcome,
    Request,
    Response,
    TraceWriter,
    body_from_parts,
    strip_images,
)


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def write_trace(
    path: Path,
    count: int = 20,
    *,
    distinct_images: int = 3,
    with_responses: bool = False,
    close: bool = True,
    flush_records: int = 4,
) -> list[Request]:
    """A trace of `count` edits at 100 ms spacing reusing `distinct_images` reference PNGs."""
    images = [png(32 + i, 24, (10 * i, 100, 200)) for i in range(distinct_images)]
    writer = TraceWriter(path, Header(source="test"), flush_records=flush_records)
    written = []
    for index in range(count):
        parts = [
            FormPartData("prompt", f"make it blue #{index}".encode()),
            FormPartData("size", b"512x512"),
            FormPartData("image[]", images[index % distinct_images], "ref.png", "image/png"),
        ]
        body = body_from_parts(parts, "boundary123", writer.add_blob)
        response = None
        if with_responses:
            import base64

            payload = {
                "created": 1,
                "data": [{"b64_json": base64.b64encode(png(8, 8, (index, 0, 0))).decode()}],
            }
            envelope, digests = strip_images(payload, writer.add_blob)
            response = Response(
                status=200, envelope=envelope, images=digests, done_ns=index * 100_000_000 + 5
            )
        request = Request(
            id=f"req-{index:04d}",
            offset_ns=index * 100_000_000,
            path="/v1/images/edits",
            headers=(("Authorization", "Bearer sk-secret-value"), ("User-Agent", "test")),
            body=body,
            response=response,
        )
        writer.write(request)
        written.append(request)
    if close:
        writer.close()
    else:
        writer.flush()
        writer.abandon()
    return written


def write_run(path: Path, count: int = 5) -> list[Outcome]:
    writer = TraceWriter(path, Header(kind="run", source="replay", target="http://x"))
    outcomes = []
    for index in range(count):
        digest = writer.add_blob(png(8, 8, (0, index, 0)))
        outcome = Outcome(
            request_id=f"req-{index:04d}",
            seq=index,
            intended_ns=index * 1000,
            sent_ns=index * 1000 + 10,
            done_ns=index * 1000 + 500,
            status=200,
            images=(digest,),
        )
        writer.write(outcome)
        outcomes.append(outcome)
    writer.close()
    return outcomes
