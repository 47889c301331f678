"""Replays against the reference server for the image gate: A, A', A'' and B, then `compare`.

Shared by tests/images/test_image_gate.py (one seed) and benchmarks/image_gate.py (many).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from testproc import run_imgtrace

GATE = "images:changed>0"
# Fast, warm servers: what is compared here is the pictures, not the latency.
SERVER = ("--speed", "50", "--cold-start", "0", "--load-time", "0", "--jitter", "0")


def imgtrace(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run_imgtrace(*args, timeout=timeout)


def synth(folder: Path, seed: int, count: int) -> Path:
    trace = folder / f"t{seed}.imgtrace"
    result = imgtrace(
        "synth", "-o", str(trace), "--count", str(count), "--rate", "20", "--seed", str(seed),
        "--image-size", "512x512", "--size", "512x512",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return trace


def replay(trace: Path, url: str, out: Path) -> None:
    result = imgtrace("replay", str(trace), "--target", url, "-o", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr


def gate(base: Path, cand: Path, noise: Path) -> subprocess.CompletedProcess[str]:
    """`imgtrace compare BASE CAND --noise NOISE --fail-on images:changed>0` (images only)."""
    return imgtrace(
        "compare", str(base), str(cand), "--noise", str(noise), "--fail-on", GATE,
        "--jobs", "1",
    )  # fmt: skip
