"""`imgtrace synth`: reproducible bytes, the requested mix, images, reuse, masks, user inputs."""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from source_fixtures import Cli, Open, png

from recorder import BUILTIN_PROMPTS
from recorder._synth import SYNTH_EPOCH_NS
from traces import FilePart, MultipartBody, Request, TextField, TraceReader, encode_body

SMALL = "--image-size 64x48"


Synth = Callable[..., tuple[TraceReader, list[Request]]]


@pytest.fixture
def synth(open_trace: Open, tmp_path: Path, cli: Cli) -> Synth:
    """`synth("--count 5 --seed 1", name="t.imgtrace")`: `imgtrace synth -o NAME` (in tmp_path)
    with the flags of the text (split at spaces) and `extra`; it must succeed. The file, open."""

    def run(flags: str, *extra: str, name: str = "t.imgtrace") -> tuple[TraceReader, list[Request]]:
        out = tmp_path / name
        code, _, err = cli("synth", "-o", str(out), *flags.split(), *extra)
        assert code == 0, err
        return open_trace(out)

    return run


def fields(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    assert isinstance(request.body, MultipartBody)
    for part in request.body.parts:
        value = part.value if isinstance(part, TextField) else part.blob
        out.setdefault(part.name, []).append(value)
    return out


def files(request: Request) -> list[FilePart]:
    assert isinstance(request.body, MultipartBody)
    return [p for p in request.body.parts if isinstance(p, FilePart)]


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path, synth: Synth) -> None:
    flags = f"--count 12 --rate 3 --image-format png,jpeg,webp --reuse 0.3 --mask 0.5 {SMALL}"
    synth(flags, "--seed", "5", name="a.imgtrace")
    synth(flags, "--seed", "5", name="b.imgtrace")
    synth(flags, "--seed", "6", name="c.imgtrace")
    a = (tmp_path / "a.imgtrace").read_bytes()
    assert a == (tmp_path / "b.imgtrace").read_bytes()
    assert a != (tmp_path / "c.imgtrace").read_bytes()


def test_header_records_the_intended_process_and_mix(synth: Synth) -> None:
    reader, requests = synth(
        f"--count 5 --arrival gamma --burstiness 0.5 --rate 4 --seed 1 {SMALL} --steps 4,8@3"
    )
    assert reader.header.source == "synthetic"
    assert reader.header.created_ns == SYNTH_EPOCH_NS
    meta = reader.metadata()["synth"]
    assert meta["arrival"] == "gamma"
    assert meta["rate"] == 4.0
    assert meta["burstiness"] == 0.5
    assert meta["schedule"] == [[0.0, 4.0]]
    assert meta["count"] == 5 and len(requests) == 5
    assert meta["seed"] == 1
    assert meta["params"]["num_inference_steps"] == "4,8@3"
    assert meta["images"]["size"] == "64x48"
    assert meta["prompts"] == f"built-in ({len(BUILTIN_PROMPTS)})"


def test_source_date_epoch_sets_creation_time(
    synth: Synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert synth(f"--count 1 --seed 1 {SMALL}")[0].header.created_ns == 1_700_000_000 * 10**9


def test_requests_are_well_formed_image_edits(synth: Synth) -> None:
    reader, requests = synth(
        "--count 20 --seed 3 --image-size 64x48,40x40 --image-format jpeg --size 512x512,1024x1024 "
        "--n 1,2 --guidance-scale uniform(1,3) --output-format png@1,webp@0"
    )
    assert [r.offset_ns for r in requests] == sorted(r.offset_ns for r in requests)
    assert requests[0].offset_ns == 0
    assert len({r.id for r in requests}) == 20
    prompts = set()
    for request in requests:
        f = fields(request)
        assert request.path == "/v1/images/edits"
        assert f["prompt"][0] in BUILTIN_PROMPTS
        prompts.add(f["prompt"][0])
        assert f["response_format"] == ["b64_json"]
        assert f["size"][0] in ("512x512", "1024x1024")
        assert f["n"][0] in ("1", "2")
        assert 1.0 <= float(f["guidance_scale"][0]) <= 3.0
        assert f["output_format"] == ["png"]  # weight 0 is never drawn
        assert int(f["seed"][0]) > 0
        (image,) = files(request)
        data = reader.blob(image.blob)
        assert hashlib.sha256(data).hexdigest() == image.blob
        assert image.content_type == "image/jpeg"
        with Image.open(io.BytesIO(data)) as decoded:
            assert decoded.format == "JPEG"
            assert decoded.size in ((64, 48), (40, 40))
        # The body encodes to multipart that carries its boundary in the content type.
        content_type, body = encode_body(request.body, reader.blob)
        assert content_type is not None and dict(request.headers)["content-type"] == content_type
        assert body.count(b"Content-Disposition") == len(request.body.parts)  # type: ignore[union-attr]
    assert len(prompts) > 5
    assert len({fields(r)["seed"][0] for r in requests}) == 20


def test_absent_fields_and_fixed_seed(synth: Synth) -> None:
    flags = f"--count 4 --seed 3 {SMALL} --model none --guidance-scale none --request-seed fixed:42"
    for request in synth(flags)[1]:
        f = fields(request)
        assert "model" not in f and "guidance_scale" not in f and "output_format" not in f
        assert f["seed"] == ["42"]
    unseeded = synth(f"--count 3 {SMALL} --request-seed none", name="u.imgtrace")[1]
    assert all("seed" not in fields(r) for r in unseeded)


def test_reuse_edits_earlier_references(synth: Synth) -> None:
    fresh = synth(f"--count 30 --seed 2 {SMALL}", name="fresh.imgtrace")[1]
    reused_reader, reused_requests = synth(
        f"--count 30 --seed 2 {SMALL} --reuse 0.7", name="reused.imgtrace"
    )
    fresh_digests = [files(r)[0].blob for r in fresh]
    reused_digests = [files(r)[0].blob for r in reused_requests]
    assert len(set(fresh_digests)) == 30
    assert 3 <= len(set(reused_digests)) <= 20  # 70 % reuse: about 9 distinct of 30
    # Each reference is stored once however often it is edited.
    assert reused_reader.index is not None
    assert len(reused_reader.index.blobs) == len(set(reused_digests))


def test_several_images_and_masks(synth: Synth) -> None:
    reader, requests = synth(f"--count 6 --seed 4 {SMALL} --images-per-request 2 --mask 1")
    for request in requests:
        names = [p.name for p in files(request)]
        assert names == ["image[]", "image[]", "mask"]
        mask = Image.open(io.BytesIO(reader.blob(files(request)[2].blob)))
        assert mask.mode == "RGBA" and mask.size == (64, 48)
        alpha = np.asarray(mask)[:, :, 3]
        assert (alpha == 0).any() and (alpha == 255).any()


def test_user_images_and_prompts(tmp_path: Path, synth: Synth) -> None:
    folder = tmp_path / "refs"
    folder.mkdir()
    mine = {hashlib.sha256(png(i)).hexdigest() for i in range(3)}
    for i in range(3):
        (folder / f"ref{i}.png").write_bytes(png(i))
    (folder / "notes.txt").write_text("not an image")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# my edits\nMake it pink\n\nAdd a hat\n", encoding="utf-8")
    requests = synth("--count 10 --seed 1", "--images", str(folder), "--prompts", str(prompts))[1]
    assert {files(r)[0].blob for r in requests} <= mine
    assert Counter(fields(r)["prompt"][0] for r in requests).keys() <= {"Make it pink", "Add a hat"}


def test_duration_bounds_offsets(synth: Synth) -> None:
    offsets = [r.offset_ns for r in synth(f"--duration 5 --rate 4 --seed 9 --reuse 1 {SMALL}")[1]]
    assert offsets and max(offsets) < 5 * 10**9
    assert 5 <= len(offsets) <= 40


def test_long_trace_rate_matches(synth: Synth) -> None:
    # --reuse 1 makes one image and reuses it, so a long trace is cheap to make.
    requests = synth("--count 4000 --rate 20 --seed 11 --reuse 1 --image-size 16x16")[1]
    offsets = np.array([r.offset_ns for r in requests]) / 1e9
    rate = (len(offsets) - 1) / offsets[-1]
    # Poisson count over the span: sd of the rate estimate is 20/sqrt(4000), about 0.32.
    assert abs(rate - 20) < 1.3
    gaps = np.diff(offsets)
    assert abs(gaps.std() / gaps.mean() - 1) < 0.08


def test_the_real_command(tmp_path: Path, imgtrace: Callable[..., object]) -> None:
    out = tmp_path / "t.imgtrace"
    result = imgtrace("synth", "-o", str(out), *f"--count 3 --rate 2 --seed 1 {SMALL}".split())
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    assert "wrote 3 requests" in result.stderr  # type: ignore[attr-defined]
    show = imgtrace("show", str(out))
    assert show.returncode == 0, show.stderr  # type: ignore[attr-defined]
    assert "synthetic" in show.stdout  # type: ignore[attr-defined]


def test_changing_the_images_keeps_timing_prompts_and_parameters(synth: Synth) -> None:
    common = "--count 15 --seed 8 --steps 4,8,28 --size 512x512,768x768"
    a = synth(f"{common} --image-size 32x32", name="a.imgtrace")[1]
    b = synth(f"{common} --image-size 48x48,32x32 --image-format jpeg,webp", name="b.imgtrace")[1]

    def shape(requests: list[Request]) -> list[tuple[int, dict[str, list[str]]]]:
        out = []
        for request in requests:
            f = fields(request)
            f.pop("image")
            out.append((request.offset_ns, f))
        return out

    assert shape(a) == shape(b)
