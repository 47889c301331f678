"""Helpers for the scale-out tests: small traces, synthetic shard runs, the reference server."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from samples import answered, returned
from samples import png as png
from servers import FAST_SERVE, start_serve

from traces import (
    FilePart,
    Header,
    MultipartBody,
    Request,
    TextField,
    TraceWriter,
    shard_metadata,
)

MS = 1_000_000


def one_line_error(capsys: pytest.CaptureFixture[str], code: int, *fragments: str) -> str:
    """Exit 2 and stderr is one line `imgtrace: error: ...` holding each fragment; returns it."""
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("imgtrace: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def write_trace(
    path: Path,
    offsets_ms: Sequence[float],
    *,
    prefix: str = "r",
    start_wall_ns: int | None = None,
    image_seed: int = 1,
) -> Path:
    """Image edits at the given offsets; request i has id {prefix}{i:04d}; one shared image."""
    header = Header(source="synthetic", start_wall_ns=start_wall_ns)
    with TraceWriter(path, header) as writer:
        digest = writer.add_blob(png(image_seed), "image/png")
        for i, offset in enumerate(offsets_ms):
            parts: tuple[TextField | FilePart, ...] = (
                TextField(name="prompt", value=f"edit {i}"),
                TextField(name="seed", value=str(100 + i)),
                TextField(name="num_inference_steps", value="2"),
                TextField(name="size", value="64x64"),
                FilePart(name="image", blob=digest, size=0, filename="in.png"),
            )
            offset_ns = round(offset * MS)
            writer.write(
                Request(
                    id=f"{prefix}{i:04d}",
                    offset_ns=offset_ns,
                    path="/v1/images/edits",
                    body=MultipartBody(parts=parts),
                    wall_ns=None if start_wall_ns is None else start_wall_ns + offset_ns,
                )
            )
    return path


def write_shard_run(
    path: Path,
    *,
    index: int,
    count: int,
    total: int,
    group: str = "g1",
    digest: str = "d" * 64,
    start_wall_ns: int = 1_800_000_000 * 1_000_000_000,
    gap_ns: int = 10 * MS,
    with_shard: bool = True,
    planned: int | None = None,
) -> Path:
    """A run as `replay --shard index/count` writes it: sends k ≡ index (mod count) of `total`,
    each returning one image; images repeat across shards (so the merge must store them once)."""
    metadata: dict[str, object] = {
        "planned": len(range(index, total, count)) if planned is None else planned
    }
    if with_shard:
        metadata.update(shard_metadata(index, count, group))
    header = Header(
        kind="run",
        source="replay",
        trace_digest=digest,
        target="http://127.0.0.1:1",
        start_wall_ns=start_wall_ns,
        metadata=metadata,
    )
    with TraceWriter(path, header) as writer:
        for seq in range(index, total, count):
            image = writer.add_blob(png(seq % 3), "image/png")
            intended = seq * gap_ns
            times = {
                "sent_ns": intended + 100_000,
                "upload_done_ns": intended + 200_000,
                "first_byte_ns": intended + 5 * MS,
            }
            done = intended + 6 * MS + seq
            sizes = {"bytes_up": 1000, "bytes_down": 2000}
            writer.write(
                answered(f"r{seq:06d}", seq, intended, done, **times, **sizes, **returned(image))
            )
    return path


@contextmanager
def reference_server(*args: str, timeout: float = 30.0) -> Iterator[str]:
    """`imgtrace serve` on 127.0.0.1, port 0, fast; yields its URL from the readiness line."""
    server = start_serve(*FAST_SERVE, *args, timeout=timeout)
    try:
        yield server.url
    finally:
        server.stop()
