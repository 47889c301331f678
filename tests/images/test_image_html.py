"""The offline HTML report: self-contained, escaped, refuses to overwrite."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from pathlib import Path

import pytest
from images_support import png, scene, write_run, write_trace

from analyzer._html import assets_dir_for, write_html_report
from analyzer._images import ImageReport, ImageThresholds, compare_run_images
from analyzer._table import Table
from traces import UsageError

EVIL = '<script>alert("prompt")</script><img src=x onerror=alert(1)>'


def _patched(seed: int) -> bytes:
    pixels = scene(160, seed=seed)
    pixels[20:52, 20:52] = 255 - pixels[20:52, 20:52]
    return png(pixels)


def build_report(tmp: Path, rows: int = 200) -> tuple[Path, ImageReport]:
    """Runs whose prompts and ids carry markup, compared with pictures drawn."""
    ids = ["r0", "r1", "<b>r2</b>", "r3"]
    write_trace(tmp / "t.imgtrace", [(rid, f"{EVIL} #{i}", png(scene(160, seed=i)))
                                     for i, rid in enumerate(ids)])  # fmt: skip
    a = {rid: [png(scene(160, seed=i))] for i, rid in enumerate(ids)}
    b = dict(a)
    b["r1"] = [_patched(1)]
    b["<b>r2</b>"] = [_patched(2)]
    write_run(tmp / "a.run", a, trace=tmp / "t.imgtrace")
    write_run(tmp / "b.run", b, trace=tmp / "t.imgtrace")
    report_path = tmp / "report.html"
    report = compare_run_images(
        tmp / "a.run", tmp / "b.run", None, thresholds=ImageThresholds(render_limit=rows),
        jobs=1, assets_dir=assets_dir_for(report_path), force=False,
    )  # fmt: skip
    latency = Table(title="Latency <p99>", columns=["class", "p50"], rows=[[EVIL, "1.0 s"]],
                    footnotes=[EVIL], row_classes=["slower"])  # fmt: skip
    write_html_report(report_path, title=f"A/B {EVIL}", summary=[EVIL], tables=[latency],
                      plots=[("ECDF <x>", png(scene(32)))], images=report, force=False)  # fmt: skip
    return report_path, report


def test_recorded_text_is_escaped(tmp_path: Path) -> None:
    path, _ = build_report(tmp_path)
    text = path.read_text()
    assert "<script>alert" not in text
    assert "onerror=alert" not in text.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(&quot;prompt&quot;)&lt;/script&gt;" in text
    assert "&lt;b&gt;r2&lt;/b&gt;" in text
    # Exactly one script, the report's own, allowed by its hash in the CSP.
    scripts = re.findall(r"<script>(.*?)</script>", text, flags=re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html.unescape(text)


def test_report_is_self_contained(tmp_path: Path) -> None:
    path, report = build_report(tmp_path)
    text = path.read_text()
    assert "http://" not in text and "https://" not in text
    sources = re.findall(r'<img[^>]* src="([^"]*)"', text)
    assert sources and all(src.startswith("data:image/") for src in sources)
    links = [link for link in re.findall(r'<a href="([^"]*)"', text) if link[:1] != "#"]
    assert links and all(link.startswith("report_files/") for link in links)
    for link in links:
        assert (tmp_path / link).is_file()
    # Sorted by severity: the changed rows first, with their metrics and both diff pictures.
    verdicts = re.findall(
        r'<article class="row" id="row\d+" tabindex="-1" data-verdict="([^"]+)"', text
    )
    assert verdicts == ["changed", "changed", "identical-bytes", "identical-bytes"]
    assert text.count('alt="mask"') == 2 and text.count('alt="heatmap"') == 2
    assert "Latency &lt;p99&gt;" in text and "ECDF &lt;x&gt;" in text
    assert report.pairs[0].verdict == "changed"


def test_row_limit_says_how_many_are_not_drawn(tmp_path: Path) -> None:
    path, _ = build_report(tmp_path, rows=1)
    text = path.read_text()
    assert text.count("<article") == 1
    assert "3 less severe outputs are not drawn" in text


def test_existing_report_is_refused_without_force(tmp_path: Path) -> None:
    path = tmp_path / "r.html"
    path.write_text("keep me")
    with pytest.raises(UsageError, match="already exists.*--force"):
        write_html_report(
            path, title="t", summary=[], tables=[], plots=[], images=None, force=False
        )
    assert path.read_text() == "keep me"
    write_html_report(path, title="t", summary=["ok"], tables=[], plots=[], images=None, force=True)
    assert "<li><bdi>ok</bdi></li>" in path.read_text()
    assert not list(tmp_path.glob(".*.tmp"))
