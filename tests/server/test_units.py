"""Unit seams of the server: option parsing, request fields, body limits, metrics text."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import imgtrace._server
from imgtrace._server._app import ReferenceApp
from imgtrace._server._config import ServerConfig, parse_bytes
from imgtrace._server._edit import decode_image
from imgtrace._server._errors import ApiError
from imgtrace._server._form import TrackedReceive, read_body, read_form
from imgtrace._server._metrics import Histogram, Metrics
from imgtrace._server._params import (
    DEFAULT_SEED,
    DEFAULT_STEPS,
    parse_edit_form,
    parse_generation_json,
)
from imgtrace._server._png import encode_png
from imgtrace._server._store import ImageStore
from traces import FormPartData, UsageError


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1048576", 1048576),
        ("500k", 500 * 1024),
        ("64MiB", 64 * 1024**2),
        ("64M", 64 * 1024**2),  # the same number `record --max-body 64M` means
        ("2 GB", 2 * 1024**3),
        ("1.5m", 3 * 2**19),
        ("10kib", 10240),
    ],
)
def test_parse_bytes(text: str, value: int) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "12q", "-5", "MiB", "1e6"])
def test_parse_bytes_refuses_nonsense(text: str) -> None:
    with pytest.raises(UsageError, match="not a byte count"):
        parse_bytes(text)


def test_config_scales_simulated_time() -> None:
    assert ServerConfig(speed=4).scaled(2.0) == 0.5
    assert ServerConfig(speed=float("inf")).scaled(2.0) == 0.0
    with pytest.raises(UsageError, match="--speed"):
        ServerConfig(speed=float("nan"))


def form(**fields: str) -> list[FormPartData]:
    image = FormPartData("image", b"\x89PNG", "a.png", "image/png")
    return [image] + [FormPartData(k, v.encode()) for k, v in fields.items()]


def test_edit_defaults_follow_sglang() -> None:
    request = parse_edit_form(form(prompt="x"))
    assert (request.seed, request.steps, request.guidance) == (DEFAULT_SEED, DEFAULT_STEPS, 1.0)
    assert (request.n, request.size, request.output_format) == (1, None, "png")


@settings(deadline=None, max_examples=60)
@given(st.integers(16, 4096), st.integers(16, 4096), st.sampled_from(["x", "X", "*"]))
def test_any_size_in_range_parses(width: int, height: int, sep: str) -> None:
    request = parse_edit_form(form(prompt="x", size=f"{width}{sep}{height}"))
    assert request.size == (width, height)


@settings(deadline=None, max_examples=60)
@given(st.text(max_size=12))
def test_size_text_either_parses_or_is_a_400_naming_size(text: str) -> None:
    try:
        parse_edit_form(form(prompt="x", size=text))
    except ApiError as error:
        assert (error.status, error.param) == (400, "size")


@settings(deadline=None, max_examples=60)
@given(st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=8)))
def test_n_either_parses_into_range_or_is_a_400(value: object) -> None:
    try:
        request = parse_generation_json({"prompt": "x", "n": value})
    except ApiError as error:
        assert (error.status, error.param) == (400, "n")
    else:
        assert 1 <= request.n <= 10


def test_generation_reads_sglang_extra_dicts() -> None:
    request = parse_generation_json(
        {"prompt": "x", "extra_body": {"seed": 9, "num_inference_steps": 8}, "seed": 5}
    )
    assert (request.seed, request.steps) == (5, 8)  # top level wins over the nested dict


class Chunks:
    """An ASGI receive that yields endless 64 KiB chunks and counts them."""

    def __init__(self, first: bytes = b"") -> None:
        self.first = first
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        body = self.first if self.calls == 1 and self.first else b"\1" * 65536
        return {"type": "http.request", "body": body, "more_body": True}


async def test_an_endless_upload_is_refused_after_the_limit_not_read_whole() -> None:
    receive = Chunks(b'--b\r\nContent-Disposition: form-data; name="image"\r\n\r\n')
    with pytest.raises(ApiError) as caught:
        await read_form(TrackedReceive(receive), "multipart/form-data; boundary=b", None, 1_000_000)
    assert caught.value.status == 413
    assert receive.calls <= 1_000_000 // 65536 + 2
    with pytest.raises(ApiError):
        await read_body(TrackedReceive(Chunks()), None, 100_000)


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    receive = Chunks()
    with pytest.raises(ApiError) as caught:
        await read_form(TrackedReceive(receive), "multipart/form-data; boundary=b", 10**9, 1000)
    assert (caught.value.status, receive.calls) == (413, 0)


def test_histogram_is_cumulative() -> None:
    histogram = Histogram((1, 2, 4))
    for value in (0.5, 1, 3, 9):
        histogram.observe(value)
    assert histogram.lines("h") == [
        'h_bucket{le="1"} 2',
        'h_bucket{le="2"} 2',
        'h_bucket{le="4"} 3',
        'h_bucket{le="+Inf"} 4',
        "h_sum 13.5",
        "h_count 4",
    ]


def test_metrics_text_is_well_formed_prometheus() -> None:
    metrics = Metrics()
    metrics.request_done("/v1/images/edits", 200, 0.2)
    metrics.fault("slow")
    sample = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+-]+$')
    for line in metrics.render().splitlines():
        assert line.startswith(("# HELP ", "# TYPE ")) or sample.match(line), line


@settings(deadline=None, max_examples=60)
@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.sampled_from([1, 2, 3, 4]),
    st.integers(1, 4),
    st.integers(0, 2**32 - 1),
)
def test_png_writer_round_trips_through_pillow(
    width: int, height: int, channels: int, block: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    # Blocky like the server's nearest-neighbour outputs, so both filters get exercised.
    pixels = np.repeat(np.repeat(small, block, axis=0), block, axis=1)
    image = Image.open(io.BytesIO(encode_png(pixels)))
    decoded = np.asarray(image)
    assert decoded.reshape(pixels.shape).tolist() == pixels.tolist()
    assert image.mode == {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]


def test_the_server_imports_no_other_tool_and_loads_lightly() -> None:
    package = Path(imgtrace._server.__file__).parent
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ("recorder", "replayer", "analyzer"), module
    # `imgtrace --help` stays fast: registering `serve` loads no numpy, Pillow or uvicorn.
    code = (
        "import sys, imgtrace._commands; "
        "print(sorted(m for m in ('numpy', 'PIL', 'uvicorn') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_image_store_evicts_the_oldest_beyond_its_budget() -> None:
    store = ImageStore(limit=10)
    first = store.put([b"abcd"], "image/png")
    second = store.put([b"efgh", b"ij"], "image/jpeg")
    assert store.get(first, 0) == (b"abcd", "image/png")
    assert store.get(second, 1) == (b"ij", "image/jpeg")
    assert store.get(second, 2) is None
    third = store.put([b"klmnop"], "image/png")
    assert store.get(first, 0) is None and store.get(second, 0) is None
    assert store.get(third, 0) == (b"klmnop", "image/png")
    huge = store.put([b"x" * 100], "image/png")  # bigger than the budget: kept alone
    assert store.get(huge, 0) is not None and store.get(third, 0) is None


async def test_an_unexpected_failure_is_an_openai_shaped_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = ReferenceApp(ServerConfig())

    def broken() -> str:
        raise RuntimeError("boom in the metrics")

    app.metrics.render = broken  # type: ignore[method-assign]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://server") as http:
        response = await http.get("/metrics")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal"
    assert "boom" not in response.text and "Traceback" not in response.text
    assert "boom in the metrics" in caplog.text


_FIELDS = [
    "image",
    "image[]",
    "url",
    "url[]",
    "mask",
    "prompt",
    "n",
    "size",
    "seed",
    "quality",
    "num_inference_steps",
    "guidance_scale",
    "output_format",
    "background",
    "response_format",
    "output_compression",
    "other",
]


@settings(deadline=None, max_examples=150)
@given(st.lists(st.tuples(st.sampled_from(_FIELDS), st.binary(max_size=40)), max_size=8))
def test_any_form_either_parses_or_is_a_4xx(parts: list[tuple[str, bytes]]) -> None:
    form = [FormPartData(name, data) for name, data in parts]
    try:
        parse_edit_form(form)
    except ApiError as error:
        assert 400 <= error.status < 500 and error.message


@settings(deadline=None, max_examples=150)
@given(st.binary(max_size=300), st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"]))
def test_any_bytes_either_decode_or_are_a_422(data: bytes, prefix: bytes) -> None:
    try:
        decode_image(prefix + data)
    except ApiError as error:
        assert error.status == 422 and error.param == "image"
