"""`imgtrace import aiperf-raw` and `aiperf-input` on files written to AIPerf's schemas."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from source_fixtures import START_NS, Cli, Open, b64, png, raw_record, write_jsonl

from traces import (
    FilePart,
    MultipartBody,
    Request,
    TextField,
    encode_body,
    parse_multipart,
    restore_images,
)


def import_input(
    cli: Cli, source: Path, out: Path, flags: str = "", *extra: str
) -> tuple[int, str, str]:
    """`imgtrace import aiperf-input SOURCE -o OUT` with the flags of the text and `extra`."""
    return cli("import", "aiperf-input", str(source), "-o", str(out), *flags.split(), *extra)


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
    flags = "--model flux --extra-inputs size:512x512 --extra-inputs num_inference_steps:4"
    code, _, err = import_input(cli, source, out, flags)
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


DATA = Path(__file__).parent / "data"


def test_raw_export_placeholders_are_never_kept_as_values(
    tmp_path: Path, cli: Cli, open_trace: Open
) -> None:
    source = write_jsonl(tmp_path / "raw.jsonl", [raw_record(0, START_NS, output=png(100))])
    out = tmp_path / "t.imgtrace"
    assert cli("import", "aiperf-raw", str(source), "-o", str(out))[0] == 0
    (request,) = open_trace(out)[1]
    headers = dict(request.headers)
    # Credentials stay visible as redacted (never sent on replay); other placeholders go.
    assert headers["Authorization"] == "[redacted]"
    assert headers["x-litellm-api-key"] == "[redacted]"
    assert "X-Session-Affinity" not in headers
    assert headers["X-Correlation-ID"] == "corr-0" and headers["Accept"] == "application/json"
    assert b"<redacted>" not in decompressed(out)


def decompressed(path: Path) -> bytes:
    import io

    import zstandard

    raw = path.read_bytes()
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True) as r:
        return r.read()


def test_raw_export_first_byte_and_failures_without_end_time(
    tmp_path: Path, cli: Cli, open_trace: Open
) -> None:
    body = '{"error":{"message":"boom","type":"server_error","param":null,"code":null}}'
    rows = [
        raw_record(0, START_NS, output=png(100)),
        raw_record(
            1,
            START_NS + 10**9,
            status=500,
            error={"code": 500, "type": "Internal Server Error", "message": body},
        ),
    ]
    source = write_jsonl(tmp_path / "raw.jsonl", rows)
    out = tmp_path / "t.imgtrace"
    code, stdout, err = cli("import", "aiperf-raw", str(source), "-o", str(out), "--json", "-")
    assert code == 0, err
    counts = json.loads(stdout)
    assert counts["images"] == 2 and counts["output_images"] == 1 and counts["responses"] == 2
    ok, failed = open_trace(out)[1]
    assert ok.response is not None
    assert ok.response.first_byte_ns == 200_000_000 and ok.response.done_ns == 250_000_000
    assert ok.response.content_type == "application/json"
    assert failed.response is not None and failed.response.status == 500
    # AIPerf stamps the end of a failed request at its start: no latency, not 0 ms.
    assert failed.response.done_ns is None and failed.response.first_byte_ns is None
    assert failed.notes["aiperf_no_end_time"] is True
    assert failed.response.envelope == json.loads(body)


def test_the_default_metrics_export_is_named_with_what_to_do(tmp_path: Path, cli: Cli) -> None:
    source = DATA / "aiperf-0.13-profile_export.jsonl"
    for extra in ([], ["--skip-bad"]):
        code, _, err = cli("import", "aiperf-raw", str(source), "-o", str(tmp_path / "t"), *extra)
        assert code == 2
        (line,) = err.strip().splitlines()
        assert line.startswith("imgtrace: error: ") and "profile_export.jsonl" in line
        assert "rerun AIPerf with --export-level raw" in line and "not image edits" not in line
    assert not (tmp_path / "t").exists()


def test_an_input_file_given_as_raw_export_is_named(tmp_path: Path, cli: Cli) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "x", "image": "a.png"}])
    code, _, err = cli("import", "aiperf-raw", str(source), "-o", str(tmp_path / "t"))
    assert code == 2 and "is an AIPerf single_turn input file" in err
    assert "imgtrace import aiperf-input" in err


def test_input_file_is_built_as_aiperf_sends_it(tmp_path: Path, cli: Cli, open_trace: Open) -> None:
    import io

    from PIL import Image

    workdir = tmp_path / "aiperf-run"
    workdir.mkdir()
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(png(4))).save(jpeg, "JPEG", quality=95)
    (workdir / "photo.jpeg").write_bytes(jpeg.getvalue())
    expected = io.BytesIO()
    Image.open(io.BytesIO(jpeg.getvalue())).save(expected, "JPEG", quality=85, subsampling=0)
    lines = [
        {
            "text": "from a file",
            "image": "photo.jpeg",
            "model": "ignored-by-aiperf",
            "extra": {"seed": 3, "n": 2, "sizes": [1, 2], "flag": True},
        },
    ]
    source = write_jsonl(tmp_path / "in.jsonl", lines)
    out = tmp_path / "t.imgtrace"
    code, _, err = import_input(
        cli, source, out, "--model flux --extra-inputs size:512x512", "--aiperf-dir", str(workdir)
    )
    assert code == 0, err
    assert "1 lines name a `model`: AIPerf ignores it" in err
    assert "1 image files were re-encoded as AIPerf does" in err
    reader, (request,) = open_trace(out)
    assert isinstance(request.body, MultipartBody)
    # AIPerf's payload order: its own fields, the image, then --extra-inputs and `extra`;
    # an extra that names one of its fields (n) replaces the value in place.
    assert [(p.name, getattr(p, "value", None)) for p in request.body.parts] == [
        ("prompt", "from a file"),
        ("model", "flux"),
        ("response_format", "b64_json"),
        ("n", "2"),
        ("image", None),
        ("size", "512x512"),
        ("seed", "3"),
        ("sizes", "[1, 2]"),
        ("flag", "true"),
    ]
    (image,) = uploads(request)
    assert image.filename == "image.jpg" and image.content_type == "image/jpeg"
    assert reader.blob(image.blob) == expected.getvalue() != jpeg.getvalue()
    assert ("accept", "application/json") in request.headers


def test_image_files_aiperf_refuses_are_refused(tmp_path: Path, cli: Cli) -> None:
    import io

    from PIL import Image

    webp = io.BytesIO()
    Image.open(io.BytesIO(png(4))).save(webp, "WEBP")
    (tmp_path / "a.webp").write_bytes(webp.getvalue())
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "x", "image": "a.webp"}])
    code, _, err = import_input(cli, source, tmp_path / "t", "", "--aiperf-dir", str(tmp_path))
    assert code == 2
    assert f"{source}:1: image file a.webp is WEBP: AIPerf accepts only PNG and JPEG files" in err
    # As written, the file is kept as it is.
    code, _, err = import_input(
        cli, source, tmp_path / "t", "--as-written", "--aiperf-dir", str(tmp_path)
    )
    assert code == 0, err


def test_show_names_aiperf_files_and_what_to_do(tmp_path: Path, cli: Cli) -> None:
    raw = write_jsonl(tmp_path / "profile_export_raw.jsonl", [raw_record(0, START_NS)])
    turns = write_jsonl(tmp_path / "in.jsonl", [{"text": "x", "image": "a.png"}])
    summary = tmp_path / "profile_export_aiperf.json"
    summary.write_text(json.dumps({"schema_version": "1.4", "aiperf_version": "0.13.0"}))
    expected = {
        DATA / "aiperf-0.13-profile_export.jsonl": "rerun AIPerf with --export-level raw",
        raw: "`imgtrace import aiperf-raw",
        turns: "`imgtrace import aiperf-input",
        summary: "AIPerf's summary (profile_export_aiperf.json)",
    }
    for path, fragment in expected.items():
        code, _, err = cli("show", str(path))
        assert code == 2
        (line,) = err.strip().splitlines()
        assert line.startswith(f"imgtrace: error: {path} at byte 0: not an imgtrace trace")
        assert fragment in line, line
