"""`imgtrace demo` stops everything it started, and never clobbers a folder it did not write."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _refuses_connections(url: str) -> bool:
    try:
        httpx.get(url + "/health", timeout=2.0)
    except httpx.ConnectError:
        return True
    return False


def _until_the_replay(demo: subprocess.Popen[str]) -> set[str]:
    """Read the demo's lines up to its interleaved replay; the URLs it printed on the way."""
    assert demo.stdout is not None
    seen = ""
    deadline = time.monotonic() + 180
    while "[3/6]" not in seen and time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            break
        seen += line
    urls = set(re.findall(r"http://127\.0\.0\.1:\d+", seen))
    # Servers A, its twin and B, and the recording proxy.
    assert "[3/6]" in seen and len(urls) == 4, seen
    return urls


def test_ctrl_c_stops_every_process_the_demo_started(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "imgtrace", "demo", "--quick", "--out", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    urls = _until_the_replay(demo)
    demo.send_signal(signal.SIGINT)
    _, stderr = demo.communicate(timeout=60)
    assert demo.returncode == 130, stderr
    assert "Traceback" not in stderr
    for url in urls:
        assert _refuses_connections(url), f"{url} still answers after Ctrl-C"


def test_ctrl_c_in_a_terminal_beside_a_folder_named_imgtrace(tmp_path: Path) -> None:
    # A clone named imgtrace where the user stands must not shadow the package in the demo's
    # children, and Ctrl-C in a terminal reaches every process of the group at once: the step
    # that was running exits 130 first, and the demo says "interrupted", not "failed".
    (tmp_path / "imgtrace").mkdir()
    (tmp_path / "imgtrace" / "README.md").write_text("a clone\n")
    script = Path(sys.executable).with_name("imgtrace")
    demo = subprocess.Popen(
        [str(script), "demo", "--quick", "--out", "demo"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    urls = _until_the_replay(demo)
    time.sleep(1.0)  # the interleaved replay is under way
    os.killpg(demo.pid, signal.SIGINT)
    _, stderr = demo.communicate(timeout=60)
    assert demo.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imgtrace: interrupted"), stderr
    assert "failed" not in stderr and "Traceback" not in stderr
    for url in urls:
        assert _refuses_connections(url), f"{url} still answers after Ctrl-C"


def test_demo_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    result = subprocess.run(
        [sys.executable, "-m", "imgtrace", "demo", "--quick", "--out", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"imgtrace: error: {folder} is not empty and was not made by `imgtrace demo`: choose "
        "another --out or pass --force"
    ]
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
