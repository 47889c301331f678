"""What never reaches a trace or run file: credential headers, internal addresses, response secrets.

Traffic goes over real sockets (an upstream in a thread, the recording proxy, `imgtrace replay`),
and every file is decompressed whole and searched for each secret.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from recorder_helpers import (
    StartProxy,
    Upstream,
    decompressed,
    multipart,
    png,
    requests_of,
)
from servers import ThreadServer, read_body, respond

from imgtrace._cli import main
from traces import (
    REDACTED,
    Header,
    Redaction,
    Request,
    TraceReader,
    TraceWriter,
    internal_address,
    redact_envelope,
    secret_header_name,
)

SIGNATURE = "SIGNATURE-SECRET-0a1b2c"
AMZ_SIGNATURE = "AMZSIG-SECRET-3d4e5f"
SERVER_FILE = "/srv/outputs/FILEPATH-SECRET-77.png"
LITELLM_KEY = "sk-litellm-SECRET-1234"
GOOGLE_KEY = "AIza-GOOGLE-SECRET-5678"
TENANT_SECRET = "TENANT-SECRET-9abc"
INTERNAL_BASE = "http://10.20.30.40:8000/v1"
AZURE_BASE = "https://internal-deployment.openai.azure.com/"

CREDENTIAL_HEADERS = {
    "authorization": "Bearer sk-openai-SECRET",
    "api-key": "azure-SECRET",
    "x-litellm-api-key": f"Bearer {LITELLM_KEY}",
    "x-api-key": "anthropic-SECRET",
    "x-goog-api-key": GOOGLE_KEY,
    "x-tenant-secret": TENANT_SECRET,
}


CREDENTIAL_NAMES = (
    "Authorization",
    "api-key",
    "X-LiteLLM-API-Key",
    "x-api-key",
    "x-goog-api-key",
    "Ocp-Apim-Subscription-Key",
    "x-portkey-api-key",
    "helicone-auth",
    "x-acme-token",
    "x-client-secret",
    "x-foo-apikey",
    "x-oauth",
    "x-db-password",
    "x-aws-credentials",
)
PUBLIC_NAMES = (
    "content-type",
    "x-request-id",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-limit-tokens",
    "www-authenticate",
    "x-session-affinity",
    "openai-processing-ms",
)
INTERNAL_VALUES = (
    INTERNAL_BASE,
    "http://sglang:30000",
    "localhost:8000",
    "127.0.0.1",
    "[::1]:8080",
    "http://[fd00::5]:80/x",
    "http://model.default.svc.cluster.local:8000",
    "upstream 192.168.1.7:9000 took 3 ms",
    "http://169.254.169.254/latest",
)
PUBLIC_VALUES = (
    "https://api.openai.com/v1",
    "12.5",
    "Tue, 01 Dec 2026 09:00:00 GMT",
    "gpt-image-1",
    "nginx/1.25.3",
    "8.8.8.8",
)


@pytest.mark.parametrize(
    ("found", "texts", "expected"),
    [
        (secret_header_name, CREDENTIAL_NAMES, True),
        (secret_header_name, PUBLIC_NAMES, False),
        (internal_address, INTERNAL_VALUES, True),
        (internal_address, PUBLIC_VALUES, False),
    ],
    ids=["credential header names", "public header names", "internal addresses", "public values"],
)
def test_what_is_a_credential_header_or_an_internal_address(
    found: Callable[[str], object], texts: tuple[str, ...], expected: bool
) -> None:
    for text in texts:
        assert bool(found(text)) is expected, text


def test_redaction_keeps_what_is_named_and_public() -> None:
    headers = (
        ("x-goog-api-key", GOOGLE_KEY),
        ("x-litellm-model-api-base", AZURE_BASE),
        ("x-envoy-upstream-service-time", "12"),
        ("x-served-by", "10.0.0.9:8000"),
        ("x-ratelimit-remaining-tokens", "9000"),
    )
    default = dict(Redaction().response_headers(headers))
    assert default == {
        "x-goog-api-key": REDACTED,
        "x-litellm-model-api-base": REDACTED,
        "x-envoy-upstream-service-time": "12",
        "x-served-by": REDACTED,
        "x-ratelimit-remaining-tokens": "9000",
    }
    kept = dict(
        Redaction(keep=["X-Goog-Api-Key", "x-litellm-model-api-base"]).response_headers(headers)
    )
    assert kept["x-goog-api-key"] == GOOGLE_KEY and kept["x-litellm-model-api-base"] == AZURE_BASE
    # Request headers are not searched for addresses: `Host` and friends are needed as they are.
    assert Redaction().headers((("x-forwarded-for", "10.0.0.1"),)) == (
        ("x-forwarded-for", "10.0.0.1"),
    )


def test_envelope_redaction_covers_json_and_event_streams() -> None:
    item = {"url": f"https://b.example/o.png?sig={SIGNATURE}&v=1", "file_path": SERVER_FILE}
    scrubbed = redact_envelope({"created": 1, "data": [item]})
    assert scrubbed["data"] == [{"url": "https://b.example/o.png?sig=[redacted]&v=1"}]
    events = [{"event": "image_edit.completed", "data": {"data": [item]}}]
    assert "FILEPATH" not in json.dumps(redact_envelope(events))
    clean = {"created": 1, "data": [{"b64_json": {"$blob": "ab"}}]}
    assert redact_envelope(clean) is clean


def _gateway() -> Any:
    """An upstream that answers like a gateway in front of SGLang: signed URLs, server paths,
    and headers naming its internal upstream."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        url = (
            "https://bucket.s3.amazonaws.com/out.png?X-Amz-Expires=3600"
            f"&X-Amz-Signature={AMZ_SIGNATURE}&sig={SIGNATURE}"
        )
        payload = {
            "created": 1,
            "data": [
                {"b64_json": base64.b64encode(png(5)).decode(), "file_path": SERVER_FILE},
                {"url": url, "file_path": SERVER_FILE},
            ],
        }
        headers = [
            (b"content-type", b"application/json"),
            (b"x-litellm-model-api-base", INTERNAL_BASE.encode()),
            (b"x-litellm-model-id", b"flux-1"),
            (b"x-upstream-host", b"sglang-0.flux.svc.cluster.local:30000"),
            (b"x-envoy-upstream-service-time", b"12"),
        ]
        await respond(send, 200, json.dumps(payload).encode(), headers)

    return app


@pytest.fixture
def gateway() -> Any:
    server = ThreadServer(_gateway()).start()
    yield server
    server.stop()


SECRETS = (
    SIGNATURE,
    AMZ_SIGNATURE,
    SERVER_FILE,
    LITELLM_KEY,
    GOOGLE_KEY,
    TENANT_SECRET,
    "10.20.30.40",
    "svc.cluster.local",
    "anthropic-SECRET",
    "azure-SECRET",
    "sk-openai-SECRET",
)


def _post(url: str) -> httpx.Response:
    parts = [("prompt", b"p", None), ("image", png(1), "a.png")]
    return httpx.post(url + "/v1/images/edits", **multipart("B", parts, CREDENTIAL_HEADERS))


def _assert_clean(path: Path) -> None:
    data = decompressed(path)
    for secret in SECRETS:
        assert secret.encode() not in data, secret


# The command prints its warnings as one line each (the test run turns bare warnings into errors).
@pytest.mark.filterwarnings("default::UserWarning")
def test_recording_and_its_replay_keep_no_secret(
    gateway: ThreadServer,
    start_proxy: StartProxy,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy = start_proxy(gateway.url)
    assert _post(proxy.url).status_code == 200
    reader = proxy.close()
    (request,) = requests_of(reader)
    recorded = dict(request.headers)
    for name in CREDENTIAL_HEADERS:
        assert recorded[name] == REDACTED, name
    assert request.response is not None
    response_headers = dict(request.response.headers)
    assert response_headers["x-litellm-model-api-base"] == REDACTED
    assert response_headers["x-upstream-host"] == REDACTED
    assert response_headers["x-litellm-model-id"] == "flux-1"
    assert response_headers["x-envoy-upstream-service-time"] == "12"
    _assert_clean(proxy.path)

    run = tmp_path / "run.imgtrace"
    code = main(["replay", str(proxy.path), "--target", gateway.url, "-o", str(run)])
    assert code == 0
    # The replay says, before sending, which recorded credentials it cannot send.
    assert "was redacted when it was recorded" in capsys.readouterr().err
    with TraceReader(run) as replayed:
        (outcome,) = list(replayed.outcomes())
    assert outcome.status == 200
    assert all("file_path" not in item for item in outcome.envelope["data"])
    assert outcome.envelope["data"][1]["url"].count(REDACTED) == 2
    assert dict(outcome.headers)["x-litellm-model-api-base"] == REDACTED
    assert dict(outcome.headers)["x-envoy-upstream-service-time"] == "12"
    _assert_clean(run)


def test_keep_header_keeps_a_named_credential(
    gateway: ThreadServer, start_proxy: StartProxy
) -> None:
    proxy = start_proxy(gateway.url, keep_headers=("x-goog-api-key", "x-litellm-model-api-base"))
    assert _post(proxy.url).status_code == 200
    (request,) = requests_of(proxy.close())
    assert dict(request.headers)["x-goog-api-key"] == GOOGLE_KEY
    assert dict(request.headers)["x-litellm-api-key"] == REDACTED
    assert request.response is not None
    assert dict(request.response.headers)["x-litellm-model-api-base"] == INTERNAL_BASE


@pytest.mark.filterwarnings("default::UserWarning")
def test_a_placeholder_is_never_replayed(
    upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.imgtrace"
    headers = (
        ("x-session-affinity", "<redacted>"),
        ("authorization", REDACTED),
        ("x-kept", "visible"),
    )
    with TraceWriter(trace, Header(source="test")) as writer:
        writer.write(Request(id="a", offset_ns=0, path="/echo", headers=headers))
    run = tmp_path / "run.imgtrace"
    assert main(["replay", str(trace), "--target", upstream.url, "-o", str(run)]) == 0
    assert "authorization header was redacted" in capsys.readouterr().err
    (seen,) = [item for item in upstream.seen if item.get("path") == "/echo" and "headers" in item]
    assert seen["headers"]["x-kept"] == "visible"
    assert "x-session-affinity" not in seen["headers"] and "authorization" not in seen["headers"]


@given(st.text(max_size=80))
def test_address_detection_takes_any_text(value: str) -> None:
    internal_address(value)  # never raises
    assert Redaction().response_headers((("x-anything", value),))[0][0] == "x-anything"


@given(
    st.sampled_from(["10.{}.{}.{}", "192.168.{}.{}", "127.0.{}.{}", "172.16.{}.{}"]),
    st.lists(st.integers(0, 255), min_size=3, max_size=3),
    st.sampled_from(["http://{}:8000/v1", "{}", "{}:30000", "upstream={}"]),
)
def test_private_ipv4_addresses_are_found(pattern: str, octets: list[int], shape: str) -> None:
    address = pattern.format(*octets)
    assert internal_address(shape.format(address))
