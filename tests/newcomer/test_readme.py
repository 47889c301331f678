"""Follow the README literally: its install-and-demo command in a fresh copy and venv."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from traces import TraceReader

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    """The shell commands of the README's "Two commands" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```\n(.*?)```", section, re.S)]


def test_readme_gives_one_command_for_the_demo_and_one_for_the_tests() -> None:
    demo, tests = readme_commands()
    assert demo.endswith("imgtrace demo") and "pip install -e '.[dev]'" in demo
    assert tests.endswith("python -m pytest") and "pip install -e '.[dev]'" in tests
    assert "install -y chromium" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q -e '.[dev]'" in ci and "python -m pytest" in ci


def _copy_of_the_repository(target: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for name in files:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _report_megabytes(out: Path) -> float:
    files = [out / "report.html", *(out / "report_files").rglob("*")]
    return sum(f.stat().st_size for f in files if f.is_file()) / 1e6


@pytest.mark.readme
def test_readme_demo_command_works_in_a_fresh_environment(tmp_path: Path) -> None:
    demo, _ = readme_commands()
    clone = _copy_of_the_repository(tmp_path / "imgtrace")
    # Literally the README's command, with the issue's --quick to keep the suite short.
    result = subprocess.run(
        ["bash", "-c", f"{demo} --quick"],
        cwd=clone, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = clone / "imgtrace-demo"
    assert f"Open the report: {out / 'report.html'}" in result.stdout
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" in page
    assert (out / "report_files").is_dir()
    megabytes = _report_megabytes(out)
    assert megabytes <= 20, f"the demo's report is {megabytes:.1f} MB"
    assert f"report: {megabytes:.1f} MB" in result.stdout
    with TraceReader(out / "production.imgtrace") as reader:
        assert reader.header.source == "proxy" and reader.closed_cleanly
        requests = list(reader.requests())
    assert len(requests) == 70 and all(r.response and r.response.status == 200 for r in requests)
    for name in ("ab/a", "ab/a2", "ab/b", "2x/a-2x", "2x/a2-2x"):
        with TraceReader(out / f"{name}.imgtrace") as reader:
            assert reader.kind == "run"
            assert len(list(reader.outcomes())) == 70
    comparison = json.loads((out / "compare.json").read_text())
    assert [Path(c["cand"]).name for c in comparison["comparisons"]] == [
        "b.imgtrace",
        "a-2x.imgtrace",
        "a2.imgtrace",  # the A/A comparison itself
    ]
    assert all(c["join"]["pairs"] == 70 for c in comparison["comparisons"])
    assert len(comparison["images"]) == 3 and comparison["noise"]["cand"].endswith("a2.imgtrace")
    # The 2x replay is the only one not measured side by side with the base (it cannot be).
    assert len(comparison["notes"]) == 1 and "a-2x.imgtrace" in comparison["notes"][0]

    # From the clone's parent, the folder named imgtrace is where the user stands.
    parent = subprocess.run(
        [str(clone / ".venv" / "bin" / "imgtrace"), "demo", "--quick", "--out", "from-parent"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert parent.returncode == 0, parent.stdout[-3000:] + parent.stderr[-3000:]
    assert (tmp_path / "from-parent" / "compare.json").is_file()
