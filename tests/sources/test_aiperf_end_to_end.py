"""imgtrace and the real AIPerf, end to end: what AIPerf sends is what the imports build.

Runs only when `IMGTRACE_AIPERF` names an `aiperf` executable (AIPerf 0.13, installed in a venv
of its own); offline, `IMGTRACE_AIPERF_TOKENIZER` names a local tokenizer directory (see
docs/tutorials/with-aiperf.md). One AIPerf run of four requests against `imgtrace serve`,
recorded through `imgtrace record`, then every claim of docs/importing.md about AIPerf is
checked against that recording.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from servers import Started, start_record, start_serve
from source_fixtures import png, run_cli

from traces import MultipartBody, Request, TextField, TraceReader

AIPERF = os.environ.get("IMGTRACE_AIPERF", "")
TOKENIZER = os.environ.get("IMGTRACE_AIPERF_TOKENIZER", "builtin")
MODEL = "black-forest-labs/FLUX.2-klein-4B"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (AIPERF and os.access(AIPERF, os.X_OK)),
        reason="IMGTRACE_AIPERF does not name an aiperf executable (AIPerf 0.13 in its own "
        "venv; see docs/tutorials/with-aiperf.md)",
    ),
]


def _body(request: Request) -> list[tuple[str, str, str | None]]:
    """(name, value or blob digest, file name) per part, in order: what went on the wire."""
    assert isinstance(request.body, MultipartBody)
    return [
        (p.name, p.value, None) if isinstance(p, TextField) else (p.name, p.blob, p.filename)
        for p in request.body.parts
    ]


def _requests(path: Path) -> dict[str, Request]:
    """Requests by prompt (each prompt is unique in this test)."""
    with TraceReader(path) as reader:
        out: dict[str, Request] = {}
        for request in reader.requests():
            assert isinstance(request.body, MultipartBody)
            prompt = next(
                p.value
                for p in request.body.parts
                if isinstance(p, TextField) and p.name == "prompt"
            )
            out[prompt] = request
        return out


def test_aiperf_sends_what_the_imports_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The schedule: a synthetic trace exported as AIPerf would read it, plus a line with a JPEG
    # *file* and a per-line model, the two things AIPerf changes.
    trace = tmp_path / "synth.imgtrace"
    synth = ("--count", "3", "--seed", "5", "--image-size", "24x16", "--image-format", "png,webp")
    assert run_cli("synth", "-o", str(trace), *synth, "--rate", "20") == 0
    exported = tmp_path / "edits.jsonl"
    assert run_cli("export", "aiperf-input", str(trace), "-o", str(exported)) == 0
    photo = io.BytesIO()
    Image.open(io.BytesIO(png(9))).save(photo, "JPEG", quality=95)
    (tmp_path / "photo.jpeg").write_bytes(photo.getvalue())
    lines = exported.read_text().splitlines()
    extra_line = {
        "text": "a JPEG file",
        "image": "photo.jpeg",
        "model": "ignored",
        "timestamp": 400,
    }
    lines.append(json.dumps(extra_line))
    exported.write_text("\n".join(lines) + "\n")
    capsys.readouterr()

    server = start_serve("--load-time", "0", "--cold-start", "0")
    proxy: Started | None = None
    try:
        recording = tmp_path / "recorded.imgtrace"
        proxy = start_record("--upstream", server.url, "-o", str(recording))
        run = subprocess.run(
            [
                AIPERF,
                "profile",
                "--model",
                MODEL,
                "--tokenizer",
                TOKENIZER,
                "--url",
                proxy.url,
                "--endpoint-type",
                "image_edit",
                "--input-file",
                exported.name,
                "--custom-dataset-type",
                "single_turn",
                "--fixed-schedule",
                "--export-level",
                "raw",
                "--artifact-dir",
                "artifacts",
                "--ui",
                "none",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env={k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"},
        )
        assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    finally:
        if proxy is not None:
            proxy.process.send_signal(signal.SIGINT)
            try:
                proxy.process.wait(30)
            finally:
                proxy.stop()
        server.stop()
    sent = _requests(recording)
    assert len(sent) == 4

    # 13 and 15: data URLs arrive byte for byte, and the export pinned no model.
    original = _requests(trace)
    for prompt, request in original.items():
        images = [b for n, b, _ in _body(request) if n.startswith("image")]
        wire = _body(sent[prompt])
        assert [b for n, b, _ in wire if n == "image"] == images[:1]
        assert {n: v for n, v, f in wire if f is None}["model"] == MODEL

    # 14: import aiperf-input builds exactly what AIPerf sent, the JPEG file's re-encoding too.
    built = tmp_path / "built.imgtrace"
    code = run_cli(
        "import",
        "aiperf-input",
        str(exported),
        "-o",
        str(built),
        "--model",
        MODEL,
        "--aiperf-dir",
        str(tmp_path),
    )
    assert code == 0
    for prompt, request in _requests(built).items():
        assert _body(request) == _body(sent[prompt]), prompt
    jpeg = [b for n, b, _ in _body(sent["a JPEG file"]) if n == "image"]
    assert jpeg and jpeg[0] != _sha(photo.getvalue())  # AIPerf did re-encode the file

    # 16, 17, 18: the raw export imports without placeholders, with first-byte times; the
    # default export is named with what to do.
    artifacts = next((tmp_path / "artifacts").rglob("profile_export_raw.jsonl")).parent
    imported = tmp_path / "raw.imgtrace"
    assert (
        run_cli(
            "import", "aiperf-raw", str(artifacts / "profile_export_raw.jsonl"), "-o", str(imported)
        )
        == 0
    )
    for request in _requests(imported).values():
        assert all(value != "<redacted>" for _, value in request.headers)
        assert "x-session-affinity" not in {name.lower() for name, _ in request.headers}
        assert request.response is not None and request.response.status == 200
        assert request.response.first_byte_ns is not None
        assert _body(request) == _body(sent[_prompt(request)])
    capsys.readouterr()
    assert (
        run_cli(
            "import",
            "aiperf-raw",
            str(artifacts / "profile_export.jsonl"),
            "-o",
            str(tmp_path / "x.imgtrace"),
        )
        == 2
    )
    assert "--export-level raw" in capsys.readouterr().err


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _prompt(request: Request) -> str:
    assert isinstance(request.body, MultipartBody)
    return next(
        p.value for p in request.body.parts if isinstance(p, TextField) and p.name == "prompt"
    )
