"""strip_images_from_json: the chunked fast path equals traces.strip_images, for any JSON."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traces import _jsonimages, strip_images
from traces import strip_images_from_json as split_images


def store() -> tuple[dict[str, bytes], Any]:
    blobs: dict[str, bytes] = {}

    def add(data: bytes, media_type: str | None) -> str:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest

    return blobs, add


def both(body: bytes) -> None:
    fast_blobs, fast_add = store()
    slow_blobs, slow_add = store()
    fast = split_images(body, fast_add)
    slow = strip_images(msgspec.json.decode(body), slow_add)
    assert fast == slow
    for digest in slow[1]:
        assert fast_blobs[digest] == slow_blobs[digest]


b64 = st.binary(max_size=700).map(lambda b: base64.b64encode(b).decode())
not_b64 = st.sampled_from(
    [
        "",
        "abc",
        "AA==AA==",
        "A===",
        "====",
        "AB=C",
        "ÄÖÜ=",
        "a b=",
        "x",
        "QUFBQUFB=QUFBQUFB",
        "QUFBQU#B",
    ]
)
scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    item = st.fixed_dictionaries(
        {"b64_json": b64 | not_b64 | scalars},
        optional={"revised_prompt": st.text(max_size=30), "url": st.none()},
    )
    return {
        "created": draw(st.integers(0, 2**31)),
        "data": draw(st.lists(item, max_size=4)),
        "note": draw(st.text(max_size=30) | st.just('"b64_json": "QUFB"')),
        "nested": draw(st.dictionaries(st.text(max_size=5), scalars | item, max_size=3)),
    }


@settings(max_examples=300, deadline=None)
@given(envelopes(), st.booleans())
def test_same_as_strip_images(envelope: Any, pretty: bool) -> None:
    body = json.dumps(envelope, indent=2 if pretty else None, ensure_ascii=False).encode()
    both(body)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ABCxyz019+/=!\n ", max_size=24))
def test_base64_is_as_strict_as_the_standard_library(text: str) -> None:
    # The standard library's rule, on whole groups of four (it also takes a stray trailing "=").
    data = text.encode()
    try:
        expected: bytes | None = None if len(data) % 4 else base64.b64decode(data, validate=True)
    except binascii.Error:
        expected = None
    assert _jsonimages._decode_base64(data, 0, len(data)) == expected


def test_big_image_is_decoded() -> None:
    image = bytes(range(256)) * 5000  # 1.28 MB: ten chunks of base64
    body = json.dumps({"created": 1, "data": [{"b64_json": base64.b64encode(image).decode()}]})
    blobs, add = store()
    envelope, images = split_images(body.encode(), add)
    assert blobs[images[0]] == image
    assert envelope == {"created": 1, "data": [{"b64_json": {"$blob": images[0]}}]}


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": [{"b64_json": "QU\\/B"}]}',  # an escaped slash: the full decoder decides
        b'{"text": "say \\"b64_json\\": \\"QUFB\\"", "data": []}',
        b'{"b64_json" : "QUFB", "b64_json": null}',
        b'{"x": "b64_json", "data": [{"b64_json": "QUFBQQ=="}]}',
    ],
)
def test_tricky_bodies(body: bytes) -> None:
    both(body)


def test_not_json_raises() -> None:
    with pytest.raises(msgspec.DecodeError):
        split_images(b'{"data": [{"b64_json": "QUFB"}', store()[1])
