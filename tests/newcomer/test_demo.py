"""`imgtrace demo` stops everything it started, and never clobbers a folder it did not write."""

from __future__ import annotations

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


def test_ctrl_c_stops_every_process_the_demo_started(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "imgtrace", "demo", "--quick", "--out", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert demo.stdout is not None
    seen = ""
    deadline = time.monotonic() + 120
    while "[3/6]" not in seen and time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            break
        seen += line
    urls = re.findall(r"http://127\.0\.0\.1:\d+", seen)
    assert "[3/6]" in seen and len(set(urls)) == 3, seen
    demo.send_signal(signal.SIGINT)
    _, stderr = demo.communicate(timeout=60)
    assert demo.returncode == 130, stderr
    assert "Traceback" not in stderr
    for url in set(urls):  # servers A and B and the recording proxy
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
