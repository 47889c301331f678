"""`imgtrace export aiperf-input`: the single_turn shape, and export -> import keeps the trace."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from source_fixtures import Cli, Open, png

from recorder import export_aiperf_input, import_aiperf_input
from recorder._aiperf import form_value
from recorder._aiperf_export import _json_value
from traces import (
    FilePart,
    Header,
    JsonBody,
    MultipartBody,
    Request,
    TextField,
    TraceReader,
    TraceWriter,
)


def summary(request: Request) -> tuple[str, list[str], dict[str, str], int]:
    """(prompt, image digests, other fields, offset): what a round trip must keep."""
    assert isinstance(request.body, MultipartBody)
    texts = {p.name: p.value for p in request.body.parts if isinstance(p, TextField)}
    images = [p.blob for p in request.body.parts if isinstance(p, FilePart) and p.name != "mask"]
    prompt = texts.pop("prompt")
    return prompt, images, texts, request.offset_ns


SYNTH = (
    "--count",
    "12",
    "--seed",
    "21",
    "--image-size",
    "48x32,32x32",
    "--image-format",
    "png,jpeg",
    "--images-per-request",
    "1@3,2@1",
    "--steps",
    "4,8",
    "--guidance-scale",
    "uniform(1,5)",
    "--output-format",
    "png,none",
    "--reuse",
    "0.3",
)


def test_export_then_import_keeps_prompts_images_parameters_and_timing(
    tmp_path: Path, cli: Cli, open_trace: Open
) -> None:
    trace = tmp_path / "synth.imgtrace"
    assert cli("synth", "-o", str(trace), *SYNTH)[0] == 0
    original = [summary(r) for r in open_trace(trace)[1]]
    for extra in ([], ["--images-dir", str(tmp_path / "images")]):
        exported = tmp_path / f"export{len(extra)}.jsonl"
        code, _, err = cli(
            "export", "aiperf-input", str(trace), "-o", str(exported), "--keep-model", *extra
        )
        assert code == 0, err
        assert ("AIPerf decodes and re-encodes every image file" in err) == bool(extra)
        back = tmp_path / f"back{len(extra)}.imgtrace"
        code, _, err = cli("import", "aiperf-input", str(exported), "-o", str(back), "--as-written")
        assert code == 0, err
        assert [summary(r) for r in open_trace(back)[1]] == original
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert len(lines) == 12
    first = lines[0]
    assert first["timestamp"] == 0 and isinstance(first["text"], str)
    assert first["extra"]["model"] == "black-forest-labs/FLUX.2-klein-4B"
    assert first["extra"]["num_inference_steps"] in (4, 8)  # numbers stay numbers
    assert all("image" in line or len(line["images"]) == 2 for line in lines)
    # Relative to the JSONL file, and written once per digest.
    single = next(line["image"] for line in lines if "image" in line)
    assert not Path(single).is_absolute() and (tmp_path / single).is_file()
    distinct = {digest for _, images, _, _ in original for digest in images}
    assert len(list((tmp_path / "images").iterdir())) == len(distinct)


def test_default_export_is_what_aiperf_sends_back(
    tmp_path: Path, cli: Cli, open_trace: Open
) -> None:
    """Inline data URLs and no pinned model: importing it as AIPerf sends it gives the trace's
    images byte for byte (the first of each request, as AIPerf's image_edit sends only that)."""
    trace = tmp_path / "synth.imgtrace"
    assert cli("synth", "-o", str(trace), *SYNTH)[0] == 0
    original = [summary(r) for r in open_trace(trace)[1]]
    exported = tmp_path / "e.jsonl"
    code, out, err = cli("export", "aiperf-input", str(trace), "-o", str(exported), "--json", "-")
    assert code == 0, err
    assert "warning" not in err and "model left out of 12 requests" in err
    counts = json.loads(out)
    assert counts["images"] == sum(len(images) for _, images, _, _ in original)
    assert counts["models_left_out"] == 12
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert all("model" not in line.get("extra", {}) for line in lines)
    back = tmp_path / "back.imgtrace"
    model = "black-forest-labs/FLUX.2-klein-4B"
    code, out, err = cli(
        "import", "aiperf-input", str(exported), "-o", str(back), "--model", model, "--json", "-"
    )
    assert code == 0, err
    assert "images beyond the first of a line left out" in err  # one request has two
    assert json.loads(out)["images"] == 12
    for (prompt, images, texts, offset), request in zip(original, open_trace(back)[1], strict=True):
        assert summary(request) == (prompt, images[:1], texts, offset)


def test_images_dir_warns_about_files_aiperf_refuses(tmp_path: Path, cli: Cli) -> None:
    trace = tmp_path / "synth.imgtrace"
    args = ("--count", "3", "--seed", "2", "--image-size", "16x16", "--image-format", "webp")
    assert cli("synth", "-o", str(trace), *args)[0] == 0
    code, _, err = cli(
        "export",
        "aiperf-input",
        str(trace),
        "-o",
        str(tmp_path / "e.jsonl"),
        "--images-dir",
        str(tmp_path / "imgs"),
    )
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("imgtrace: warning: ")]
    assert len(warnings) == 2
    assert "JPEG quality 85" in warnings[0]
    assert "3 images are neither PNG nor JPEG: AIPerf refuses such files" in warnings[1]


def test_export_inline_data_urls_and_absolute_paths(tmp_path: Path, cli: Cli) -> None:
    trace = tmp_path / "synth.imgtrace"
    assert (
        cli("synth", "-o", str(trace), "--count", "2", "--seed", "1", "--image-size", "16x16")[0]
        == 0
    )
    code, out, _ = cli("export", "aiperf-input", str(trace), "-o", "-")
    assert code == 0
    first = json.loads(out.splitlines()[0])
    assert first["image"].startswith("data:image/png;base64,")
    exported = tmp_path / "e.jsonl"
    assert (
        cli(
            "export",
            "aiperf-input",
            str(trace),
            "-o",
            str(exported),
            "--images-dir",
            str(tmp_path / "imgs"),
            "--absolute-paths",
        )[0]
        == 0
    )
    assert Path(json.loads(exported.read_text().splitlines()[0])["image"]).is_absolute()


def test_masks_and_non_edits_are_counted(tmp_path: Path, cli: Cli) -> None:
    trace = tmp_path / "mixed.imgtrace"
    with TraceWriter(trace, Header(source="test")) as writer:
        image = writer.add_blob(png(1))
        mask = writer.add_blob(png(2))
        parts = (
            TextField(name="prompt", value="x"),
            FilePart(name="image", blob=image, size=1, filename="a.png"),
            FilePart(name="mask", blob=mask, size=1, filename="m.png"),
        )
        writer.write(
            Request(id="a", offset_ns=0, path="/v1/images/edits", body=MultipartBody(parts=parts))
        )
        writer.write(
            Request(
                id="b",
                offset_ns=5,
                path="/v1/images/generations",
                body=JsonBody(value={"prompt": "x"}),
            )
        )
    code, _, err = cli("export", "aiperf-input", str(trace), "-o", str(tmp_path / "e.jsonl"))
    assert code == 0, err
    assert "1 requests" in err and "1 entries skipped" in err and "1 masks dropped" in err


@given(st.text(max_size=30))
def test_form_values_survive_json(text: str) -> None:
    assert form_value(json.loads(json.dumps(_json_value(text)))) == [text]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(0, 10**15), min_size=1, max_size=4))
def test_offsets_survive_export_and_import(tmp_path: Path, offsets: list[int]) -> None:
    offsets = sorted(offsets)
    offsets = [o - offsets[0] for o in offsets]  # imports count from the earliest timestamp
    trace, exported, back = (tmp_path / n for n in ("t.imgtrace", "e.jsonl", "b.imgtrace"))
    with TraceWriter(trace, Header(source="test"), force=True) as writer:
        image = writer.add_blob(png(1))
        for i, offset in enumerate(offsets):
            parts = (
                TextField(name="prompt", value="x"),
                FilePart(name="image", blob=image, size=1, filename="a.png"),
            )
            writer.write(
                Request(
                    id=str(i),
                    offset_ns=offset,
                    path="/v1/images/edits",
                    body=MultipartBody(parts=parts),
                )
            )
    export_aiperf_input(trace, str(exported), force=True)
    import_aiperf_input(exported, back, force=True)
    with TraceReader(back) as reader:
        assert [r.offset_ns for r in reader.requests()] == offsets
