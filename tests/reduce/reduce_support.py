"""Traces with a planted two-request interaction, for the reduce tests and benchmark."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from traces import FilePart, Header, MultipartBody, Request, TextField, TraceWriter

MS = 1_000_000
BOUNDARY = "imgtrace-reduce-boundary"


def png(size: int, alpha: bool = False) -> bytes:
    mode = "RGBA" if alpha else "RGB"
    colour = (120, 40, 200, 0) if alpha else (120, 40, 200)
    out = io.BytesIO()
    Image.new(mode, (size, size), colour).save(out, format="PNG")
    return out.getvalue()


def planted_trace(
    path: Path,
    count: int,
    *,
    big: int,
    masked: int,
    gap_ms: float = 500.0,
    pair_gap_ms: float = 300.0,
    seed_at: dict[int, int] | None = None,
) -> Path:
    """`count` 64x64-input edits at 512x512 every `gap_ms`, ids r0000...; request `big` asks
    for 1024x1024 and request `masked` carries a mask, `pair_gap_ms` after `big` when it is
    the next one: the trigger of `imgtrace serve --plant mask-after-size`."""
    seeds = seed_at or {}
    with TraceWriter(path, Header(source="synthetic")) as writer:
        image = writer.add_blob(png(64), "image/png")
        mask = writer.add_blob(png(64, alpha=True), "image/png")
        offset = 0.0
        for i in range(count):
            if i > 0:
                offset += pair_gap_ms if i == masked and masked == big + 1 else gap_ms
            fields = {
                "prompt": f"edit {i}",
                "size": "1024x1024" if i == big else "512x512",
                "seed": str(seeds.get(i, 1000 + i)),
                "num_inference_steps": "4",
            }
            parts: list[TextField | FilePart] = [
                TextField(name=name, value=value) for name, value in fields.items()
            ]
            parts.append(FilePart(name="image", blob=image, size=0, filename="in.png"))
            if i == masked:
                parts.append(FilePart(name="mask", blob=mask, size=0, filename="mask.png"))
            writer.write(
                Request(
                    id=f"r{i:04d}",
                    offset_ns=int(offset * MS),
                    path="/v1/images/edits",
                    body=MultipartBody(parts=tuple(parts), boundary=BOUNDARY),
                )
            )
    return path


FAST = ("--speed", "50", "--cold-start", "0", "--load-time", "0", "--jitter", "0")


def warm_up(url: str) -> None:
    """One 512x512 and one 1024x1024 edit, so the server's first-request costs are paid."""
    import httpx

    with httpx.Client(timeout=30) as client:
        for size in ("512x512", "1024x1024"):
            client.post(
                f"{url}/v1/images/edits",
                data={"prompt": "warm up", "size": size},
                files={"image": ("in.png", png(64), "image/png")},
            ).raise_for_status()
