"""`imgtrace import aiperf-raw` and `aiperf-input` on files written to AIPerf's schemas."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from source_fixtures import START_NS, b64, png, raw_record, write_jsonl

from traces import (
    FilePart,
    MultipartBody,
    Request,
    TextField,
    TraceReader,
    encode_body,
    parse_multipart,
    restore_images,
)

Cli = Callable[..., tuple[int, str, str]]
Open = Callable[[Path], tuple[TraceReader, list[Request]]]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def texts(request: Request) -> dict[str, str]:
    assert isinstance(request.body, MultipartBody)
    return {p.name: p.value for p in request.body.parts if isinstance(p, TextField)}


def uploads(request: Request) -> list[FilePart]:
    assert isinstance(request.body, MultipartBody)
    return [p for p in request.body.parts if isinstance(p, FilePart)]


def test_raw_export_keeps_timing_payload_and_responses(
    tmp_path: Path, cli: Cli, open_trace: Open
) -> None:
    # Written out of order, as AIPerf's record processors finish them.
    rows = [
        raw_record(2, START_NS + 700_000_000, output=png(102)),
        raw_record(0, START_NS, output=png(100)),
        raw_record(
            1,
            START_NS + 300_000_000,
            status=None,
            error={"code": 500, "type": "InternalServerError", "message": "boom"},
        ),
        raw_record(9, START_NS - 5_000_000_000, phase="warmup", output=png(109)),
        raw_record(3, START_NS + 800_000_000, payload={"prompt": "a cat", "model": "m"}),
        raw_record(4, START_NS + 900_000_000, payload={"messages": [{"role": "user"}]}),
    ]
    source = write_jsonl(tmp_path / "profile_export_raw.jsonl", rows)
    out = tmp_path / "aiperf.imgtrace"
    code, _, err = cli("import", "aiperf-raw", str(source), "-o", str(out))
    assert code == 0, err
    assert "3 requests" in err and "2 entries skipped (not image edits)" in err
    assert "1 warmup requests skipped" in err
    reader, requests = open_trace(out)
    assert reader.header.source == "import:aiperf-raw"
    assert reader.header.start_wall_ns == START_NS
    assert [r.id for r in requests] == ["req-0", "req-1", "req-2"]
    assert [r.offset_ns for r in requests] == [0, 300_000_000, 700_000_000]
    assert [r.wall_ns for r in requests] == [
        START_NS,
        START_NS + 300_000_000,
        START_NS + 700_000_000,
    ]
    first = requests[0]
    assert texts(first) == {
        "prompt": "Make it snow",
        "model": "black-forest-labs/FLUX.2-klein-4B",
        "response_format": "b64_json",
        "n": "1",
        "size": "512x512",
        "num_inference_steps": "4",
        "guidance_scale": "1.0",
        "seed": "1000",
    }
    (image,) = uploads(first)
    assert image.blob == sha(png(0)) and image.filename == "image.png" and image.name == "image"
    assert image.content_type == "image/png"
    # The body re-encodes into multipart AIPerf's fields, in payload order.
    content_type, body = encode_body(first.body, reader.blob)
    names = [part.name for part in parse_multipart(body, content_type)]
    assert names == [
        "prompt",
        "model",
        "response_format",
        "n",
        "image",
        "size",
        "num_inference_steps",
        "guidance_scale",
        "seed",
    ]
    assert first.response is not None and first.response.status == 200
    assert first.response.done_ns == 250_000_000
    assert first.response.images == (sha(png(100)),)
    restored = restore_images(first.response.envelope, reader.blob)
    assert restored["data"][0]["b64_json"] == b64(png(100))
    failed = requests[1].response
    assert failed is not None and failed.status == 500 and failed.images == ()
    assert reader.metadata()["imported"]["skipped_warmup"] == 1


def test_raw_export_with_warmup_included(tmp_path: Path, cli: Cli, open_trace: Open) -> None:
    rows = [raw_record(0, START_NS), raw_record(1, START_NS - 10**9, phase="warmup")]
    source = write_jsonl(tmp_path / "raw.jsonl", rows)
    out = tmp_path / "t.imgtrace"
    assert cli("import", "aiperf-raw", str(source), "-o", str(out), "--include-warmup")[0] == 0
    requests = open_trace(out)[1]
    assert [r.id for r in requests] == ["req-1", "req-0"]
    assert [r.offset_ns for r in requests] == [0, 10**9]


def test_raw_export_without_response_status_is_an_error_record(
    tmp_path: Path, cli: Cli, open_trace: Open
) -> None:
    row = raw_record(
        0,
        START_NS,
        status=None,
        error={"code": None, "type": "ClientConnectorError", "message": "refused"},
    )
    source = write_jsonl(tmp_path / "raw.jsonl", [row])
    out = tmp_path / "t.imgtrace"
    assert cli("import", "aiperf-raw", str(source), "-o", str(out))[0] == 0
    response = open_trace(out)[1][0].response
    assert response is not None and response.status is None
    assert response.error is not None and response.error.kind == "connect"
    assert response.error.message == "refused"


def test_input_file_paths_data_urls_timestamps_and_extra(
    tmp_path: Path, cli: Cli, open_trace: Open
) -> None:
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "one.png").write_bytes(png(1))
    absolute = tmp_path / "two.png"
    absolute.write_bytes(png(2))
    lines = [
        {
            "text": "Convert this scene to a watercolor painting",
            "image": "refs/one.png",
            "timestamp": 1000,
        },
        {
            "text": "Add a hat",
            "image": str(absolute),
            "timestamp": 1250.5,
            "extra": {"seed": 7, "guidance_scale": 2.5, "prompt": "ignored", "watermark": False},
        },
        {
            "texts": ["From a list"],
            "images": [f"data:image/png;base64,{b64(png(3))}", "refs/one.png"],
            "delay": 100,
        },
        {"text": "no image here"},
    ]
    source = write_jsonl(tmp_path / "inputs.jsonl", lines)
    out = tmp_path / "t.imgtrace"
    code, _, err = cli(
        "import",
        "aiperf-input",
        str(source),
        "-o",
        str(out),
        "--model",
        "flux",
        "--extra-inputs",
        "size:512x512",
        "--extra-inputs",
        "num_inference_steps:4",
    )
    assert code == 0, err
    assert "3 requests" in err and "1 entries skipped (not image edits)" in err
    _, requests = open_trace(out)
    assert [r.offset_ns for r in requests] == [0, 250_500_000, 350_500_000]
    first, second, third = requests
    assert texts(first) == {
        "model": "flux",
        "prompt": "Convert this scene to a watercolor painting",
        "size": "512x512",
        "num_inference_steps": "4",
        "response_format": "b64_json",
        "n": "1",
    }
    # Pillow-written PNGs re-encode to the same bytes (AIPerf saves at level 6 as Pillow does).
    assert [u.blob for u in uploads(first)] == [sha(png(1))]
    # AIPerf names every upload by its type, whatever the file was called.
    assert uploads(first)[0].name == "image" and uploads(first)[0].filename == "image.png"
    assert texts(second)["prompt"] == "Add a hat"
    assert texts(second)["seed"] == "7" and texts(second)["guidance_scale"] == "2.5"
    assert texts(second)["watermark"] == "false"
    assert [u.blob for u in uploads(second)] == [sha(png(2))]
    # AIPerf's image_edit sends the first image of a turn only, as `image`.
    assert [u.blob for u in uploads(third)] == [sha(png(3))]
    assert [u.name for u in uploads(third)] == ["image"]
    # Where the trace is not what AIPerf would send is said, once per kind.
    assert "1 images beyond the first" in err
    assert "image paths were found beside the input file" in err


def test_input_file_without_timing_uses_rate(tmp_path: Path, cli: Cli, open_trace: Open) -> None:
    (tmp_path / "a.png").write_bytes(png(1))
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "x", "image": "a.png"}] * 4)
    out = tmp_path / "t.imgtrace"
    assert cli("import", "aiperf-input", str(source), "-o", str(out), "--rate", "4")[0] == 0
    assert [r.offset_ns for r in open_trace(out)[1]] == [0, 250_000_000, 500_000_000, 750_000_000]


def test_json_summary(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "a.png").write_bytes(png(1))
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "x", "image": "a.png"}, {"text": "y"}])
    code, out, _ = cli(
        "import", "aiperf-input", str(source), "-o", str(tmp_path / "t.imgtrace"), "--json", "-"
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["requests"] == 1 and summary["skipped_not_edit"] == 1
