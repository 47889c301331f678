"""Helpers for replayer tests: small traces built with TraceWriter, an echo server process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import servers
from samples import png as png
from servers import Started

from traces import FilePart, Header, MultipartBody, Request, TextField, TraceWriter


@dataclass
class Server(Started):
    """The echo server (echo_server.py) in its own process."""

    def stats(self) -> dict[str, int]:
        data: dict[str, int] = httpx.get(self.url + "/stats").json()
        return data

    @contextmanager
    def receives_nothing(self) -> Iterator[None]:
        """The block must send this server no request."""
        before = self.stats()["count"]
        yield
        assert self.stats()["count"] == before


MS = 1_000_000
Run = Callable[..., subprocess.CompletedProcess[str]]


def one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit 2, no traceback, one `imgtrace: error:` line in stderr, holding each fragment."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("imgtrace: error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


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


def interrupted_replay(folder: Path, *args: str, started: Path) -> str:
    """Replay a long trace with ARGS and press Ctrl-C half a second after `started` exists.

    200 requests over 20 s, each answered after 1 s but the first (`delay=1` for the echo
    server): Ctrl-C arrives long before the end, with requests in flight that the short
    --drain cuts off. The replay must exit 130, saying it is stopping, with no traceback;
    returns its stderr.
    """
    delays = lambda i: "" if i == 0 else "delay=1"  # noqa: E731
    trace = write_trace(folder / "long.imgtrace", [i * 100 for i in range(200)], query=delays)
    command = [sys.executable, "-m", "imgtrace", "replay", str(trace), *args]
    command += ["--drain", "0.2", "--no-progress"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not started.exists():
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "stopping" in stderr and "Traceback" not in stderr
    return stderr


def start_echo(delay: float = 0.0) -> Server:
    return Server(**vars(servers.start_echo(delay)))
