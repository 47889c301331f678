"""A tiny HTTP server for replayer tests: echoes what it received, with controllable faults.

Run as `python echo_server.py PORT [DELAY_S]` (PORT 0 picks a free one); once it listens it
prints `echo server: ready on http://127.0.0.1:PORT` with the port it got. Every POST answers
JSON with the text fields, file parts (name and size), a sha256 of the Authorization header
(never the header itself), the number of requests in flight when it arrived, and one small
base64 PNG in `data[]`. The query string steers faults: `status=N` answers N, `delay=S` waits
S seconds, `hang=1` never answers, `close=1` drops the connection mid-answer, `exit=1` answers
and then ends the server, `encoding=gzip|deflate|zstd|broken` compresses the answer (`broken`
says gzip and is not).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import json
import os
import socket
import sys
import time
import zlib
from typing import Any
from urllib.parse import parse_qs

import uvicorn
import zstandard
from PIL import Image

from traces import parse_multipart

_buffer = io.BytesIO()
Image.new("RGB", (4, 4), (200, 10, 10)).save(_buffer, format="PNG")
PNG_B64 = base64.b64encode(_buffer.getvalue()).decode()
DELAY = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
state = {"inflight": 0, "max_inflight": 0, "count": 0}


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _encoded(data: bytes, encoding: str) -> tuple[bytes, str]:
    if encoding == "gzip":
        return gzip.compress(data), "gzip"
    if encoding == "deflate":
        return zlib.compress(data), "deflate"
    if encoding == "zstd":
        return zstandard.ZstdCompressor().compress(data), "zstd"
    return b"\x1f\x8bnot gzip", "gzip"


async def _answer(
    send: Any, status: int, payload: dict[str, Any], encoding: str | None = None
) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json")]
    if encoding:
        data, coding = _encoded(data, encoding)
        headers.append((b"content-encoding", coding.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/health":
        await _answer(send, 200, {"ok": True})
        return
    if scope["path"] == "/stats":
        await _answer(send, 200, state)
        return
    arrived = time.time_ns()
    state["inflight"] += 1
    state["count"] += 1
    state["max_inflight"] = max(state["max_inflight"], state["inflight"])
    inflight = state["inflight"]
    try:
        body = await _body(receive)
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if query.get("close"):
            # Promise a body, send part of it, then fail: the connection drops mid-response.
            headers_out = [(b"content-length", b"1000")]
            await send({"type": "http.response.start", "status": 200, "headers": headers_out})
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            raise RuntimeError("dropping the connection on purpose")
        if query.get("exit"):
            # Answer, then stop listening for good: later requests cannot connect.
            asyncio.get_running_loop().call_later(0.05, os._exit, 0)
        if query.get("hang"):
            await asyncio.sleep(3600)
        await asyncio.sleep(float(query.get("delay", DELAY)))
        fields: dict[str, str] = {}
        files: list[dict[str, Any]] = []
        if headers.get("content-type", "").startswith("multipart/form-data"):
            for part in parse_multipart(body, headers["content-type"]):
                if part.filename is None:
                    fields[part.name] = part.data.decode()
                else:
                    files.append({"name": part.name, "size": len(part.data)})
        auth = headers.get("authorization")
        payload = {
            "created": int(time.time()),
            "path": scope["path"],
            "fields": fields,
            "files": files,
            "auth_sha256": hashlib.sha256(auth.encode()).hexdigest() if auth else None,
            "header_names": sorted(headers),
            "inflight": inflight,
            "arrived_ns": arrived,
            "data": [{"b64_json": PNG_B64}],
        }
        await _answer(send, int(query.get("status", 200)), payload, query.get("encoding"))
    finally:
        state["inflight"] -= 1


def main() -> None:
    # Bound here, before serving, so the port it prints is the one it got (PORT may be 0).
    # IPPROTO_TCP: asyncio turns Nagle off only on sockets that say TCP (as `imgtrace serve`).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", int(sys.argv[1])))
    sock.listen(2048)  # before the line: a client that reads it may connect at once
    port = sock.getsockname()[1]
    print(f"echo server: ready on http://127.0.0.1:{port}", flush=True)
    config = uvicorn.Config(app, log_level="critical", timeout_graceful_shutdown=1)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
