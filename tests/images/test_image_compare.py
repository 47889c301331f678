"""compare_run_images on real run files written with TraceWriter: verdicts, noise, bad input."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from images_support import Output, jpeg, png, scene, write_run, write_trace

from analyzer._errors import AnalysisError
from analyzer._images import ImageReport, ImageThresholds, compare_run_images
from analyzer._rules import ImageRule
from imgtrace._commands._image_flags import add_image_arguments, thresholds_from_args
from traces import ErrorInfo, UsageError

SIZE = 192


def _noisy(pixels: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, pixels.shape)
    return np.clip(pixels + noise, 0, 255).astype(np.uint8)


def _patched(pixels: np.ndarray) -> np.ndarray:
    out = pixels.copy()
    out[40:72, 40:72] = 255 - out[40:72, 40:72]
    return out


def _bomb() -> bytes:
    from test_image_metrics import _png_claiming

    return _png_claiming(100_000, 100_000)


def _compare(tmp: Path, noise: bool = False, **kwargs: object) -> ImageReport:
    options: dict[str, object] = {"thresholds": ImageThresholds(), "jobs": 1,
                                  "assets_dir": None, "force": False}  # fmt: skip
    options.update(kwargs)
    return compare_run_images(
        tmp / "a.run",
        tmp / "b.run",
        tmp / "a2.run" if noise else None,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A base, a candidate and an A/A noise run covering every verdict."""
    pictures = [scene(SIZE, seed=i) for i in range(10)]
    requests = [(f"r{i}", f"prompt {i}", png(p)) for i, p in enumerate(pictures)]
    trace = write_trace(tmp_path / "t.imgtrace", requests)
    a = {f"r{i}": [png(p)] for i, p in enumerate(pictures)}
    a["r6"] = [png(pictures[6]), png(pictures[7])]
    a["r7"] = [png(pictures[7]), png(pictures[8])]
    b: dict[str, Output] = dict(a)
    b["r1"] = [png(pictures[1], compress_level=9)]  # identical pixels
    b["r2"] = [png(_patched(pictures[2]))]  # changed
    b["r3"] = ErrorInfo(kind="timeout", message="read timed out")  # missing
    b["r4"] = [b"<html>bad gateway</html>"]  # undecodable
    b["r5"] = [_bomb()]  # decompression bomb
    b["r6"] = [png(pictures[6])]  # count 2 -> 1
    b["r7"] = [png(pictures[8]), png(pictures[7])]  # same outputs, other order
    b["r8"] = [png(_noisy(pictures[8], 10.0, 1))]  # visible grain, less than the A/A noise
    b["r9"] = 500
    a2 = dict(a)
    a2["r8"] = [png(_noisy(pictures[8], 14.0, 2))]
    write_run(tmp_path / "a.run", a, trace=trace)
    write_run(tmp_path / "b.run", b, trace=trace)
    write_run(tmp_path / "a2.run", a2, trace=trace)
    return tmp_path


def _verdicts(report: ImageReport) -> dict[tuple[str, int], str]:
    return {(p.request_id, p.output): p.verdict for p in report.pairs}


def test_every_verdict_without_noise(runs: Path) -> None:
    report = _compare(runs)
    verdicts = _verdicts(report)
    assert verdicts[("r0", 0)] == "identical-bytes"
    assert verdicts[("r1", 0)] == "identical-pixels"
    assert verdicts[("r2", 0)] == "changed"
    assert verdicts[("r3", 0)] == "missing"
    assert verdicts[("r4", 0)] == "undecodable"
    assert verdicts[("r5", 0)] == "undecodable"
    assert verdicts[("r8", 0)] == "changed"
    assert verdicts[("r9", 0)] == "missing"
    reasons = {p.request_id: p.reason for p in report.pairs}
    assert "timeout" in reasons["r3"] and "HTTP 500" in reasons["r9"]
    assert "decompression bomb" in reasons["r5"]
    assert "not an image" in reasons["r4"]
    # Mismatched counts: the common output is matched and compared, the extra one is flagged.
    r6 = sorted((p.output, p.verdict, p.reason) for p in report.pairs if p.request_id == "r6")
    assert r6 == [
        (0, "identical-bytes", ""),
        (1, "layout-differs", "count: A returned 2 images, B 1"),
    ]
    # n > 1 outputs are matched by pHash, not by index.
    r7 = sorted((p.output, p.output_b, p.verdict) for p in report.pairs if p.request_id == "r7")
    assert r7 == [(0, 1, "identical-bytes"), (1, 0, "identical-bytes")]
    assert report.pairs[0].verdict == "undecodable"  # most severe first
    assert report.noise_summary is None
    verdict_table = report.tables()[0]
    assert any("--noise BASE2" in note for note in verdict_table.footnotes)
    # One request class, as in the latency tables: nothing in the trace varies.
    assert verdict_table.rows[0][:2] == ["all", str(len(report.pairs))]


def test_noise_run_calibrates_the_verdicts(runs: Path) -> None:
    report = _compare(runs, noise=True)
    verdicts = _verdicts(report)
    assert verdicts[("r8", 0)] == "within-noise"
    assert verdicts[("r2", 0)] == "changed"
    summary = report.noise_summary
    assert summary is not None
    by_id = {p.request_id: p for p in report.pairs}
    assert by_id["r8"].d_aa is not None and by_id["r8"].d_ab is not None
    assert by_id["r8"].d_ab < by_id["r8"].d_aa
    assert by_id["r0"].d_aa == 0.0 and by_id["r0"].noise_verdict == "identical-bytes"
    # A' equals A except r8: the determinism line counts exactly that, over all 12 A outputs
    # (also those whose B failed).
    assert summary.aa_pairs == 12
    assert summary.aa_pixel_identical == 11
    assert by_id["r3"].verdict == "missing" and by_id["r3"].noise_verdict == "identical-bytes"
    # Raw B changes: r2, r8 and r6's extra output, of 8 comparable pairs; A/A: r8 of 12.
    assert summary.changed_share_b == pytest.approx(3 / 8)
    assert summary.changed_share_aa == pytest.approx(1 / 12)
    # The shares alone would pass Diffy's rule, but 7 requests with one real change are not
    # evidence: the paired test does not say B moved beyond A', so the gate stays quiet.
    assert summary.wilcoxon_p is not None and summary.wilcoxon_p >= 0.05
    assert not summary.gate
    assert "changes more outputs" not in summary.verdict
    names = [t.title for t in report.tables()]
    assert "Output images: b.run (B) against a.run (A), against the A/A noise" in names


def test_rules_counts_and_json(runs: Path) -> None:
    report = _compare(runs)
    counts = report.counts()
    assert counts["changed"] == 2 and counts["missing"] == 2
    message = report.violation(ImageRule("changed", ">", 0, False))
    assert message is not None and "2 of 12 outputs are changed" in message
    assert report.violation(ImageRule("changed", ">", 50, True)) is None
    assert report.violation(ImageRule("changed", ">", 10, True)) is not None
    assert report.violation(ImageRule("layout", ">=", 1, False)) is not None  # alias
    with pytest.raises(UsageError, match="unknown image verdict"):
        report.violation(ImageRule("blurry", ">", 0, False))
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert data["counts"]["undecodable"] == 2
    assert len(data["pairs"]) == len(report.pairs)
    first = next(p for p in data["pairs"] if p["request_id"] == "r2")
    assert first["metrics"]["ssim"] < 1 and first["a"]["width"] == SIZE


def test_process_pool_gives_the_same_answer(runs: Path) -> None:
    serial = _compare(runs, noise=True)
    parallel = _compare(runs, noise=True, jobs=2)
    assert [(p.request_id, p.output, p.verdict, p.d_ab) for p in serial.pairs] == [
        (p.request_id, p.output, p.verdict, p.d_ab) for p in parallel.pairs
    ]


def test_missing_blobs_are_a_verdict_not_a_crash(tmp_path: Path) -> None:
    picture = png(scene(64))
    write_run(tmp_path / "a.run", {"r0": [picture]})
    write_run(tmp_path / "b.run", {"r0": [png(scene(64, seed=1))]}, missing_blobs=True)
    (pair,) = _compare(tmp_path).pairs
    assert pair.verdict == "undecodable"
    assert "missing from the file" in pair.reason


def test_assets_and_inputs(runs: Path) -> None:
    assets = runs / "report_files"
    report = _compare(runs, assets_dir=assets)
    assert report.notes == []
    rendered = report.rendered
    assert len(rendered) == len(report.pairs)
    changed = report.pairs.index(next(p for p in report.pairs if p.request_id == "r2"))
    cells = rendered[changed].cells
    assert {"input0", "a", "b", "mask", "heatmap"} <= set(cells)
    for cell in cells.values():
        assert (assets / cell.href).is_file()
    assert cells["mask"].thumb.startswith(b"\x89PNG")
    # An existing, non-empty assets folder is refused unless --force.
    with pytest.raises(UsageError, match="already exists.*--force"):
        _compare(runs, assets_dir=assets)
    _compare(runs, assets_dir=assets, force=True)


def test_moved_trace_leaves_the_input_column_empty(runs: Path) -> None:
    (runs / "t.imgtrace").rename(runs / "elsewhere.imgtrace")
    report = _compare(runs, assets_dir=runs / "files")
    assert any("trace this run replayed was not found" in note for note in report.notes)
    assert all("input0" not in row.cells for row in report.rendered.values())
    assert {p.request_class for p in report.pairs} == {"all"}


def test_wrong_trace_is_not_used_for_inputs(runs: Path) -> None:
    write_trace(runs / "t.imgtrace.new", [("x", "other", png(scene(32)))])
    (runs / "t.imgtrace.new").replace(runs / "t.imgtrace")
    report = _compare(runs)
    assert any("is not the trace this run replayed" in note for note in report.notes)


def test_trace_with_responses_works_as_base_and_bare_trace_is_refused(tmp_path: Path) -> None:
    from traces import Header, Request, Response, TraceWriter

    picture = png(scene(64))
    with TraceWriter(tmp_path / "prod.imgtrace", Header(kind="trace")) as writer:
        digest = writer.add_blob(picture, None)
        writer.write(Request(id="r0", offset_ns=0, path="/v1/images/edits",
                             response=Response(status=200, images=(digest,))))  # fmt: skip
    write_run(tmp_path / "b.run", {"r0": [picture]})
    report = compare_run_images(tmp_path / "prod.imgtrace", tmp_path / "b.run", None,
                                thresholds=ImageThresholds(), jobs=1, assets_dir=None,
                                force=False)  # fmt: skip
    assert [p.verdict for p in report.pairs] == ["identical-bytes"]
    write_trace(tmp_path / "bare.imgtrace", [("r0", "p", picture)])
    with pytest.raises(AnalysisError, match="without recorded responses"):
        compare_run_images(tmp_path / "bare.imgtrace", tmp_path / "b.run", None,
                           thresholds=ImageThresholds(), jobs=1, assets_dir=None,
                           force=False)  # fmt: skip


def test_arguments_defaults_and_ranges() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=3)  # the caller's own flag wins
    add_image_arguments(parser)
    assert thresholds_from_args(parser.parse_args([])) == ImageThresholds()
    args = parser.parse_args(["--visual-ssim", "0.99", "--gate-absolute", "1", "--image-rows", "5"])
    th = thresholds_from_args(args)
    assert (th.visual_min_ssim, th.gate_absolute, th.render_limit) == (0.99, 0.01, 5)
    with pytest.raises(UsageError, match="--image-threshold 2.0 is out of range"):
        thresholds_from_args(parser.parse_args(["--image-threshold", "2"]))
    colour = thresholds_from_args(parser.parse_args(
        ["--visual-cast", "3", "--visual-local", "7.5", "--noise-margin", "2"]
    ))  # fmt: skip
    assert (colour.visual_max_cast, colour.visual_max_local, colour.noise_margin) == (3, 7.5, 2)
    with pytest.raises(UsageError, match="--noise-margin 0.5 is out of range"):
        thresholds_from_args(parser.parse_args(["--noise-margin", "0.5"]))
    fresh = argparse.ArgumentParser()
    add_image_arguments(fresh)
    assert fresh.parse_args(["--jobs", "2"]).jobs == 2


def test_jpeg_outputs_note_the_format(tmp_path: Path) -> None:
    picture = scene(512)
    write_run(tmp_path / "a.run", {"r0": [png(picture)]})
    write_run(tmp_path / "b.run", {"r0": [jpeg(picture, 95)]})
    (pair,) = _compare(tmp_path).pairs
    assert (pair.verdict, pair.reason) == ("visually-identical", "format PNG vs JPEG")


def test_noise_elsewhere_does_not_hide_a_change_on_a_deterministic_request(tmp_path: Path) -> None:
    pictures = [scene(SIZE, seed=30 + i) for i in range(4)]
    a = {f"r{i}": [png(p)] for i, p in enumerate(pictures)}
    a2 = {f"r{i}": [png(_noisy(p, 18.0, i))] for i, p in enumerate(pictures[:3])}
    a2["r3"] = a["r3"]
    b = dict(a)
    b["r0"] = [png(_noisy(pictures[0], 12.0, 9))]
    b["r3"] = [png(_patched(pictures[3]))]
    for name, outputs in (("a", a), ("b", b), ("a2", a2)):
        write_run(tmp_path / f"{name}.run", outputs)
    report = _compare(tmp_path, noise=True)
    by_id = {p.request_id: p for p in report.pairs}
    # The A/A band is wide (three noisy requests), but r3's A and A' are identical.
    assert report.noise_summary is not None and report.noise_summary.aa_band is not None
    assert by_id["r3"].d_ab is not None and by_id["r3"].d_ab < report.noise_summary.aa_band
    assert by_id["r3"].verdict == "changed"
    assert by_id["r0"].verdict == "within-noise"


def _die(jobs: list[object]) -> None:
    os._exit(3)  # a worker killed mid-task, as the out-of-memory killer would


def test_a_dying_worker_is_one_clear_error(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import analyzer._images.compare as images

    tests_dir = str(Path(__file__).parents[1])
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != tests_dir])
    monkeypatch.setattr(images, "compare_in_worker", _die)
    with pytest.raises(AnalysisError, match="worker died.*--jobs 1"):
        _compare(runs, jobs=2)


def test_compare_reads_each_file_once_and_skips_image_bytes(
    runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `imgtrace compare` does in its own process: the latency rows of both runs, the
    # request classes from their trace, then the image comparison (blobs fetched by index).
    from collections import Counter

    from analyzer._load import load_rows
    from traces import TraceReader

    passes: Counter[tuple[str, frozenset[str] | None]] = Counter()
    located = TraceReader._located

    def counted(self: TraceReader, kinds: Any) -> Any:
        passes[(self.path.name, frozenset(kinds) if kinds else None)] += 1
        return located(self, kinds)

    monkeypatch.setattr(TraceReader, "_located", counted)
    for name in ("a.run", "b.run"):
        load_rows(runs / name)
    report = _compare(runs)
    assert report.requests  # the trace's inputs and classes were found
    # Notes (metadata learned after the header: interrupted, repetitions) are small; images not.
    wanted = frozenset({"request", "outcome", "note"})
    assert passes == {("a.run", wanted): 1, ("b.run", wanted): 1, ("t.imgtrace", wanted): 1}
