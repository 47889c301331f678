"""`compare --shard I/N --images-out`, `merge` of the partial results, `compare --images-from`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgtrace import main
from traces import Header, Outcome, TraceWriter

REQUESTS = 24


def png(seed: int, change: float = 0.0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = (rng.random((24, 24, 3)) * 200).astype(np.uint8)
    if change:
        pixels[: int(24 * change)] += 40
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def write_run(path: Path, change: dict[int, float]) -> Path:
    """A run whose request i returned image i, changed by `change[i]` of its rows."""
    header = Header(kind="run", source="replay", trace_digest="c" * 64)
    with TraceWriter(path, header) as writer:
        for i in range(REQUESTS):
            digest = writer.add_blob(png(i, change.get(i, 0.0)), "image/png")
            writer.write(
                Outcome(
                    request_id=f"r{i:03d}",
                    seq=i,
                    intended_ns=i * 1_000_000,
                    sent_ns=i * 1_000_000,
                    done_ns=i * 1_000_000 + 5_000_000 + i,
                    status=200,
                    images=(digest,),
                )
            )
    return path


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path, Path]:
    base = write_run(tmp_path / "base.imgtrace", {})
    noise = write_run(tmp_path / "noise.imgtrace", dict.fromkeys(range(0, REQUESTS, 4), 0.3))
    cand = write_run(tmp_path / "cand.imgtrace", dict.fromkeys(range(0, REQUESTS, 3), 0.3))
    return base, cand, noise


def test_sharded_image_comparison_equals_the_whole(
    runs: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand, noise = map(str, runs)
    whole = tmp_path / "whole.json"
    code = main(["compare", base, cand, "--noise", noise, "--json", str(whole), "--jobs", "1"])
    assert code in (0, 1)
    parts = []
    for index in range(3):
        part = tmp_path / f"images-{index}.json"
        assert main(["compare", base, cand, "--noise", noise, "--shard", f"{index}/3",
                     "--images-out", str(part), "--jobs", "1"]) == 0  # fmt: skip
        parts.append(str(part))
    sizes = [len(json.loads(Path(p).read_text())["pairs"]) for p in parts]
    assert sum(sizes) == REQUESTS and all(sizes)
    merged = tmp_path / "images.json"
    assert main(["merge", *parts, "-o", str(merged)]) == 0
    spread = tmp_path / "spread.json"
    again = main(["compare", base, cand, "--noise", noise, "--images-from", str(merged),
                  "--json", str(spread)])  # fmt: skip
    assert again == code
    first, second = json.loads(whole.read_text()), json.loads(spread.read_text())
    counts = first["images"][0]["counts"]
    assert counts["within-noise"] and counts["changed"] and counts["identical-bytes"], counts
    assert first["images"] == second["images"]
    assert first == second


def one_line_error(capsys: pytest.CaptureFixture[str], code: int, fragment: str) -> None:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imgtrace: error: "), err
    assert fragment in lines[0], lines[0]


def test_partial_image_results_must_be_complete_and_of_one_comparison(
    runs: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand, noise = map(str, runs)
    parts = {}
    for name, runs_given in (("a", [base, cand]), ("b", [base, noise])):
        for index in range(2):
            part = tmp_path / f"{name}-{index}.json"
            assert main(["compare", *runs_given, "--shard", f"{index}/2", "--images-out",
                         str(part), "--jobs", "1"]) == 0  # fmt: skip
            parts[name, index] = str(part)
    capsys.readouterr()
    out = str(tmp_path / "m.json")
    code = main(["merge", parts["a", 0], "-o", out])
    one_line_error(capsys, code, "at least two inputs")
    code = main(["merge", parts["a", 0], parts["a", 0], "-o", out])
    one_line_error(capsys, code, "image shard 0/2 is given twice")
    code = main(["merge", parts["a", 0], parts["b", 1], "-o", out])
    one_line_error(capsys, code, "shards of different comparisons (cand differs)")
    code = main(["merge", parts["a", 0], base, "-o", out])
    one_line_error(capsys, code, "cannot merge partial image results with trace or run files")
    code = main(["compare", base, cand, "--images-from", parts["a", 0]])
    one_line_error(capsys, code, "merge every shard first")
    assert main(["merge", parts["b", 0], parts["b", 1], "-o", out]) == 0
    capsys.readouterr()
    code = main(["compare", base, cand, "--images-from", out])
    one_line_error(capsys, code, f"compares CAND {noise}, not {cand}")
    code = main(["compare", base, cand, "--shard", "0/2"])
    one_line_error(capsys, code, "--shard I/N and --images-out FILE go together")
    code = main(["compare", base, cand, "--shard", "3/2", "--images-out", out, "--force"])
    one_line_error(capsys, code, "--shard 3/2")
