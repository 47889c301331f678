"""The recording proxy over real sockets: forwarding, recording, redaction, faults."""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
import threading
from collections.abc import Iterator

import anyio
import httpx
import openai
import pytest
from recorder_helpers import (
    SECRET_COOKIE,
    SECRET_SET_COOKIE,
    SECRET_TOKEN,
    SECRET_USER,
    SERVER_PATH,
    StartProxy,
    Upstream,
    decompressed,
    multipart,
    png,
    requests_of,
    wait_for,
)

from recorder._capture import pseudonymise
from traces import FilePart, MultipartBody, RawBody, TextField

SECRETS = [
    SECRET_TOKEN,
    SECRET_COOKIE,
    SECRET_USER,
    SECRET_SET_COOKIE,
    SERVER_PATH,
    "test-user-key",
]


def _auth() -> dict[str, str]:
    return {"authorization": f"Bearer {SECRET_TOKEN}", "cookie": SECRET_COOKIE}


def test_records_clients_and_keeps_no_secret(upstream: Upstream, start_proxy: StartProxy) -> None:
    proxy = start_proxy(upstream.url)
    images = [png(i) for i in range(4)]
    # 1. httpx, one image as `image`, with the secrets a real client sends.
    with httpx.Client(base_url=proxy.url, headers=_auth()) as client:
        one = client.post(
            "/v1/images/edits",
            data={"prompt": "make it blue", "user": SECRET_USER, "seed": "7"},
            files={"image": ("a.png", images[0], "image/png")},
        )
        assert one.status_code == 200
        assert base64.b64decode(one.json()["data"][0]["b64_json"]) == images[0]
        # 2. raw multipart with repeated image[] (and a reference image sent twice).
        parts = [
            ("prompt", b"two refs", None),
            ("image[]", images[1], "b.png"),
            ("image[]", images[0], "a.png"),
        ]
        two = client.post("/v1/images/edits", **multipart("XyZ", parts))
        assert len(two.json()["data"]) == 2
        # Not a recorded path: forwarded, not recorded.
        assert client.get("/v1/models").status_code == 200
    # 3. the openai SDK with an image list (sent as image[]), through the proxy.
    sdk = openai.OpenAI(api_key=SECRET_TOKEN, base_url=proxy.url + "/v1", max_retries=0)
    result = sdk.images.edit(
        image=[("c.png", images[2], "image/png"), ("d.png", images[3], "image/png")],
        prompt="sdk edit",
        user=SECRET_USER,
        extra_body={"seed": 3},
    )
    assert [base64.b64decode(d.b64_json or "") for d in result.data or []] == images[2:]
    sdk.close()

    reader = proxy.close()
    requests = requests_of(reader)
    assert [r.id for r in requests] == ["000001", "000002", "000003"]
    first, second, third = requests
    assert isinstance(first.body, MultipartBody)
    fields = {p.name: p for p in first.body.parts}
    user = fields["user"]
    assert isinstance(user, TextField) and user.value == pseudonymise(SECRET_USER, b"test-user-key")
    sent: list[bytes] = []
    for request in requests:
        assert isinstance(request.body, MultipartBody)
        sent += [reader.blob(p.blob) for p in request.body.parts if isinstance(p, FilePart)]
        assert request.response is not None and request.response.status == 200
        outputs = [reader.blob(d) for d in request.response.images]
        assert outputs == [
            reader.blob(p.blob) for p in request.body.parts if isinstance(p, FilePart)
        ]
        for item in request.response.envelope["data"]:
            assert "file_path" not in item
        response = request.response
        assert response.first_byte_ns is not None and response.done_ns is not None
        assert request.offset_ns <= response.first_byte_ns <= response.done_ns
        assert request.notes["client_done_ns"] >= response.done_ns
    assert sent == [images[0], images[1], images[0], images[2], images[3]]
    assert [p.name for p in third.body.parts if isinstance(p, FilePart)] == ["image[]", "image[]"]
    assert second.body.boundary == "XyZ"
    headers = dict(first.headers)
    assert headers["authorization"] == "[redacted]" and headers["cookie"] == "[redacted]"
    assert dict(first.response.headers)["set-cookie"] == "[redacted]"
    assert reader.index is not None and reader.index.dedup_hits >= 2  # images[0] three times
    data = decompressed(proxy.path)
    for secret in SECRETS:
        assert secret.encode() not in data, secret


def test_streams_events_as_they_come(upstream: Upstream, start_proxy: StartProxy) -> None:
    proxy = start_proxy(upstream.url)
    image = png(9)
    parts = [("prompt", b"p", None), ("stream", b"true", None), ("image", image, "i.png")]
    with (
        httpx.Client() as client,
        client.stream(
            "POST", proxy.url + "/v1/images/edits", **multipart("sse", parts)
        ) as response,
    ):
        lines = response.iter_lines()
        assert next(lines) == "event: image_edit.partial_image"
        # The upstream is still holding its second event: we got the first one through.
        assert upstream.waited == []
        upstream.gate.set()
        rest = list(lines)
    assert "event: image_edit.completed" in rest
    assert upstream.waited == ["stream-gate-True"]
    (request,) = requests_of(proxy.close())
    assert request.response is not None
    events = request.response.envelope
    assert [e["event"] for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    assert len(request.response.images) == 1


async def test_no_head_of_line_blocking(upstream: Upstream, start_proxy: StartProxy) -> None:
    proxy = start_proxy(upstream.url, paths=("/*",))
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        async with anyio.create_task_group() as group:
            slow: list[httpx.Response] = []

            async def held() -> None:
                slow.append(await client.get("/gate"))

            group.start_soon(held)
            await anyio.to_thread.run_sync(wait_for, lambda: upstream.waited == ["gate"])
            fast = [await client.post("/echo", content=b"x" * 10) for _ in range(5)]
            assert all(r.status_code == 200 for r in fast) and slow == []
            upstream.gate.set()
        assert slow[0].json() == {"gate": "open"}


def test_headers_forwarding_and_keep_alive(upstream: Upstream, start_proxy: StartProxy) -> None:
    proxy = start_proxy(upstream.url)
    with httpx.Client(base_url=proxy.url) as client:
        seen = [
            client.post(
                "/echo?q=1",
                content=b"abc",
                headers={
                    "connection": "keep-alive, x-hop",
                    "x-hop": "1",
                    "x-forwarded-for": "10.0.0.1",
                    "te": "trailers",
                    "x-end": "kept",
                },
            ).json()
            for _ in range(3)
        ]
    headers = seen[0]["headers"]
    assert headers["x-end"] == "kept" and "x-hop" not in headers and "te" not in headers
    assert headers["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert headers["host"] == upstream.url.removeprefix("http://")
    # One upstream connection, kept alive across requests.
    assert len({s["client_port"] for s in seen}) == 1
    proxy.close()


def test_upstream_down_gives_502_and_is_recorded(start_proxy: StartProxy) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening: refused
        proxy = start_proxy(dead)
        response = httpx.post(
            proxy.url + "/v1/images/edits",
            content=b"{}",
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 502
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == "bad_gateway"
    (request,) = requests_of(proxy.close())
    assert request.response is not None and request.response.status == 502
    assert request.response.error is not None and request.response.error.kind == "connect"


def _resetting_server() -> tuple[str, threading.Thread, socket.socket]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        # SO_LINGER 0: close with a TCP reset instead of a clean FIN.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", thread, listener


def test_upstream_reset_gives_502(start_proxy: StartProxy) -> None:
    url, thread, listener = _resetting_server()
    proxy = start_proxy(url)
    response = httpx.post(
        proxy.url + "/v1/images/edits", content=b"{}", headers={"content-type": "application/json"}
    )
    thread.join(5)
    listener.close()
    assert response.status_code == 502
    (request,) = requests_of(proxy.close())
    assert request.response is not None and request.response.status == 502
    assert request.response.error is not None
    assert request.response.error.kind in ("read", "protocol")


def test_slow_upstream_gives_504(upstream: Upstream, start_proxy: StartProxy) -> None:
    proxy = start_proxy(upstream.url, timeout=0.2, paths=("/slow",))
    response = httpx.post(proxy.url + "/slow?1", content=b"x")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "gateway_timeout"
    (request,) = requests_of(proxy.close())
    assert request.response is not None and request.response.status == 504
    assert request.response.error is not None and request.response.error.kind == "timeout"


def test_client_abort_mid_upload(upstream: Upstream, start_proxy: StartProxy) -> None:
    proxy = start_proxy(upstream.url)
    host, port = proxy.url.removeprefix("http://").split(":")
    head = (
        b"POST /v1/images/edits HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
    )
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head + b"--b\r\n" + b"y" * 5000)
        # Close only once the upload is under way at the upstream.
        wait_for(lambda: any(s.get("started") for s in upstream.seen))
    wait_for(lambda: any(s.get("aborted") for s in upstream.seen))
    (request,) = requests_of(proxy.close())
    assert request.response is not None and request.response.error is not None
    assert request.response.error.kind == "aborted"
    assert request.notes["aborted"].startswith("during the upload")
    assert isinstance(request.body, RawBody) and request.body.parse_error


def test_malformed_multipart_forwarded_byte_for_byte(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    proxy = start_proxy(upstream.url, paths=("/echo",))
    broken = b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nno closing boundary'
    response = httpx.post(
        proxy.url + "/echo",
        content=broken,
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert response.json()["sha256"] == hashlib.sha256(broken).hexdigest()
    reader = proxy.close()
    (request,) = requests_of(reader)
    assert isinstance(request.body, RawBody)
    assert request.body.parse_error and "malformed" in request.body.parse_error
    assert reader.blob(request.body.blob) == broken


def test_malformed_multipart_logs_no_stray_line(
    upstream: Upstream, start_proxy: StartProxy, capfd: pytest.CaptureFixture[str]
) -> None:
    proxy = start_proxy(upstream.url)
    broken = b"--bX\r\nnot a part"
    # As under `imgtrace record`, where no logging is configured (pytest's own log capture
    # would otherwise swallow what reaches stderr there).
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        response = httpx.post(
            proxy.url + "/v1/images/edits",
            content=broken,
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert response.status_code == 400  # the upstream's own verdict, passed on
        (request,) = requests_of(proxy.close())
    finally:
        root.handlers[:] = saved
    # The parser's complaint is kept in the trace, in imgtrace's words, and nowhere else.
    assert isinstance(request.body, RawBody)
    assert "Did not find CR at end of boundary" in (request.body.parse_error or "")
    assert "Did not find CR" not in capfd.readouterr().err


def test_max_body_and_sampling(upstream: Upstream, start_proxy: StartProxy) -> None:
    proxy = start_proxy(upstream.url, paths=("/echo",), max_body=1000, sample=0.5)
    bodies = [f"request {i}".encode() * (1 if i % 5 else 200) for i in range(40)]
    with httpx.Client(base_url=proxy.url) as client:
        for body in bodies:
            assert client.post("/echo", content=body).json()["size"] == len(body)
    reader = proxy.close()
    requests = requests_of(reader)
    stats = proxy.recorder.stats
    assert stats.recorded == len(requests) and stats.recorded + stats.sampled_out == 40
    assert 10 <= stats.recorded <= 30  # a hash of the content decides, not chance
    kept_sizes = {r.notes["body_size"] for r in requests}
    over = [r for r in requests if r.body is None]
    assert all(r.notes["body_dropped"].startswith("over --max-body") for r in over)
    assert all(r.notes["body_size"] > 1000 for r in over)
    assert stats.bodies_over_max == len(over)
    assert kept_sizes <= {len(b) for b in bodies}
    assert reader.metadata()["dropped_records"] == 0


def test_sampling_is_deterministic(upstream: Upstream, start_proxy: StartProxy) -> None:
    kept: list[set[bytes]] = []
    for name in ("a.imgtrace", "b.imgtrace"):
        proxy = start_proxy(upstream.url, paths=("/echo",), sample=0.3, name=name)
        with httpx.Client(base_url=proxy.url) as client:
            for i in range(30):
                client.post(
                    "/echo",
                    content=f"body {i}".encode(),
                    headers={"content-type": "application/octet-stream"},
                )
        reader = proxy.close()
        kept.append(
            {reader.blob(r.body.blob) for r in reader.requests() if isinstance(r.body, RawBody)}
        )
    assert kept[0] == kept[1] and 0 < len(kept[0]) < 30


def test_secret_query_parameters_are_redacted(upstream: Upstream, start_proxy: StartProxy) -> None:
    proxy = start_proxy(upstream.url, paths=("/echo",))
    httpx.post(proxy.url + "/echo?api_key=QUERY-SECRET&size=1", content=b"x")
    (request,) = requests_of(proxy.close())
    assert "QUERY-SECRET" not in request.query and "size=1" in request.query
    assert b"QUERY-SECRET" not in decompressed(proxy.path)


def test_header_redaction_can_be_adjusted(upstream: Upstream, start_proxy: StartProxy) -> None:
    proxy = start_proxy(
        upstream.url, paths=("/echo",), redact_headers=("X-Tenant-Token",), keep_headers=("cookie",)
    )
    headers = {
        "x-tenant-token": "TENANT-SECRET",
        "cookie": "theme=dark",
        "authorization": "Bearer t",
    }
    echoed = httpx.post(proxy.url + "/echo", content=b"x", headers=headers).json()["headers"]
    assert echoed["x-tenant-token"] == "TENANT-SECRET"  # forwarded untouched
    (request,) = requests_of(proxy.close())
    recorded = dict(request.headers)
    assert recorded["x-tenant-token"] == "[redacted]" and recorded["authorization"] == "[redacted]"
    assert recorded["cookie"] == "theme=dark"


async def test_many_concurrent_uploads_are_all_recorded(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    proxy = start_proxy(upstream.url)
    images = [png(200 + i) for i in range(24)]
    async with httpx.AsyncClient(base_url=proxy.url) as client:

        async def upload(index: int) -> None:
            response = await client.post(
                "/v1/images/edits",
                data={"prompt": f"p{index}"},
                files={"image": (f"{index}.png", images[index], "image/png")},
            )
            assert base64.b64decode(response.json()["data"][0]["b64_json"]) == images[index]

        async with anyio.create_task_group() as group:
            for index in range(len(images)):
                group.start_soon(upload, index)
    reader = proxy.close()
    by_prompt = {}
    for request in reader.requests():
        assert isinstance(request.body, MultipartBody)
        parts = {p.name: p for p in request.body.parts}
        prompt, image = parts["prompt"], parts["image"]
        assert isinstance(prompt, TextField) and isinstance(image, FilePart)
        by_prompt[prompt.value] = reader.blob(image.blob)
    assert by_prompt == {f"p{i}": image for i, image in enumerate(images)}


def test_path_prefix_query_and_chunked_uploads(upstream: Upstream, start_proxy: StartProxy) -> None:
    proxy = start_proxy(upstream.url + "/api/", paths=("/v1/*",))

    def chunks() -> Iterator[bytes]:
        yield b"first,"
        yield b"second"

    response = httpx.post(proxy.url + "/v1/x%20y?a=1&b=%2F", content=chunks())
    seen = response.json()
    assert seen["path"] == "/api/v1/x y" and seen["size"] == len(b"first,second")
    # Framing is per hop: the proxy may pass a small chunked upload on with a Content-Length.
    assert seen["sha256"] == hashlib.sha256(b"first,second").hexdigest()
    (request,) = requests_of(proxy.close())
    assert request.path == "/v1/x y" and request.query == "a=1&b=%2F"
    assert request.notes["body_size"] == 12


def test_user_ids_do_not_leak_through_raw_bodies(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    proxy = start_proxy(upstream.url, paths=("/echo",))
    cut_form = (
        b'--b\r\nContent-Disposition: form-data; name="user"\r\n\r\n'
        + SECRET_USER.encode()
        + b'\r\n--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nno end'
    )
    broken_json = b'{"prompt": "p", "user": "' + SECRET_USER.encode() + b'", '
    for body, kind in (
        (cut_form, "multipart/form-data; boundary=b"),
        (broken_json, "application/json"),
    ):
        seen = httpx.post(proxy.url + "/echo", content=body, headers={"content-type": kind}).json()
        assert seen["sha256"] == hashlib.sha256(body).hexdigest()  # forwarded untouched
    reader = proxy.close()
    for request in requests_of(reader):
        assert isinstance(request.body, RawBody) and request.body.parse_error
        assert request.notes["raw_body_scrubbed"]
        stored = reader.blob(request.body.blob)
        assert pseudonymise(SECRET_USER, b"test-user-key").encode() in stored
    assert SECRET_USER.encode() not in decompressed(proxy.path)
