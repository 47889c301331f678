"""The API of `imgtrace serve` over real sockets: routes, response shape, determinism."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
from PIL import Image
from server_support import Server, assert_error, decode, edit, make_png, post_form

from traces import FormPartData

PNG = make_png()
OTHER = make_png((64, 48), (20, 60, 220))


def image_of(response: httpx.Response, index: int = 0) -> bytes:
    assert response.status_code == 200, response.text
    return base64.b64decode(response.json()["data"][index]["b64_json"])


def test_health_models_and_metrics(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/health_generate").json() == {"status": "ok"}
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["imgtrace-reference"]
    assert client.get("/v1/models/imgtrace-reference").json()["object"] == "model"
    assert_error(client.get("/v1/models/gpt-image-1"), 404, param="model")
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE imgtrace_request_duration_seconds histogram" in metrics.text
    assert "imgtrace_queue_depth 0" in metrics.text


def test_unknown_route_and_wrong_method(client: httpx.Client) -> None:
    assert_error(client.get("/v2/nothing"), 404)
    response = client.get("/v1/images/edits")
    assert_error(response, 405)
    assert response.headers["allow"] == "POST"


def test_edit_response_has_the_openai_and_sglang_shape(client: httpx.Client) -> None:
    response = edit(client, [PNG], field="image", model="gpt-image-1", quality="low")
    body = response.json()
    assert set(body) == {
        "id",
        "created",
        "data",
        "output_format",
        "size",
        "quality",
        "background",
        "usage",
        "inference_time_s",
    }
    assert body["size"] == "64x48"  # size defaults to auto: the first input's size
    assert (body["output_format"], body["quality"], body["background"]) == ("png", "low", "opaque")
    assert body["data"][0]["revised_prompt"] == "make it teal"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    assert set(usage["input_tokens_details"]) == {"image_tokens", "text_tokens"}
    output = decode(image_of(response))
    assert (output.format, output.size) == ("PNG", (64, 48))


def test_outputs_are_a_pure_function_of_the_request(client: httpx.Client) -> None:
    first = image_of(edit(client, [PNG]))
    assert image_of(edit(client, [PNG])) == first
    assert image_of(edit(client, [PNG], seed="1024")) == first  # SGLang's default seed
    changed = {
        "seed": edit(client, [PNG], seed="7"),
        "prompt": edit(client, [PNG], prompt="make it red"),
        "steps": edit(client, [PNG], num_inference_steps="30"),
        "guidance": edit(client, [PNG], guidance_scale="7.5"),
        "images": edit(client, [PNG, OTHER]),
        "negative": edit(client, [PNG], negative_prompt="blurry"),
    }
    for what, response in changed.items():
        assert image_of(response) != first, what


def test_unknown_fields_are_ignored(client: httpx.Client) -> None:
    plain = image_of(edit(client, [PNG]))
    assert image_of(edit(client, [PNG], num_frames="1", flow_shift="3", user="u-1")) == plain


def test_n_images_differ_and_size_resizes(client: httpx.Client) -> None:
    response = edit(client, [PNG], n="3", size="96x80")
    images = [image_of(response, i) for i in range(3)]
    assert len(set(images)) == 3
    assert all(decode(i).size == (96, 80) for i in images)
    assert response.json()["size"] == "96x80"


def test_output_formats_and_transparent_background(client: httpx.Client) -> None:
    for fmt, pillow in (("jpeg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")):
        response = edit(client, [PNG], output_format=fmt, output_compression="60")
        assert response.json()["output_format"] == fmt
        assert decode(image_of(response)).format == pillow
    transparent = edit(
        client, [make_png(mode="RGBA", colour=(9, 9, 9, 0))], background="transparent"
    )
    assert transparent.json()["background"] == "transparent"
    assert decode(image_of(transparent)).mode == "RGBA"
    assert_error(
        edit(client, [PNG], background="transparent", output_format="jpeg"), 400, param="background"
    )


def test_data_urls_stand_for_uploads(client: httpx.Client) -> None:
    uploaded = image_of(edit(client, [PNG, OTHER]))
    url = "data:image/png;base64," + base64.b64encode(OTHER).decode()
    mixed = edit(client, [PNG], **{"url[]": url})
    assert image_of(mixed) == uploaded
    only_urls = post_form(
        client,
        [
            FormPartData(
                "url", ("data:image/png;base64," + base64.b64encode(PNG).decode()).encode()
            ),
            FormPartData("prompt", b"make it teal"),
        ],
    )
    assert image_of(only_urls) == image_of(edit(client, [PNG]))
    message = assert_error(edit(client, [PNG], url="https://example.com/cat.png"), 400, "url")
    assert "data: URL" in message


def test_mask_alpha_marks_the_area_to_edit(client: httpx.Client) -> None:
    def mask(alpha: int) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGBA", (64, 48), (0, 0, 0, alpha)).save(buffer, "PNG")
        return buffer.getvalue()

    keep_all = post_form(
        client,
        [
            FormPartData("image", PNG, "in.png", "image/png"),
            FormPartData("mask", mask(255), "mask.png", "image/png"),
            FormPartData("prompt", b"make it teal"),
        ],
    )
    # Nothing may change where the mask is opaque: the output is the input.
    assert np.array_equal(
        np.asarray(decode(image_of(keep_all)).convert("RGB")),
        np.asarray(decode(PNG).convert("RGB")),
    )
    edit_all = post_form(
        client,
        [
            FormPartData("image", PNG, "in.png", "image/png"),
            FormPartData("mask", mask(0), "mask.png", "image/png"),
            FormPartData("prompt", b"make it teal"),
        ],
    )
    assert image_of(edit_all) == image_of(edit(client, [PNG], field="image"))


def test_raw_multipart_with_repeated_image_brackets(client: httpx.Client) -> None:
    boundary = "imgtrace-test-boundary"
    body = b"".join(
        [
            b"--" + boundary.encode() + b"\r\n"
            b'Content-Disposition: form-data; name="image[]"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + PNG + b"\r\n",
            b"--" + boundary.encode() + b"\r\n"
            b'Content-Disposition: form-data; name="image[]"; filename="b.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + OTHER + b"\r\n",
            b"--" + boundary.encode() + b"\r\n"
            b'Content-Disposition: form-data; name="prompt"\r\n\r\nmake it teal\r\n',
            b"--" + boundary.encode() + b"--\r\n",
        ]
    )
    response = client.post(
        "/v1/images/edits",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert image_of(response) == image_of(edit(client, [PNG, OTHER]))
    assert image_of(response) != image_of(edit(client, [PNG]))


def test_response_format_url_serves_the_images_from_the_content_route(
    client: httpx.Client, fast: Server
) -> None:
    as_b64 = edit(client, [PNG], n="2", output_format="webp")
    as_url = edit(client, [PNG], n="2", output_format="webp", response_format="url")
    assert as_url.status_code == 200, as_url.text
    items = as_url.json()["data"]
    assert all(set(item) == {"url", "revised_prompt"} for item in items)
    assert items[0]["url"] == f"{fast.url}/v1/images/{as_url.json()['id']}/content"
    assert items[1]["url"].endswith("/content?variant=1")
    for index, item in enumerate(items):
        image = client.get(item["url"])
        assert image.headers["content-type"] == "image/webp"
        assert image.content == image_of(as_b64, index)
    assert_error(client.get(items[1]["url"].replace("variant=1", "variant=2")), 404)
    assert_error(client.get("/v1/images/0123abcd/content"), 404)
    assert_error(client.post(items[0]["url"]), 405)


def test_generations_use_the_same_engine(client: httpx.Client) -> None:
    response = client.post("/v1/images/generations", json={"prompt": "a red fox", "size": "64x32"})
    image = decode(image_of(response))
    assert image.size == (64, 32)
    again = client.post(
        "/v1/images/generations",
        json={"prompt": "a red fox", "width": 64, "height": 32, "seed": 1024},
    )
    assert image_of(again) == image_of(response)
    default = client.post(
        "/v1/images/generations",
        json={"prompt": "a red fox", "extra_body": {"num_inference_steps": 2}},
    )
    assert default.json()["size"] == "1024x1024"
    assert_error(
        client.post(
            "/v1/images/generations", content=b"{nope", headers={"content-type": "application/json"}
        ),
        400,
    )
    assert_error(client.post("/v1/images/generations", json=["prompt"]), 400)
    assert_error(client.post("/v1/images/generations", json={"prompt": "x", "n": 11}), 400, "n")


def test_a_large_edit_is_cheap_and_correct(client: httpx.Client) -> None:
    big = Image.new("RGB", (1024, 1024), (90, 30, 160))
    response = client.post(
        "/v1/images/edits",
        files=[("image", ("big.jpg", _jpeg(big), "image/jpeg"))],
        data={"prompt": "brighter", "size": "1024x1024"},
    )
    assert decode(image_of(response)).size == (1024, 1024)


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()
