"""The HTML report's size budget (downscaled views unless asked for originals) and its sections."""

from __future__ import annotations

import re
from pathlib import Path

from images_support import png, scene, write_run, write_trace
from PIL import Image

from analyzer._html import assets_dir_for, write_html_report
from analyzer._images import ImageReport, ImageThresholds, compare_run_images
from analyzer._images.render import VIEW_SIDE
from analyzer._table import Table

SIDE = VIEW_SIDE + 256  # bigger than a view, so a view must be downscaled


def _runs(tmp: Path) -> tuple[Path, Path, Path, dict[str, bytes]]:
    ids = ["r0", "r1"]
    originals = {rid: png(scene(SIDE, seed=i)) for i, rid in enumerate(ids)}
    write_trace(tmp / "t.imgtrace", [(rid, "p", originals[rid]) for rid in ids])
    changed = scene(SIDE, seed=1)
    changed[40:200, 40:200] = 255 - changed[40:200, 40:200]
    write_run(tmp / "a.run", {rid: [originals[rid]] for rid in ids}, trace=tmp / "t.imgtrace")
    b = {"r0": [originals["r0"]], "r1": [png(changed)]}
    write_run(tmp / "b.run", b, trace=tmp / "t.imgtrace")
    write_run(tmp / "c.run", b, trace=tmp / "t.imgtrace")
    return tmp / "a.run", tmp / "b.run", tmp / "c.run", originals


def _compare(a: Path, b: Path, report: Path | None, full: bool) -> ImageReport:
    thresholds = ImageThresholds(full_images=full)
    assets = assets_dir_for(report) if report is not None else None
    return compare_run_images(
        a, b, None, thresholds=thresholds, jobs=1, assets_dir=assets, force=False
    )


def test_report_folder_holds_downscaled_views_by_default(tmp_path: Path) -> None:
    a, b, _, originals = _runs(tmp_path)
    report = tmp_path / "report.html"
    _compare(a, b, report, full=False)
    files = sorted(assets_dir_for(report).iterdir())
    pictures = [f for f in files if not f.name.startswith("row")]
    assert pictures and all(f.name.endswith("-view.jpg") for f in pictures)
    for picture in pictures:
        with Image.open(picture) as image:
            assert max(image.size) <= VIEW_SIDE
    assert all(f.read_bytes() not in originals.values() for f in files)
    heatmaps = [f for f in files if f.name.endswith("-heatmap.jpg")]
    with Image.open(heatmaps[0]) as image:
        assert max(image.size) <= VIEW_SIDE


def test_full_images_writes_the_originals_byte_for_byte(tmp_path: Path) -> None:
    a, b, _, originals = _runs(tmp_path)
    report = tmp_path / "report.html"
    _compare(a, b, report, full=True)
    written = {f.read_bytes() for f in assets_dir_for(report).iterdir()}
    assert set(originals.values()) <= written


def test_every_candidates_image_tables_sit_in_the_images_section(tmp_path: Path) -> None:
    a, b, c, _ = _runs(tmp_path)
    report = tmp_path / "report.html"
    first = _compare(a, b, report, full=False)
    second = _compare(a, c, None, full=False)
    latency = Table(title="Latency of c", columns=["class", "p50"], rows=[["all", "1 s"]])
    write_html_report(report, title="t", summary=["s"], tables=[latency, *second.tables()],
                      plots=[], images=[first, second], force=False)  # fmt: skip
    page = report.read_text()
    sections = dict(re.findall(r'<section id="(\w+)">(.*?)</section>', page, flags=re.S))
    assert "Latency of c" in sections["latency"]
    for table in second.tables():
        assert table.title not in sections["latency"]
    images = sections["images"]
    assert images.count('id="images-') == 2
    assert images.index("c.run (B) against a.run (A)") > images.index("b.run (B) against")
    assert images.count("<article") == len(first.rendered) and "c.run" in images
