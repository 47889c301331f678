"""Input files written to the documented AIPerf and HAR schemas, small and generated per test.

The shapes follow docs/importing.md: AIPerf `profile_export_raw.jsonl` records (`RawRecordInfo`:
metadata, start_perf_ns, request_headers, status, responses[].text/content_type, error, payload,
as AIPerf 0.13 writes them, checked against a real run), AIPerf `single_turn` lines (text,
image, timestamp, delay, extra) and HAR 1.2 (`log.entries[]` with request.postData and
response.content). `data/aiperf-0.13-profile_export.jsonl` is two lines of a real AIPerf 0.13
default export (an HTTP 500 and a 200 of an image_edit run against `imgtrace serve`).
"""

from __future__ import annotations

import base64
import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imgtrace._cli import main
from traces import Request, TraceReader

START_NS = 1_750_000_000_000_000_000

Cli = Callable[..., tuple[int, str, str]]
"""The `cli` fixture: `cli("import", "har", ...)` -> (exit code, stdout, stderr)."""
Open = Callable[[Path], tuple[TraceReader, list[Request]]]
"""The `open_trace` fixture: `open_trace(path)` -> (reader, requests)."""


def png(seed: int, size: tuple[int, int] = (24, 16)) -> bytes:
    """A small PNG whose bytes depend on `seed`."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def images_response(*outputs: bytes) -> str:
    return json.dumps({"created": 1, "data": [{"b64_json": b64(o)} for o in outputs]})


def raw_record(
    index: int,
    start_ns: int,
    *,
    image: bytes | None = None,
    prompt: str = "Make it snow",
    status: int | None = 200,
    output: bytes | None = None,
    phase: str = "profiling",
    payload: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One `profile_export_raw.jsonl` record of an image_edit request, as AIPerf writes it."""
    if payload is None:
        payload = {
            "prompt": prompt,
            "model": "black-forest-labs/FLUX.2-klein-4B",
            "response_format": "b64_json",
            "n": 1,
            "image": {
                "b64_data": b64(image if image is not None else png(index)),
                "filename": "image.png",
                "content_type": "image/png",
            },
            "size": "512x512",
            "num_inference_steps": 4,
            "guidance_scale": 1.0,
            "seed": 1000 + index,
        }
    responses = []
    if output is not None:
        responses.append(
            {
                "perf_ns": 5_000_000_000 + index + 250_000_000,
                "text": images_response(output),
                "content_type": "application/json",
            }
        )
    failed = status is None or status >= 400 or error is not None
    metadata: dict[str, Any] = {
        "session_num": index,
        "x_request_id": f"req-{index}",
        "x_correlation_id": f"corr-{index}",
        "conversation_id": f"conv-{index}",
        "turn_index": 0,
        "credit_issued_ns": start_ns - 2_000_000,
        "request_start_ns": start_ns,
        "request_ack_ns": start_ns + 200_000_000,
        # AIPerf 0.13 stamps a failed request's end at its start (it records no end time).
        "request_end_ns": start_ns if failed else start_ns + 250_000_000,
        "worker_id": "worker_0",
        "record_processor_id": "record_processor_0",
        "benchmark_phase": phase,
        "phase_index": 0,
        "phase_name": phase,
        "phase_kind": phase,
        "was_cancelled": False,
        "context_overflow_skip": False,
        "agent_depth": 0,
        "root_correlation_id": f"corr-{index}",
    }
    if failed:
        del metadata["request_ack_ns"]
    # Field order, names and placeholders as AIPerf 0.13 writes them (`exclude_none`: no
    # response_headers, no null fields; `<redacted>` for every header it deems sensitive).
    record: dict[str, Any] = {
        "metadata": metadata,
        "start_perf_ns": 5_000_000_000 + index,
        "request_headers": {
            "User-Agent": "aiperf/0.13.0",
            "X-Request-ID": f"req-{index}",
            "X-Correlation-ID": f"corr-{index}",
            "x-litellm-api-key": "<redacted>",
            "Authorization": "<redacted>",
            "Accept": "application/json",
            "X-Session-Affinity": "<redacted>",
        },
    }
    if status is not None:
        record["status"] = status
    record["responses"] = responses
    if error is not None:
        record["error"] = error
    record["payload"] = payload
    return record


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def har_entry(
    started: str,
    *,
    url: str = "http://127.0.0.1:30000/v1/images/edits",
    method: str = "POST",
    image: bytes | None = None,
    prompt: str = "Add a rainbow",
    as_text: bool = True,
    output: bytes | None = None,
    status: int = 200,
    body: bool = True,
) -> dict[str, Any]:
    """One HAR 1.2 entry; the multipart body as base64 `postData.text` or as `params`."""
    boundary = "harboundary123"
    image = image if image is not None else png(7)
    post: dict[str, Any] | None = None
    if body and as_text:
        multipart = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n{prompt}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
                f'filename="in.png"\r\nContent-Type: image/png\r\n\r\n'
            ).encode()
            + image
            + f"\r\n--{boundary}\r\n".encode()
            + b'Content-Disposition: form-data; name="n"\r\n\r\n1\r\n'
            + f"--{boundary}--\r\n".encode()
        )
        post = {
            "mimeType": f"multipart/form-data; boundary={boundary}",
            "text": b64(multipart),
            "encoding": "base64",
        }
    elif body:
        post = {
            "mimeType": f"multipart/form-data; boundary={boundary}",
            "params": [
                {"name": "prompt", "value": prompt},
                {
                    "name": "image",
                    "fileName": "in.png",
                    "contentType": "image/png",
                    "value": b64(image),
                    "encoding": "base64",
                },
                {"name": "n", "value": "1"},
            ],
        }
    elif method == "POST":
        post = {"mimeType": f"multipart/form-data; boundary={boundary}", "text": ""}
    request: dict[str, Any] = {
        "method": method,
        "url": url,
        "httpVersion": "HTTP/1.1",
        "headers": [
            {"name": "Authorization", "value": "Bearer sk-secret"},
            {"name": "Content-Type", "value": f"multipart/form-data; boundary={boundary}"},
        ],
        "queryString": [],
        "cookies": [],
        "headersSize": -1,
        "bodySize": -1,
    }
    if post is not None:
        request["postData"] = post
    content: dict[str, Any] = {"size": 0, "mimeType": "application/json"}
    if output is not None:
        text = images_response(output)
        content = {"size": len(text), "mimeType": "application/json", "text": text}
    return {
        "startedDateTime": started,
        "time": 420.5,
        "request": request,
        "response": {
            "status": status,
            "statusText": "OK",
            "httpVersion": "HTTP/1.1",
            "headers": [{"name": "content-type", "value": "application/json"}],
            "cookies": [],
            "content": content,
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
        },
        "cache": {},
        "timings": {
            "blocked": 1.0,
            "dns": -1,
            "connect": 2.0,
            "send": 5.0,
            "wait": 400.0,
            "receive": 12.5,
        },
    }


def write_har(path: Path, entries: list[dict[str, Any]]) -> Path:
    har = {
        "log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": entries}
    }
    path.write_text(json.dumps(har, indent=1), encoding="utf-8")
    return path


def run_cli(*args: str) -> int:
    """`imgtrace ARGS` in this process (fast); the caller reads output with capsys."""
    saved = warnings.showwarning
    try:
        return main(list(args))
    finally:
        warnings.showwarning = saved
