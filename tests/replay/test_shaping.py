"""Request shaping: headers with environment expansion, --set, --seed, --model, target prefix."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replayer._shaping import SeedPolicy, Shaper, parse_header, parse_seed, parse_set
from traces import (
    REDACTED,
    FilePart,
    JsonBody,
    MultipartBody,
    Request,
    TextField,
    UsageError,
    parse_multipart,
)


def request(**kwargs: object) -> Request:
    parts = (
        TextField(name="prompt", value="a cat"),
        TextField(name="seed", value="5"),
        FilePart(name="image", blob="ab" * 32, size=3, filename="x.png", content_type="image/png"),
    )
    fields: dict[str, object] = {
        "id": "r1",
        "offset_ns": 0,
        "path": "/v1/images/edits",
        "body": MultipartBody(parts=parts, boundary="b0undary"),
    }
    fields.update(kwargs)
    return Request(**fields)  # type: ignore[arg-type]


def blob(digest: str) -> bytes:
    return b"PNG"


def test_header_expands_environment() -> None:
    env = {"TOKEN": "s3cret"}
    assert parse_header("Authorization: Bearer ${TOKEN}", env) == ("Authorization", "Bearer s3cret")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no colon here", "expected 'Name: value'"),
        (": value", "expected 'Name: value'"),
        ("Bad Name: x", "expected 'Name: value'"),
        ("X-Key: ${MISSING}", "MISSING is not set"),
        ("X-Key: ${1bad}", "not a valid environment variable name"),
        ("X-Key: a${NL}b", "line break"),
    ],
)
def test_invalid_header(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_header(text, {"NL": "\n"})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["steps", "=8", "a b=1", 'x"y=1'])
def test_invalid_set(text: str) -> None:
    with pytest.raises(UsageError, match="--set"):
        parse_set(text)


def test_set_keeps_equals_in_value() -> None:
    assert parse_set('lora={"a"=1}') == ("lora", '{"a"=1}')


@pytest.mark.parametrize("text", ["", "fixed", "fixed:x", "random:", "always:1", "keep:1"])
def test_invalid_seed(text: str) -> None:
    with pytest.raises(UsageError, match="--request-seed"):
        parse_seed(text)


def test_random_seed_is_reproducible_per_request_and_never_zero() -> None:
    policy = parse_seed("random:42")
    assert policy.seed_for("r1", 0) == SeedPolicy("random", 42).seed_for("r1", 0)
    assert policy.seed_for("r1", 0) != policy.seed_for("r2", 0)
    assert policy.seed_for("r1", 0) != policy.seed_for("r1", 1)
    assert parse_seed("random:43").seed_for("r1", 0) != policy.seed_for("r1", 0)


@given(st.text(min_size=1, max_size=20), st.integers(0, 5))
def test_random_seed_range(request_id: str, loop: int) -> None:
    seed = SeedPolicy("random", 1).seed_for(request_id, loop)
    assert seed is not None and 1 <= seed < 2**31


def test_prepare_applies_overrides_on_the_wire() -> None:
    shaper = Shaper(
        "http://example.test:8000/prefix/",
        headers=[("Authorization", "Bearer new")],
        sets=[("num_inference_steps", "8"), ("prompt", "a dog")],
        seed=parse_seed("fixed:7"),
        model="flux",
    )
    recorded = request(
        query="a=1",
        headers=(("Authorization", REDACTED), ("X-Trace", "keep"), ("Content-Length", "9")),
    )
    prepared = shaper.prepare(recorded, 0, blob)
    assert prepared.url == "http://example.test:8000/prefix/v1/images/edits?a=1"
    headers = dict(prepared.headers)
    assert headers["Authorization"] == "Bearer new"
    assert headers["X-Trace"] == "keep"
    assert "Content-Length" not in headers
    parts = parse_multipart(prepared.content, headers["Content-Type"])
    fields = {p.name: p.data.decode() for p in parts if p.filename is None}
    assert fields == {"prompt": "a dog", "seed": "7", "num_inference_steps": "8", "model": "flux"}
    assert [p.data for p in parts if p.filename] == [b"PNG"]


def test_redacted_recorded_header_is_never_sent() -> None:
    shaper = Shaper("http://example.test")
    prepared = shaper.prepare(request(headers=(("Authorization", REDACTED),)), 0, blob)
    assert all(name.lower() != "authorization" for name, _ in prepared.headers)


def test_json_body_overrides_are_typed() -> None:
    shaper = Shaper("http://example.test", sets=[("steps", "8"), ("style", "vivid")])
    body = shaper.body(request(body=JsonBody(value={"prompt": "x"})), 0)
    assert isinstance(body, JsonBody)
    assert body.value == {"prompt": "x", "steps": 8, "style": "vivid"}


@pytest.mark.parametrize("target", ["ftp://host", "not a url", "http://", "localhost:8000"])
def test_invalid_target(target: str) -> None:
    with pytest.raises(UsageError, match="--target"):
        Shaper(target)
