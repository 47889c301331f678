"""`RecordingTransport` around real httpx transports, and the `openai` SDK through it."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import openai
import pytest
from recorder_helpers import SECRET_TOKEN, SECRET_USER, Upstream, decompressed, png

from recorder import Recorder, RecordingTransport, RecordOptions
from recorder._capture import pseudonymise
from replayer._sender import classify_error
from traces import FilePart, MultipartBody, TextField, TraceReader

OPTIONS = RecordOptions(user_key=b"transport-key")


def _uploads(reader: TraceReader) -> list[list[bytes]]:
    out = []
    for request in sorted(reader.requests(), key=lambda r: r.offset_ns):
        assert isinstance(request.body, MultipartBody)
        out.append([reader.blob(p.blob) for p in request.body.parts if isinstance(p, FilePart)])
    return out


def test_openai_sdk_through_the_transport(upstream: Upstream, tmp_path: Path) -> None:
    out = tmp_path / "app.imgtrace"
    images = [png(40), png(41)]
    transport = RecordingTransport(out, options=OPTIONS)
    with httpx.Client(transport=transport) as http_client:
        client = openai.OpenAI(
            api_key=SECRET_TOKEN,
            base_url=upstream.url + "/v1",
            # The SDK's annotation names its own copy of httpx; any httpx.Client works.
            http_client=http_client,  # type: ignore[arg-type]
            max_retries=0,
        )
        result = client.images.edit(
            image=[("a.png", images[0], "image/png"), ("b.png", images[1], "image/png")],
            prompt="edit",
            user=SECRET_USER,
        )
        assert [base64.b64decode(d.b64_json or "") for d in result.data or []] == images
        assert http_client.get(upstream.url + "/v1/models").status_code == 200  # not recorded
    # Closing the client closed the transport, and with it the file.
    with TraceReader(out) as reader:
        assert reader.closed_cleanly and reader.header.source == "transport"
        (request,) = reader.requests()
        assert _uploads(reader) == [images]
        assert request.response is not None and request.response.status == 200
        assert [reader.blob(d) for d in request.response.images] == images
        assert dict(request.headers)["authorization"] == "[redacted]"
        assert isinstance(request.body, MultipartBody)
        user = next(p for p in request.body.parts if p.name == "user")
        assert isinstance(user, TextField)
        assert user.value == pseudonymise(SECRET_USER, b"transport-key")
    data = decompressed(out)
    assert SECRET_TOKEN.encode() not in data and SECRET_USER.encode() not in data


async def test_async_client_shares_a_recorder(upstream: Upstream, tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "async.imgtrace", source="transport", options=OPTIONS)
    images = [png(50), png(51), png(52)]
    async with httpx.AsyncClient(transport=RecordingTransport(recorder)) as client:
        for image in images:
            response = await client.post(
                upstream.url + "/v1/images/edits",
                data={"prompt": "p"},
                files={"image": ("i.png", image)},
            )
            assert response.status_code == 200
        async with client.stream(
            "POST",
            upstream.url + "/v1/images/edits",
            data={"prompt": "s"},
            files={"image": ("i.png", images[0])},
        ) as streamed:
            pass  # closed before reading: recorded as aborted by the application
    stats = recorder.close()
    assert stats.recorded == 4
    with TraceReader(tmp_path / "async.imgtrace") as reader:
        requests = sorted(reader.requests(), key=lambda r: r.offset_ns)
        assert _uploads(reader) == [[i] for i in images] + [[images[0]]]
        last = requests[-1].response
        assert last is not None and last.error is not None and last.error.kind == "aborted"
        assert streamed.status_code == 200


def test_transport_records_connection_failures(tmp_path: Path) -> None:
    out = tmp_path / "down.imgtrace"
    transport = RecordingTransport(out, options=OPTIONS)
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError):
        client.post("http://127.0.0.1:1/v1/images/edits", json={"prompt": "x"})
    with TraceReader(out) as reader:
        (request,) = reader.requests()
        assert request.response is not None and request.response.error is not None
        assert request.response.error.kind == "connect"


def test_a_connect_timeout_is_recorded_as_the_replayer_sees_it(tmp_path: Path) -> None:
    def never_connects(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out connecting", request=request)

    out = tmp_path / "slow.imgtrace"
    transport = RecordingTransport(out, transport=httpx.MockTransport(never_connects))
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectTimeout) as raised:
        client.post("http://127.0.0.1:1/v1/images/edits", json={"prompt": "x"})
    with TraceReader(out) as reader:
        (request,) = reader.requests()
    assert request.response is not None and request.response.error is not None
    assert request.response.error.kind == "connect"
    assert classify_error(raised.value).kind == "connect"


def test_wrong_kind_of_inner_transport_is_a_clear_error(tmp_path: Path) -> None:
    transport = RecordingTransport(tmp_path / "t.imgtrace", transport=httpx.AsyncHTTPTransport())
    with httpx.Client(transport=transport) as client, pytest.raises(TypeError, match="AsyncClient"):
        client.get("http://127.0.0.1:1/")
