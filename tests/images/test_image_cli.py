"""`imgtrace compare ... --html` end to end, as a user runs it (a subprocess)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

from images_support import png, scene, write_run, write_trace

Run = Callable[..., CompletedProcess[str]]


def _runs(tmp: Path) -> None:
    pictures = [scene(96, seed=i) for i in range(4)]
    write_trace(tmp / "t.imgtrace", [(f"r{i}", "a <script> prompt", png(p))
                                     for i, p in enumerate(pictures)])  # fmt: skip
    a = {f"r{i}": [png(p)] for i, p in enumerate(pictures)}
    b = dict(a)
    changed = pictures[1].copy()
    changed[10:42, 10:42] = 255 - changed[10:42, 10:42]
    b["r1"] = [png(changed)]
    b["r2"] = [b"\x89PNG\r\n\x1a\n broken"]
    write_run(tmp / "a.run", a, trace=tmp / "t.imgtrace")
    write_run(tmp / "b.run", b, trace=tmp / "t.imgtrace")


def test_compare_html_and_image_rules(tmp_path: Path, imgtrace: Run) -> None:
    _runs(tmp_path)
    report = tmp_path / "report.html"
    args = ["compare", str(tmp_path / "a.run"), str(tmp_path / "b.run"), "--jobs", "1",
            "--html", str(report)]  # fmt: skip
    result = imgtrace(*args, "--fail-on", "images:changed>0", cwd=str(tmp_path))
    assert result.returncode == 1, result.stderr
    assert "images: 1 of 4 outputs are changed" in result.stdout
    assert "Output images: b.run (B) against a.run (A) (outputs per verdict)" in result.stdout
    text = report.read_text()
    assert 'data-verdict="changed"' in text and "a &lt;script&gt; prompt" in text
    assert (tmp_path / "report_files").is_dir()

    # The same command again: the report exists, so it is refused and left as it was.
    again = imgtrace(*args, cwd=str(tmp_path))
    assert again.returncode == 2
    assert again.stderr.startswith("imgtrace: error: ") and "--force" in again.stderr
    assert report.read_text() == text
    assert imgtrace(*args, "--force", cwd=str(tmp_path)).returncode == 0


def test_damaged_run_is_one_clear_error(tmp_path: Path, imgtrace: Run) -> None:
    _runs(tmp_path)
    (tmp_path / "junk.run").write_bytes(b"not a trace at all")
    result = imgtrace("compare", str(tmp_path / "a.run"), str(tmp_path / "junk.run"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "junk.run" in result.stderr
