"""Real clients against a real server: the official openai SDK, and httpx's async client."""

from __future__ import annotations

import base64

import anyio
import httpx
import openai
import pytest
from server_support import Server, decode, edit, make_png

PNG = make_png()
OTHER = make_png((64, 48), (20, 60, 220))


def test_openai_sdk_edit_with_an_image_list_and_extra_body(
    fast: Server, client: httpx.Client
) -> None:
    sdk = openai.OpenAI(base_url=fast.url + "/v1", api_key="sk-test", max_retries=0)
    result = sdk.images.edit(
        model="imgtrace-reference",
        image=[("a.png", PNG, "image/png"), ("b.png", OTHER, "image/png")],
        prompt="make it teal",
        n=2,
        size="64x64",
        extra_body={"seed": 7, "num_inference_steps": 2},
    )
    assert result.data is not None and len(result.data) == 2
    assert result.size == "64x64" and result.output_format == "png"
    images = [base64.b64decode(d.b64_json or "") for d in result.data]
    assert decode(images[0]).size == (64, 64)
    # The SDK sent image[] parts and the extra_body fields: httpx with the same fields agrees.
    same = edit(client, [PNG, OTHER], n="2", size="64x64", seed="7", num_inference_steps="2")
    assert [base64.b64decode(d["b64_json"]) for d in same.json()["data"]] == images
    other_seed = edit(client, [PNG, OTHER], n="2", size="64x64", num_inference_steps="2")
    assert base64.b64decode(other_seed.json()["data"][0]["b64_json"]) != images[0]


def test_openai_sdk_sees_our_errors(fast: Server) -> None:
    sdk = openai.OpenAI(base_url=fast.url + "/v1", api_key="sk-test", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(image=("a.png", PNG, "image/png"), prompt="x", n=11)
    assert caught.value.param == "n"
    assert "between 1 and 10" in caught.value.message


def test_openai_sdk_generate(fast: Server) -> None:
    sdk = openai.OpenAI(base_url=fast.url + "/v1", api_key="sk-test", max_retries=0)
    result = sdk.images.generate(prompt="a lighthouse", size="256x256", extra_body={"seed": 3})
    assert result.data is not None
    assert decode(base64.b64decode(result.data[0].b64_json or "")).size == (256, 256)


async def test_concurrent_async_requests_are_all_answered(fast: Server) -> None:
    results: list[int] = []
    async with httpx.AsyncClient(base_url=fast.url, timeout=30) as http:

        async def one(seed: int) -> None:
            response = await http.post(
                "/v1/images/edits",
                files=[("image", ("a.png", PNG, "image/png"))],
                data={"prompt": "teal", "seed": str(seed)},
            )
            results.append(response.status_code)

        async with anyio.create_task_group() as group:
            for seed in range(12):
                group.start_soon(one, seed)
    assert results == [200] * 12
