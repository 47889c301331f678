"""Property tests: a recorded multipart body is encoded back to the very bytes that were sent.

Boundaries quoted or not, filenames plain, RFC 5987 (`filename*=UTF-8''...`) or both, extra
part headers and any epilogue: `encode_body(body_from_bytes(ct, data))` gives back
`(ct, data)`.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from traces import MultipartBody, TextField, body_from_bytes, encode_body

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'()+_-"
token_boundaries = st.text(st.sampled_from(_TOKEN_CHARS), min_size=1, max_size=40)
quoted_boundaries = st.text(
    st.sampled_from(_TOKEN_CHARS + " ,./:=?"), min_size=1, max_size=40
).filter(lambda b: not b.endswith(" "))
filenames = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\%;'),
    min_size=1,
    max_size=12,
)


@st.composite
def dispositions(draw: st.DrawFn) -> str:
    name = draw(filenames)
    form = draw(st.sampled_from(["plain", "extended", "both", "none"]))
    encoded = "UTF-8''" + quote(name, safe="")
    tail = {
        "plain": f'; filename="{name}"',
        "extended": f"; filename*={encoded}",
        "both": f'; filename="fallback.png"; filename*={encoded}',
        "none": "",
    }[form]
    spacing = draw(st.sampled_from([" ", "", "  "]))
    return f'form-data;{spacing}name="image"{tail}'


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    quoted = draw(st.booleans())
    boundary = draw(quoted_boundaries if quoted else token_boundaries)
    parameter = f'"{boundary}"' if quoted or draw(st.booleans()) else boundary
    content_type = draw(
        st.sampled_from(
            [
                f"multipart/form-data; boundary={parameter}",
                f"multipart/form-data;boundary={parameter}",
                f"Multipart/Form-Data; charset=utf-8; boundary={parameter}",
            ]
        )
    )
    dash = b"--" + boundary.encode()
    out = bytearray()
    for _ in range(draw(st.integers(1, 3))):
        out += dash + b"\r\n"
        out += b"Content-Disposition: " + draw(dispositions()).encode() + b"\r\n"
        out += draw(st.sampled_from([b"", b"Content-Type: image/png\r\n", b"X-Extra: 1\r\n"]))
        out += b"\r\n" + draw(st.binary(max_size=40)).replace(b"--", b"-") + b"\r\n"
    out += dash + b"--" + draw(st.sampled_from([b"\r\n", b"", b"\r\nepilogue\r\n"]))
    return content_type, bytes(out)


@settings(max_examples=300, deadline=None)
@given(case=bodies())
def test_a_parsed_body_encodes_back_to_the_bytes_sent(case: tuple[str, bytes]) -> None:
    content_type, data = case
    blobs: dict[str, bytes] = {}

    def add(blob: bytes, media_type: str | None) -> str:
        digest = hashlib.sha256(blob).hexdigest()
        blobs[digest] = blob
        return digest

    body = body_from_bytes(content_type, data, add)
    assert isinstance(body, MultipartBody)
    assert encode_body(body, blobs.__getitem__) == (content_type, data)


def test_a_changed_part_gets_a_plain_head_and_the_others_keep_theirs() -> None:
    data = (
        b'--b\r\nContent-Disposition: form-data;name="prompt"\r\n\r\nold\r\n'
        b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename*=UTF-8''%E2%82%AC.png"
        b"\r\n\r\nPNG\r\n--b--\r\n"
    )
    blobs: dict[str, bytes] = {}

    def add(blob: bytes, media_type: str | None) -> str:
        blobs[hashlib.sha256(blob).hexdigest()] = blob
        return hashlib.sha256(blob).hexdigest()

    body = body_from_bytes('multipart/form-data; boundary="b"', data, add)
    assert isinstance(body, MultipartBody)
    renamed = TextField(name="model", value="m", head=body.parts[0].head)  # a stale head
    shaped = MultipartBody(parts=(renamed, body.parts[1]), boundary="b", content_type=None)
    content_type, sent = encode_body(shaped, blobs.__getitem__)
    assert content_type == "multipart/form-data; boundary=b"
    assert b'Content-Disposition: form-data; name="model"\r\n\r\nm\r\n' in sent
    assert b"filename*=UTF-8''%E2%82%AC.png" in sent


def test_a_boundary_that_is_not_a_token_is_quoted_in_a_new_content_type() -> None:
    body = MultipartBody(parts=(TextField(name="a", value="1"),), boundary="abc def")
    no_blobs: dict[str, bytes] = {}
    content_type, _ = encode_body(body, no_blobs.__getitem__)
    assert content_type == 'multipart/form-data; boundary="abc def"'
