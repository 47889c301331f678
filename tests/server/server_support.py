"""Helpers for the reference server's tests: images, server processes, clients.

A module of its own (not conftest.py) so tests can import it whatever else pytest collects.
"""

from __future__ import annotations

import io
import re
import subprocess
from typing import IO

import httpx
from PIL import Image
from servers import SERVE_LISTENING, SERVE_READY, imgtrace_argv, wait_for_line
from testproc import stop_process

from traces import FormPartData, encode_multipart, new_boundary


def make_png(
    size: tuple[int, int] = (64, 48), colour: tuple[int, ...] = (200, 120, 40), mode: str = "RGB"
) -> bytes:
    """A small PNG; gradients so that edits visibly change something."""
    image = Image.new(mode, size, colour)
    for x in range(0, size[0], 4):
        image.putpixel((x, size[1] // 2), tuple(255 - c for c in colour))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


class Server:
    """`imgtrace serve` on port 0 in its own process; started now, its port known once ready.

    Several can start at once and be waited for in turn (`wait_ready`).
    """

    def __init__(self, *args: str) -> None:
        self.port = 0
        self.url = ""
        self.process = subprocess.Popen(
            imgtrace_argv("serve", "--host", "127.0.0.1", "--port", "0", *NO_WARMUP, *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def wait_ready(self, timeout: float = 30.0) -> str:
        """Block until the readiness line; returns it."""
        return self._wait(self.process.stdout, SERVE_READY, timeout)

    def wait_listening(self, timeout: float = 30.0) -> str:
        """Block until the server has bound its port, warm or not; returns the line it said."""
        return self._wait(self.process.stderr, SERVE_LISTENING, timeout)

    def _wait(self, stream: IO[bytes] | None, ready: re.Pattern[str], timeout: float) -> str:
        assert stream is not None
        try:
            match, lines = wait_for_line(self.process, stream, ready, timeout)
        except BaseException:
            self.stop()
            raise
        self.url, self.port = match.group(1), int(match.group(2))
        return lines[-1]

    def stop(self, timeout: float = 10.0) -> int:
        return stop_process(self.process, timeout)


NO_WARMUP = ("--load-time", "0", "--cold-start", "0")
MAX_BODY = 1_000_000


def edit(
    http: httpx.Client,
    images: list[bytes] | None = None,
    field: str = "image[]",
    **fields: str,
) -> httpx.Response:
    """POST /v1/images/edits with `images` as repeated `field` parts and text fields."""
    parts = [
        FormPartData(field, data, f"in{i}.png", "image/png") for i, data in enumerate(images or [])
    ]
    parts += [FormPartData(k, v.encode()) for k, v in {"prompt": "make it teal", **fields}.items()]
    return post_form(http, parts)


def post_form(http: httpx.Client, parts: list[FormPartData]) -> httpx.Response:
    """POST a multipart body built part by part (repeated names kept in order)."""
    boundary = new_boundary()
    return http.post(
        "/v1/images/edits",
        content=encode_multipart(parts, boundary),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )


def assert_error(response: httpx.Response, status: int, param: str | None = None) -> str:
    """The response is an OpenAI-shaped error with `status`; returns its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == param
    message: str = body["error"]["message"]
    assert message and "Traceback" not in message
    return message
