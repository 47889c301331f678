"""Helpers for replayer tests: small traces built with TraceWriter, an echo server process."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import servers
from PIL import Image
from servers import Started

from traces import FilePart, Header, MultipartBody, Request, TextField, TraceWriter


@dataclass
class Server(Started):
    """The echo server (echo_server.py) in its own process."""

    def stats(self) -> dict[str, int]:
        data: dict[str, int] = httpx.get(self.url + "/stats").json()
        return data


MS = 1_000_000


def png(seed: int = 0, size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (seed % 256, 40, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_trace(
    path: Path,
    offsets_ms: Sequence[float],
    *,
    fields: Callable[[int], dict[str, str]] | None = None,
    query: Callable[[int], str] | None = None,
    headers: Sequence[tuple[str, str]] = (),
    image_size: int = 8,
) -> Path:
    """A trace of image edits at the given offsets; request i has id r{i:04d}."""
    with TraceWriter(path, Header(source="synthetic")) as writer:
        digest = writer.add_blob(png(1, image_size), "image/png")
        for i, offset in enumerate(offsets_ms):
            values = {"prompt": f"edit {i}", "seed": str(100 + i), "num_inference_steps": "4"}
            values.update(fields(i) if fields else {})
            parts: list[TextField | FilePart] = [
                TextField(name=name, value=value) for name, value in values.items()
            ]
            parts.append(
                FilePart(
                    name="image", blob=digest, size=0, filename="ref.png", content_type="image/png"
                )
            )
            writer.write(
                Request(
                    id=f"r{i:04d}",
                    offset_ns=int(offset * MS),
                    path="/v1/images/edits",
                    query=query(i) if query else "",
                    headers=tuple(headers),
                    body=MultipartBody(parts=tuple(parts), boundary="imgtrace-test-boundary"),
                )
            )
    return path


def start_echo(delay: float = 0.0) -> Server:
    return Server(**vars(servers.start_echo(delay)))
