"""What a client sent through `imgtrace record` is what `imgtrace replay` sends: byte for byte.

Real sockets end to end: a client posts hand-made multipart bodies through the recording proxy
to a server that keeps the raw bytes; the trace is replayed against the same kind of server,
and the replayed Content-Type and body are compared with what the client sent.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from raw_capture import RawCaptureServer
from servers import start_record
from testproc import run_imgtrace

from traces import TraceReader

EURO = "filename*=UTF-8''%E2%82%AC.png"

# (Content-Type boundary parameter, boundary, one part's disposition tail)
CASES = [
    ('"abc def"', "abc def", 'filename="a.png"'),
    ("plain-boundary", "plain-boundary", EURO),
    ('"q:uo=ted"', "q:uo=ted", f'filename="x.png"; {EURO}'),
]


def _body(boundary: str, disposition_tail: str) -> bytes:
    dash = b"--" + boundary.encode()
    return (
        dash
        + b'\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nmake it blue\r\n'
        + dash
        + b'\r\nContent-Disposition: form-data; name="image"; '
        + disposition_tail.encode()
        + b"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n-fake-\r\n"
        + dash
        + b"--\r\n"
    )


@pytest.fixture
def servers() -> Iterator[tuple[RawCaptureServer, RawCaptureServer]]:
    upstream, target = RawCaptureServer(), RawCaptureServer()
    yield upstream, target
    upstream.close()
    target.close()


def _record(upstream: str, out: Path, bodies: list[tuple[str, bytes]]) -> None:
    proxy = start_record(
        "--upstream", upstream, "-o", str(out), stdout=subprocess.DEVNULL, text=True
    )
    process = proxy.process
    try:
        with httpx.Client(base_url=proxy.url) as client:
            for content_type, body in bodies:
                sent = client.post(
                    "/v1/images/edits", content=body, headers={"content-type": content_type}
                )
                assert sent.status_code == 200
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _replay(trace: Path, target: str, *flags: str) -> None:
    """`imgtrace replay TRACE --target TARGET FLAGS` into a run beside the trace; it must pass."""
    run = trace.with_name("run.imgtrace")
    args = ("replay", str(trace), "--target", target, "-o", str(run), "--no-progress", *flags)
    replayed = run_imgtrace(*args)
    assert replayed.returncode == 0, replayed.stderr


def test_replay_sends_the_recorded_content_type_and_body_unchanged(
    servers: tuple[RawCaptureServer, RawCaptureServer], tmp_path: Path
) -> None:
    upstream, target = servers
    sent = [
        (f"multipart/form-data; boundary={parameter}", _body(boundary, tail))
        for parameter, boundary, tail in CASES
    ]
    trace = tmp_path / "t.imgtrace"
    _record(upstream.url, trace, sent)
    # The proxy itself forwarded the client's bytes.
    assert [(r.header("content-type"), r.body) for r in upstream.requests] == sent

    _replay(trace, target.url, "--speed", "100")
    got = sorted((r.header("content-type") or "", r.body) for r in target.requests)
    assert got == sorted(sent)


def test_a_set_override_keeps_the_other_parts_as_they_were_written(
    servers: tuple[RawCaptureServer, RawCaptureServer], tmp_path: Path
) -> None:
    upstream, target = servers
    body = _body("abc def", EURO)
    trace = tmp_path / "t.imgtrace"
    _record(upstream.url, trace, [('multipart/form-data; boundary="abc def"', body)])
    with TraceReader(trace) as reader:
        assert len(list(reader.requests())) == 1
    _replay(trace, target.url, "--set", "prompt=red")
    (request,) = target.requests
    assert request.header("content-type") == 'multipart/form-data; boundary="abc def"'
    assert EURO.encode() in request.body
    assert b"make it blue" not in request.body and b"\r\n\r\nred\r\n" in request.body
