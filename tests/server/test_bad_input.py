"""Every bad input named in the issue: the right 4xx, an OpenAI-shaped message, server unharmed."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image
from server_support import MAX_BODY, Server, assert_error, edit, make_png, post_form
from testproc import exact_head, raw_status

from traces import FormPartData

PNG = make_png()


@pytest.fixture(autouse=True)
def server_stays_healthy(client: httpx.Client) -> Iterator[None]:
    yield
    assert client.get("/health").status_code == 200
    assert edit(client, [PNG]).status_code == 200


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares huge dimensions (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = zlib.compress(b"\x00" * 64)
    idat = b"IDAT" + data
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", len(data))
        + idat
        + struct.pack(">I", zlib.crc32(idat))
        + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    )


def test_missing_image(client: httpx.Client) -> None:
    message = assert_error(edit(client, []), 400, param="image")
    assert "image[]" in message


def test_bytes_that_are_not_an_image(client: httpx.Client) -> None:
    assert_error(edit(client, [b"GIF? no, just text"]), 422, param="image")
    assert_error(edit(client, [PNG, PNG[:60]]), 422, param="image")  # truncated second image


def test_decompression_bomb(client: httpx.Client) -> None:
    message = assert_error(edit(client, [bomb_png(8000, 8000)]), 422, param="image")
    assert "too large" in message and "8000x8000" in message
    # Past Pillow's own limit, Pillow refuses first; the answer is the same kind.
    message = assert_error(edit(client, [bomb_png(100_000, 100_000)]), 422, param="image")
    assert "too large" in message
    # ... and the message is still the server's own, with the declared size.
    assert "it declares 100000x100000 pixels" in message
    assert "decompression bomb" not in message.lower()
    message = assert_error(edit(client, [bomb_png(14_000, 14_000)]), 422, param="image")
    assert "it declares 14000x14000 pixels" in message


def test_unsupported_image_format(client: httpx.Client) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "BMP")
    assert_error(edit(client, [buffer.getvalue()]), 422, param="image")


def test_mask_of_the_wrong_size(client: httpx.Client) -> None:
    mask = make_png((32, 32), (0, 0, 0, 0), mode="RGBA")
    message = assert_error(
        post_form(
            client,
            [
                FormPartData("image", PNG, "in.png", "image/png"),
                FormPartData("mask", mask, "mask.png", "image/png"),
                FormPartData("prompt", b"x"),
            ],
        ),
        422,
        param="mask",
    )
    assert "32x32" in message and "64x48" in message


def test_mask_without_alpha(client: httpx.Client) -> None:
    assert_error(
        post_form(
            client,
            [
                FormPartData("image", PNG, "in.png", "image/png"),
                FormPartData("mask", make_png(), "mask.png", "image/png"),
                FormPartData("prompt", b"x"),
            ],
        ),
        422,
        param="mask",
    )


@pytest.mark.parametrize("n", ["0", "11", "-1", "two", "1.5"])
def test_n_out_of_range(client: httpx.Client, n: str) -> None:
    assert_error(edit(client, [PNG], n=n), 400, param="n")


@pytest.mark.parametrize("size", ["big", "1024", "10x", "0x0", "1024x99999", "8x8", "-5x5"])
def test_malformed_size(client: httpx.Client, size: str) -> None:
    message = assert_error(edit(client, [PNG], size=size), 400, param="size")
    assert "size" in message


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"prompt": "x"}'),
        ("application/x-www-form-urlencoded", b"prompt=x"),
        ("", b"prompt=x"),
    ],
)
def test_non_multipart_body_on_the_edits_route(
    client: httpx.Client, content_type: str, body: bytes
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    message = assert_error(client.post("/v1/images/edits", content=body, headers=headers), 415)
    assert "multipart/form-data" in message


def test_malformed_multipart(client: httpx.Client) -> None:
    headers = {"content-type": "multipart/form-data; boundary=xyz"}
    response = client.post(
        "/v1/images/edits", content=b"--xyz\r\nnot a header\r\n", headers=headers
    )
    assert_error(response, 400)
    no_boundary = {"content-type": "multipart/form-data"}
    assert_error(client.post("/v1/images/edits", content=b"x", headers=no_boundary), 400)


HEAD_LIMIT = 64 * 1024  # the default --max-header-size


@pytest.mark.parametrize("size", [1 << 20, 16 << 20])
def test_header_over_the_limit_gets_431(client: httpx.Client, size: int) -> None:
    response = client.get("/health", headers={"x-huge": "h" * size})
    message = assert_error(response, 431)
    assert f"limit of {HEAD_LIMIT:,} bytes" in message and "--max-header-size" in message
    assert response.headers["connection"] == "close"
    # On an image route too, before the body is read.
    edit_response = client.post("/v1/images/edits", headers={"x-huge": "h" * size}, content=b"x")
    assert_error(edit_response, 431)


def test_header_limit_is_exact(fast: Server) -> None:
    status, answer = raw_status(fast.port, exact_head("/health", HEAD_LIMIT))
    assert status == 200, answer[:200]
    status, answer = raw_status(fast.port, exact_head("/health", HEAD_LIMIT + 1))
    assert status == 431, answer[:200]
    assert b"request_header_fields_too_large" in answer


def test_header_limit_is_configurable() -> None:
    server = Server("--speed", "1000", "--max-header-size", "2KiB")
    server.wait_ready()
    try:
        assert raw_status(server.port, exact_head("/health", 2048))[0] == 200
        status, answer = raw_status(server.port, exact_head("/health", 2049))
        assert status == 431 and b"limit of 2,048 bytes" in answer
    finally:
        server.stop()


def test_malformed_multipart_logs_no_stray_line() -> None:
    # python-multipart logs each parse error before raising it; the client's 400 already says
    # what was wrong, so the server's stderr must not repeat it as a bare line.
    server = Server("--speed", "1000")
    server.wait_ready()
    try:
        headers = {"content-type": "multipart/form-data; boundary=xyz"}
        response = httpx.post(
            server.url + "/v1/images/edits", content=b"--xyzX\r\n", headers=headers, timeout=30
        )
        message = assert_error(response, 400)
        assert "Did not find CR at end of boundary" in message
    finally:
        server.process.terminate()
        _, stderr = server.process.communicate(timeout=20)
    assert b"Did not find CR" not in stderr, stderr.decode()


@pytest.mark.parametrize("size", [MAX_BODY + 1, 24 * MAX_BODY])
def test_body_over_max_body_with_content_length(client: httpx.Client, size: int) -> None:
    big = b"\0" * size
    response = client.post(
        "/v1/images/edits", files=[("image", ("big.png", big, "image/png"))], data={"prompt": "x"}
    )
    message = assert_error(response, 413)
    assert "--max-body" in message


def test_body_over_max_body_streamed_without_length(client: httpx.Client) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="a"\r\n\r\n'
        for _ in range(160):  # 160 x 64 KiB = 10 MB against a 1 MB limit
            sent += 65536
            yield b"\1" * 65536

    response = client.post(
        "/v1/images/edits",
        content=chunks(),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert_error(response, 413)
    assert sent > MAX_BODY  # the client streamed past the limit; the server refused mid-way


def test_prompt_over_the_limit(client: httpx.Client) -> None:
    message = assert_error(edit(client, [PNG], prompt="p" * 32001), 400, param="prompt")
    assert "32000" in message
    assert edit(client, [PNG], prompt="p" * 32000).status_code == 200


def test_missing_prompt(client: httpx.Client) -> None:
    assert_error(
        post_form(client, [FormPartData("image", PNG, "a.png", "image/png")]), 400, param="prompt"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", "abc"),
        ("num_inference_steps", "0"),
        ("guidance_scale", "nan"),
        ("output_format", "gif"),
        ("output_compression", "101"),
        ("quality", "ultra"),
        ("background", "striped"),
        ("response_format", "xml"),
    ],
)
def test_bad_field_values(client: httpx.Client, field: str, value: str) -> None:
    assert_error(edit(client, [PNG], **{field: value}), 400, param=field)


def test_too_many_images(client: httpx.Client) -> None:
    assert_error(edit(client, [PNG] * 17), 400, param="image")
