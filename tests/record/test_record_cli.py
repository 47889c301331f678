"""`imgtrace record` as a user runs it: a process, signals, a full disk, a 100 MB upload."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from recorder_helpers import (
    SECRET_TOKEN,
    SECRET_USER,
    Upstream,
    decompressed,
    has_exited,
    multipart,
    png,
    quiet_recovery,
    recording_pid,
    rss_peak_kib,
    wait_for,
)
from servers import start_record
from testproc import exact_head, raw_status

from imgtrace._cli import main
from traces import FilePart, MultipartBody, TraceReader

RecordProcess = tuple[subprocess.Popen[str], str]


@pytest.fixture
def record() -> Iterator[Callable[..., RecordProcess]]:
    """`record(*args)` starts `imgtrace record --listen 127.0.0.1:0 ARGS` and waits for it."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, preexec: Callable[[], None] | None = None, **popen: Any) -> RecordProcess:
        proxy = start_record(
            *args,
            text=True,
            preexec_fn=preexec,
            env={**os.environ, "IMGTRACE_USER_KEY": "cli-user-key"},
            **popen,
        )
        started.append(proxy.process)
        return proxy.process, proxy.url

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def _stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=20)
    return process.returncode, stderr


def test_record_show_and_sigterm(
    spawn_server: Callable[..., Any],
    record: Callable[..., RecordProcess],
    tmp_path: Path,
    imgtrace: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    server = spawn_server("--speed", "inf")  # the bundled reference server as the upstream
    out = tmp_path / "prod.imgtrace"
    process, url = record("--upstream", server.url, "-o", str(out), "--json", "-")
    images = [png(20 + i) for i in range(3)]
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {SECRET_TOKEN}"}) as c:
        for seed, image in enumerate(images):
            response = c.post(
                "/v1/images/edits",
                data={"prompt": "p", "user": SECRET_USER, "seed": str(seed), "size": "64x64"},
                files={"image": ("x.png", image, "image/png")},
            )
            assert response.status_code == 200, response.text
        parts = [
            ("prompt", b"q", None),
            ("size", b"64x64", None),
            ("n", b"2", None),
            ("image[]", images[0], "a.png"),
            ("image[]", images[1], "b.png"),
        ]
        two = c.post("/v1/images/edits", **multipart("rb", parts))
        assert len(two.json()["data"]) == 2
        assert c.get("/health").status_code == 200  # forwarded, not recorded
    sdk = openai.OpenAI(api_key=SECRET_TOKEN, base_url=url + "/v1", max_retries=0)
    result = sdk.images.edit(
        image=[("c.png", images[2], "image/png"), ("d.png", images[0], "image/png")],
        prompt="sdk",
        user=SECRET_USER,
        size="256x256",
    )
    assert len(result.data or []) == 1
    sdk.close()
    code, stderr = _stop(process)
    assert code == 0, stderr
    assert "recorded 5 of 5 matching requests" in stderr
    shown = imgtrace("show", "--json", str(out))
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert summary["requests"] == 5 and summary["statuses"] == {"200": 5}
    assert summary["metadata"]["dropped_records"] == 0
    with TraceReader(out) as reader:
        assert reader.closed_cleanly and reader.header.source == "proxy"
        requests = sorted(reader.requests(), key=lambda r: r.offset_ns)
        uploaded = [
            [reader.blob(part.blob) for part in request.body.parts if isinstance(part, FilePart)]
            for request in requests
            if isinstance(request.body, MultipartBody)
        ]
        outputs = [len(r.response.images) for r in requests if r.response is not None]
        for request in requests:
            assert request.response is not None
            for digest in request.response.images:
                assert reader.blob_media_type(digest).startswith("image/")
    assert uploaded == [[images[0]], [images[1]], [images[2]], images[:2], [images[2], images[0]]]
    assert outputs == [1, 1, 1, 2, 1]
    data = decompressed(out)
    for secret in (SECRET_TOKEN, SECRET_USER, "cli-user-key"):
        assert secret.encode() not in data


def _six_flushed(record: Callable[..., RecordProcess], upstream: Upstream, out: Path) -> Any:
    """A recording (in a session of its own) with six requests on disk."""
    process, url = record(
        "--upstream", upstream.url, "-o", str(out), "--paths", "/echo", start_new_session=True
    )
    with httpx.Client(base_url=url) as client:
        for i in range(6):
            client.post("/echo", content=f"{i}".encode())

    def flushed() -> bool:
        with quiet_recovery(), TraceReader(out) as r:
            return sum(1 for _ in r.requests()) == 6

    wait_for(flushed, timeout=5)  # the default flush interval is 0.5 s
    return process


def test_sigkill_keeps_what_was_flushed(
    upstream: Upstream, record: Callable[..., RecordProcess], tmp_path: Path
) -> None:
    out = tmp_path / "killed.imgtrace"
    process = _six_flushed(record, upstream, out)
    os.killpg(process.pid, signal.SIGKILL)  # the proxy and its recording process at once
    process.communicate()
    with TraceReader(out) as reader:
        assert not reader.closed_cleanly
        assert [r.id for r in reader.requests()] == [f"{i:06d}" for i in range(1, 7)]


def test_a_killed_proxy_leaves_a_closed_trace(
    upstream: Upstream, record: Callable[..., RecordProcess], tmp_path: Path
) -> None:
    out = tmp_path / "proxy-killed.imgtrace"
    process = _six_flushed(record, upstream, out)
    recording = recording_pid(process.pid)
    process.kill()  # only the forwarding process: the recording process sees its feed end
    process.communicate()  # its stderr closes once the recording process has exited too
    wait_for(lambda: has_exited(recording))
    with TraceReader(out) as reader:
        assert reader.closed_cleanly
        assert [r.id for r in reader.requests()] == [f"{i:06d}" for i in range(1, 7)]
        assert reader.metadata()["recorder"]["recorded"] == 6


def _limit_file_size() -> None:
    # A file-size limit stands in for a full disk: writes beyond it fail with EFBIG.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_full_disk_keeps_forwarding_and_counts_drops(
    upstream: Upstream, record: Callable[..., RecordProcess], tmp_path: Path
) -> None:
    out = tmp_path / "full.imgtrace"
    process, url = record(
        "--upstream",
        upstream.url,
        "-o",
        str(out),
        "--flush-interval",
        "0.05",
        preexec=_limit_file_size,
    )
    with httpx.Client(base_url=url) as client:
        for i in range(12):
            image = png(100 + i, size=64)  # ~12 KB each, incompressible
            response = client.post(
                "/v1/images/edits",
                data={"prompt": "p"},
                files={"image": ("i.png", image, "image/png")},
            )
            assert response.status_code == 200
            time.sleep(0.06)
    code, stderr = _stop(process)
    assert code == 0, stderr
    assert "cannot write the trace any more" in stderr
    dropped = int(stderr.split("DROPPED ")[1].split()[0])
    with quiet_recovery(), TraceReader(out) as reader:
        assert not reader.closed_cleanly
        kept = sum(1 for _ in reader.requests())
    assert dropped > 0 and kept + dropped == 12


def test_sigint_closes_the_file_cleanly(
    upstream: Upstream, record: Callable[..., RecordProcess], tmp_path: Path
) -> None:
    out = tmp_path / "int.imgtrace"
    process, url = record("--upstream", upstream.url, "-o", str(out), "--paths", "/echo")
    assert httpx.post(url + "/echo", content=b"one").status_code == 200
    code, stderr = _stop(process, signal.SIGINT)
    assert code == 0, stderr
    assert "recorded 1 of 1 matching requests" in stderr
    with TraceReader(out) as reader:
        assert reader.closed_cleanly and len(list(reader.requests())) == 1
        assert reader.metadata()["recorder"]["recorded"] == 1


def test_sigterm_waits_for_requests_in_flight(
    upstream: Upstream, record: Callable[..., RecordProcess], tmp_path: Path
) -> None:
    out = tmp_path / "inflight.imgtrace"
    process, url = record("--upstream", upstream.url, "-o", str(out), "--paths", "/gate")
    results: list[int] = []
    client = threading.Thread(target=lambda: results.append(httpx.get(url + "/gate").status_code))
    client.start()
    wait_for(lambda: upstream.waited == ["gate"])
    process.send_signal(signal.SIGTERM)
    port = int(url.rsplit(":", 1)[1])

    def stopped_listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) != 0

    wait_for(stopped_listening)  # shutting down, with the request still held upstream
    upstream.gate.set()
    client.join(10)
    _, stderr = process.communicate(timeout=20)
    assert results == [200] and process.returncode == 0, stderr
    with TraceReader(out) as reader:
        (request,) = reader.requests()
        assert request.response is not None and request.response.status == 200


def test_100_mb_upload_is_forwarded_with_bounded_memory(
    upstream: Upstream, record: Callable[..., RecordProcess], tmp_path: Path
) -> None:
    out = tmp_path / "big.imgtrace"
    process, url = record(
        "--upstream", upstream.url, "-o", str(out), "--paths", "/sink", "--max-body", "8M"
    )
    httpx.post(url + "/sink", content=b"warm up")
    before = rss_peak_kib(process.pid)
    chunk = bytes(range(256)) * 4096  # 1 MiB
    expected = hashlib.sha256()
    for _ in range(100):
        expected.update(chunk)

    def body() -> Iterator[bytes]:
        for _ in range(100):
            yield chunk

    response = httpx.post(url + "/sink", content=body(), timeout=60)
    assert response.json()["size"] == 100 << 20
    assert response.json()["sha256"] == expected.hexdigest()
    growth_mib = (rss_peak_kib(process.pid) - before) / 1024
    assert growth_mib < 40, f"proxy peak RSS grew by {growth_mib:.0f} MiB"
    code, stderr = _stop(process)
    assert code == 0 and "1 without body (over --max-body)" in stderr
    with TraceReader(out) as reader:
        big = [r for r in reader.requests() if r.notes.get("body_size") == 100 << 20]
    assert len(big) == 1 and big[0].body is None


def test_events_and_aborts_through_the_command(
    upstream: Upstream, record: Callable[..., RecordProcess], tmp_path: Path
) -> None:
    # The command serves clients with whichever HTTP parser it picks (httptools if installed):
    # events still pass one by one, and a client leaving mid-upload cancels the upstream side.
    out = tmp_path / "events.imgtrace"
    process, url = record("--upstream", upstream.url, "-o", str(out))
    parts = [("prompt", b"p", None), ("stream", b"true", None), ("image", png(3), "i.png")]
    with (
        httpx.Client() as client,
        client.stream("POST", url + "/v1/images/edits", **multipart("sse", parts)) as response,
    ):
        lines = response.iter_lines()
        assert next(lines) == "event: image_edit.partial_image"
        assert upstream.waited == []  # the upstream still holds its second event
        upstream.gate.set()
        assert "event: image_edit.completed" in list(lines)
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/images/edits HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n" + b"y" * 5000
        )
        wait_for(lambda: sum(1 for s in upstream.seen if s.get("started")) == 2)
    wait_for(lambda: any(s.get("aborted") for s in upstream.seen))
    code, stderr = _stop(process)
    assert code == 0, stderr
    with TraceReader(out) as reader:
        streamed, aborted = sorted(reader.requests(), key=lambda r: r.offset_ns)
    assert streamed.response is not None and len(streamed.response.envelope) == 2
    assert aborted.response is not None and aborted.response.error is not None
    assert aborted.response.error.kind == "aborted"


def _nowhere(out: Path, *flags: str) -> list[str]:
    """The arguments of `imgtrace record -o OUT FLAGS` in front of an upstream that is not there."""
    return ["record", "--upstream", "http://127.0.0.1:1", "-o", str(out), *flags]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--upstream ftp://x", "--upstream takes an http:// or https:// URL"),
        ("--upstream http://u:p@x", "must not hold credentials"),
        ("--listen 127.0.0.1:99999", "--listen takes HOST:PORT"),
        ("--sample 0", "--sample must be in (0, 1]"),
        ("--max-body lots", "--max-body takes a size"),
        ("--max-backlog 1x", "--max-backlog takes a size"),
        ("--rotate-time 0", "--rotate-time must be more than zero"),
        ("--rotate-size 1x", "--rotate-size takes a size"),
        ("--paths v1/images", "--paths takes URL paths starting with '/'"),
    ],
)
def test_bad_options_are_one_line_errors(
    args: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.imgtrace"
    assert main(_nowhere(out, *args.split())) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imgtrace: error: ") and message in err and "\n" not in err
    assert not out.exists()


def test_a_directory_is_not_an_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_nowhere(tmp_path)) == 2
    assert "is a directory: give a file name" in capsys.readouterr().err


def test_existing_output_is_refused_and_kept(
    tmp_path: Path, imgtrace: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    out = tmp_path / "keep.imgtrace"
    out.write_bytes(b"precious")
    result = imgtrace(*_nowhere(out, "--listen", "127.0.0.1:0"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"imgtrace: error: {out} already exists: choose another output or pass --force"
    )
    assert out.read_bytes() == b"precious"


def test_binding_all_interfaces_warns_loudly(capsys: pytest.CaptureFixture[str]) -> None:
    from imgtrace._commands.record import parse_listen

    assert parse_listen("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert "binds ALL network interfaces" in capsys.readouterr().err
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen(":8080") == ("127.0.0.1", 8080)
    assert parse_listen("8080") == ("127.0.0.1", 8080)
    assert capsys.readouterr().err == ""


def test_busy_port_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "busy.imgtrace"
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(_nowhere(out, "--listen", f"127.0.0.1:{port}")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"imgtrace: error: cannot listen on 127.0.0.1:{port}")
    assert not out.exists()


def test_record_refuses_a_huge_head_and_records_only_the_refusal(
    upstream: Upstream, record: Callable[..., RecordProcess], tmp_path: Path
) -> None:
    out = tmp_path / "heads.imgtrace"
    args = ("--upstream", upstream.url, "-o", str(out), "--paths", "/echo")
    process, url = record(*args, "--max-header-size", "2K")
    port = int(url.rsplit(":", 1)[1])
    value = "HUGE-HEADER-VALUE-" * ((1 << 20) // 18)  # 1 MiB
    response = httpx.get(url + "/echo", headers={"x-huge": value}, timeout=30)
    assert response.status_code == 431
    assert "limit of 2,048 bytes" in response.json()["error"]["message"]
    assert raw_status(port, exact_head("/echo", 2048))[0] == 200  # just within passes
    assert _stop(process)[0] == 0
    assert len(upstream.seen) == 1  # the refused request never reached the upstream
    assert b"HUGE-HEADER-VALUE" not in decompressed(out)
    with TraceReader(out) as reader:
        refused, passed = sorted(reader.requests(), key=lambda r: r.offset_ns)
    assert refused.response is not None and refused.response.status == 431
    assert refused.response.error is not None and refused.response.error.kind == "protocol"
    assert refused.notes["head_too_large"]["limit"] == 2048
    assert passed.response is not None and passed.response.status == 200


def test_record_rejects_a_tiny_header_limit(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "imgtrace", "record", "--upstream", "http://127.0.0.1:9",
         "-o", str(tmp_path / "x.imgtrace"), "--max-header-size", "100"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "imgtrace: error: --max-header-size must be at least 1024 bytes, not 100"
    )
