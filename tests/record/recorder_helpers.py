"""Fixtures for the recorder tests: servers in threads, a fault-injecting upstream, images."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from servers import ThreadServer, respond

from recorder import RecorderProcess, RecordingProxy, RecordOptions
from traces import TraceReader, TraceRecoveryWarning, parse_multipart

SECRET_TOKEN = "sk-test-SECRET-7d1f0c9e"
SECRET_COOKIE = "session=COOKIE-SECRET-55aa"
SECRET_USER = "alice.secret@example.com"
SECRET_SET_COOKIE = "upstream-SETCOOKIE-SECRET-99"
SERVER_PATH = "/srv/outputs/SECRET-PATH-1234.png"


def png(seed: int, size: int = 32) -> bytes:
    """A small random PNG; different seeds give different bytes."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@dataclass
class Upstream:
    """Controls of the fault-injecting upstream."""

    url: str = ""
    gate: threading.Event = field(default_factory=threading.Event)
    """`/gate` and SSE streams wait on this between their first and second event."""
    waited: list[str] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)


def make_upstream(state: Upstream) -> Any:
    """An ASGI image-edit upstream with knobs: echoes inputs as outputs, SSE, gates, slowness."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if path == "/slow":
            await asyncio.sleep(float(scope["query_string"].decode() or "2"))
            await respond(send, 200, b"{}", [(b"content-type", b"application/json")])
            return
        if path == "/gate":
            state.waited.append("gate")
            await asyncio.get_running_loop().run_in_executor(None, state.gate.wait, 10)
            await respond(send, 200, b'{"gate": "open"}', [(b"content-type", b"application/json")])
            return
        hasher = hashlib.sha256()
        size = 0
        chunks: list[bytes] = []
        while True:  # hash as it streams, so a 100 MB upload costs no memory here
            message = await receive()
            if message["type"] == "http.disconnect":
                state.seen.append({"path": path, "aborted": True, "size": size})
                return
            chunk = message.get("body", b"")
            if size == 0 and chunk:
                state.seen.append({"path": path, "started": True})
            size += len(chunk)
            hasher.update(chunk)
            if path != "/sink":
                chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        info = {
            "path": path,
            "sha256": hasher.hexdigest(),
            "size": size,
            "headers": headers,
            "client_port": scope["client"][1],
        }
        state.seen.append(info)
        if path in ("/echo", "/sink") or not path.startswith("/v1/images/"):
            await respond(
                send, 200, json.dumps(info).encode(), [(b"content-type", b"application/json")]
            )
            return
        try:
            parts = parse_multipart(body, headers.get("content-type"))
        except Exception as exc:  # the proxy must forward even what does not parse
            await respond(
                send,
                400,
                json.dumps({"error": {"message": str(exc)}}).encode(),
                [(b"content-type", b"application/json")],
            )
            return
        images = [p.data for p in parts if p.filename is not None]
        fields = {p.name: p.data.decode() for p in parts if p.filename is None}
        response_headers = [
            (b"content-type", b"application/json"),
            (b"set-cookie", SECRET_SET_COOKIE.encode()),
        ]
        if fields.get("stream") == "true":
            await _stream(send, images, state)
            return
        data = [
            {
                "b64_json": base64.b64encode(image).decode(),
                "revised_prompt": fields.get("prompt"),
                "file_path": SERVER_PATH,
            }
            for image in images
        ]
        payload = {"created": 1, "data": data, "usage": {"image_count": len(data)}}
        await respond(send, 200, json.dumps(payload).encode(), response_headers)

    return app


async def _stream(send: Any, images: list[bytes], state: Upstream) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
    )
    partial = {
        "type": "image_edit.partial_image",
        "partial_image_index": 0,
        "b64_json": base64.b64encode(images[-1]).decode(),
    }
    await send(
        {
            "type": "http.response.body",
            "more_body": True,
            "body": f"event: image_edit.partial_image\ndata: {json.dumps(partial)}\n\n".encode(),
        }
    )
    # Hold the stream open until the test has seen the first event through the proxy.
    opened = await asyncio.get_running_loop().run_in_executor(None, state.gate.wait, 10)
    state.waited.append(f"stream-gate-{opened}")
    done = {"type": "image_edit.completed", "b64_json": base64.b64encode(images[0]).decode()}
    await send(
        {
            "type": "http.response.body",
            "more_body": False,
            "body": f"event: image_edit.completed\ndata: {json.dumps(done)}\n\n".encode(),
        }
    )


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    state = Upstream()
    server = ThreadServer(make_upstream(state)).start()
    state.url = server.url
    yield state
    state.gate.set()
    server.stop()


@dataclass
class Proxy:
    url: str
    recorder: RecorderProcess
    path: Path
    server: ThreadServer
    readers: list[TraceReader] = field(default_factory=list)

    def close(self) -> TraceReader:
        """Stop serving, close the recording, and open it (closed again at teardown)."""
        self.server.stop()
        self.recorder.close()
        self.readers.append(TraceReader(self.path))
        return self.readers[-1]


StartProxy = Callable[..., Proxy]


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[StartProxy]:
    """`start_proxy(upstream_url, **record_options)`: a recording proxy in a thread.

    As under `imgtrace record`, the recording runs in a process of its own (`RecorderProcess`).
    """
    started: list[Proxy] = []

    def start(
        upstream_url: str, *, timeout: float = 10.0, name: str = "rec.imgtrace", **options: Any
    ) -> Proxy:
        path = tmp_path / name
        options.setdefault("user_key", b"test-user-key")
        recorder = RecorderProcess(path, options=RecordOptions(**options))
        proxy = RecordingProxy(upstream_url, recorder, timeout=timeout)
        server = ThreadServer(proxy).start()
        handle = Proxy(server.url, recorder, path, server)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.server.stop()
        handle.recorder.close()
        for reader in handle.readers:
            reader.close()


def requests_of(reader: TraceReader) -> list[Any]:
    return sorted(reader.requests(), key=lambda r: r.offset_ns)


def decompressed(path: Path) -> bytes:
    """Every byte of the file as a reader of the raw stream would see it (all frames)."""
    import zstandard

    raw = path.read_bytes()
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True) as r:
        return raw + r.read()


def raw_multipart(boundary: str, parts: list[tuple[str, bytes, str | None]]) -> bytes:
    out = b""
    for name, data, filename in parts:
        out += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{name}"'
        if filename:
            disposition += f'; filename="{filename}"'
        out += f"Content-Disposition: {disposition}\r\n".encode()
        if filename:
            out += b"Content-Type: image/png\r\n"
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def multipart(
    boundary: str,
    parts: list[tuple[str, bytes, str | None]],
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """httpx's keyword arguments to send `raw_multipart(boundary, parts)` with its content type
    (and `headers`)."""
    content_type = {"content-type": f"multipart/form-data; boundary={boundary}"}
    return {
        "content": raw_multipart(boundary, parts),
        "headers": {**content_type, **(headers or {})},
    }


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def recording_pid(proxy_pid: int, timeout: float = 10.0) -> int:
    """The pid of the recording process `imgtrace record` (pid `proxy_pid`) started."""
    children = Path(f"/proc/{proxy_pid}/task/{proxy_pid}/children")

    def spawned() -> list[int]:
        # multiprocessing's resource tracker is a child too; the recording process is the
        # one multiprocessing spawned.
        pids = [int(pid) for pid in children.read_text().split()]
        return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]

    wait_for(lambda: bool(spawned()), timeout)
    (pid,) = spawned()
    return pid


def has_exited(pid: int) -> bool:
    """True once process `pid` has ended (an orphan may linger as a zombie until reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@contextmanager
def quiet_recovery() -> Iterator[None]:
    """Read a file that is still being written, ignoring the expected recovery warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TraceRecoveryWarning)
        yield


def requests_on_disk(path: Path) -> int:
    """How many requests of a recording in progress are on disk already."""
    if not path.exists():
        return 0  # the recording process creates the file with its first record
    with quiet_recovery(), TraceReader(path) as reader:
        return sum(1 for _ in reader.requests())


def rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")
