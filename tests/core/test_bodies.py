"""Multipart parsing edge cases and the body/envelope helpers."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traces import (
    FilePart,
    FormPartData,
    JsonBody,
    MultipartBody,
    MultipartError,
    RawBody,
    TextField,
    body_from_bytes,
    boundary_of,
    encode_body,
    encode_multipart,
    parse_multipart,
    restore_images,
    strip_images,
)


class Blobs(dict[str, bytes]):
    def add(self, data: bytes, media_type: str | None = None) -> str:
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        self[digest] = data
        return digest


def test_repeated_image_parts_keep_their_order() -> None:
    parts = [
        FormPartData("prompt", b"swap the sky"),
        FormPartData("image[]", b"first", "a.png", "image/png"),
        FormPartData("image[]", b"second", "b.png", "image/png"),
        FormPartData("n", b"2"),
    ]
    body = encode_multipart(parts, "XyZ")
    blobs = Blobs()
    record = body_from_bytes("multipart/form-data; boundary=XyZ", body, blobs.add)
    assert isinstance(record, MultipartBody)
    assert [p.name for p in record.parts] == ["prompt", "image[]", "image[]", "n"]
    assert isinstance(record.parts[0], TextField) and record.parts[0].value == "swap the sky"
    assert isinstance(record.parts[2], FilePart) and blobs[record.parts[2].blob] == b"second"
    content_type, rebuilt = encode_body(record, blobs.__getitem__)
    assert rebuilt == body
    assert content_type == "multipart/form-data; boundary=XyZ"


def test_binary_field_without_filename_becomes_a_blob() -> None:
    body = encode_multipart([FormPartData("mask", b"\xff\xfe\x00binary")], "b")
    blobs = Blobs()
    record = body_from_bytes("multipart/form-data; boundary=b", body, blobs.add)
    assert isinstance(record, MultipartBody)
    part = record.parts[0]
    assert isinstance(part, FilePart) and part.filename is None
    assert encode_body(record, blobs.__getitem__)[1] == body


@pytest.mark.parametrize(
    "body",
    [
        b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue',  # no closing boundary
        b"this is not multipart at all",
        b"--b\r\nContent-Type: text/plain\r\n\r\nno disposition\r\n--b--\r\n",
    ],
)
def test_malformed_multipart_is_kept_raw_with_the_reason(body: bytes) -> None:
    blobs = Blobs()
    record = body_from_bytes("multipart/form-data; boundary=b", body, blobs.add)
    assert isinstance(record, RawBody)
    assert record.parse_error and "multipart" in record.parse_error
    assert blobs[record.blob] == body
    assert encode_body(record, blobs.__getitem__) == ("multipart/form-data; boundary=b", body)


def test_missing_boundary_is_an_error() -> None:
    with pytest.raises(MultipartError, match="boundary"):
        parse_multipart(b"", "multipart/form-data")
    assert boundary_of('multipart/form-data; boundary="quoted value"') == "quoted value"
    assert boundary_of("application/json") is None


def test_rfc5987_filename_wins() -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="plain.png"; '
        b"filename*=UTF-8''na%C3%AFve.png\r\n\r\nxx\r\n--b--\r\n"
    )
    [part] = parse_multipart(body, "multipart/form-data; boundary=b")
    assert part.filename == "naïve.png"


def test_json_bodies_stay_inline_and_bad_json_stays_raw() -> None:
    blobs = Blobs()
    record = body_from_bytes("application/json", b'{"prompt": "a cat", "n": 2}', blobs.add)
    assert record == JsonBody(value={"prompt": "a cat", "n": 2})
    bad = body_from_bytes("application/json", b"{oops", blobs.add)
    assert isinstance(bad, RawBody) and bad.parse_error and "JSON" in bad.parse_error
    assert body_from_bytes(None, b"", blobs.add) is None


def test_strip_and_restore_images() -> None:
    image = b"\x89PNG\r\n\x1a\nfake"
    payload = {
        "created": 1,
        "data": [{"b64_json": base64.b64encode(image).decode(), "revised_prompt": "x"}],
        "usage": {"total_tokens": 3},
    }
    blobs = Blobs()
    envelope, digests = strip_images(payload, blobs.add)
    assert len(digests) == 1 and blobs[digests[0]] == image
    assert envelope["data"][0]["b64_json"] == {"$blob": digests[0]}
    assert len(json.dumps(envelope)) < 200
    assert restore_images(envelope, blobs.__getitem__) == payload


def test_invalid_base64_is_left_alone() -> None:
    envelope, digests = strip_images({"b64_json": "not base64!!"}, Blobs().add)
    assert envelope == {"b64_json": "not base64!!"} and digests == ()


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=1, max_size=700_000), tamper=st.sampled_from(["", "=", "!", " "]))
def test_sliced_base64_decoding_matches_the_standard_library(data: bytes, tamper: str) -> None:
    text = base64.b64encode(data).decode() + tamper
    try:
        expected: bytes | None = base64.b64decode(text, validate=True)
    except ValueError:
        expected = None
    envelope, digests = strip_images({"b64_json": text}, Blobs().add)
    if expected is None:
        assert envelope == {"b64_json": text} and digests == ()
    else:
        assert digests == (hashlib.sha256(expected).hexdigest(),)
