"""End to end: replays against the reference server, then `imgtrace compare`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from traces import FilePart, Header, MultipartBody, Request, TextField, TraceWriter

REQUESTS = 36
# The server's model gives about 130 ms of simulated compute at speed 1 and 160 ms at 0.8
# (exactly 1.25x) for these requests; with HTTP and image work the latency is 180-210 ms, close
# to the spacing, so B's requests begin to queue and the measured change exceeds +25%. Long
# simulated service also dwarfs CPU hiccups of a busy host.
SPACING_NS = 200_000_000
# Warm servers without cold start or jitter, so the planted change is the only one.
SERVER = ("--cold-start", "0", "--load-time", "0", "--jitter", "0")


def _trace(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, format="PNG")
    with TraceWriter(path, Header(kind="trace", source="synthetic")) as writer:
        digest = writer.add_blob(buffer.getvalue(), "image/png")
        for index in range(REQUESTS):
            size = "384x384" if index % 2 else "320x320"
            body = MultipartBody(
                parts=(
                    TextField(name="prompt", value=f"paint it blue {index}"),
                    FilePart(
                        name="image",
                        blob=digest,
                        size=len(buffer.getvalue()),
                        filename="in.png",
                        content_type="image/png",
                    ),
                    TextField(name="size", value=size),
                    TextField(name="num_inference_steps", value="4"),
                    TextField(name="seed", value=str(index)),
                )
            )
            writer.write(
                Request(
                    id=f"e{index:03d}",
                    offset_ns=index * SPACING_NS,
                    path="/v1/images/edits",
                    body=body,
                )
            )
    return path


@pytest.mark.slow
def test_slower_server_is_slower_and_same_server_is_same(
    tmp_path: Path, spawn_server: Callable[..., Any], imgtrace: Callable[..., Any]
) -> None:
    trace = _trace(tmp_path / "t.imgtrace")
    servers = {
        "a": spawn_server("--speed", "1.0", *SERVER),
        "b": spawn_server("--speed", "0.8", *SERVER),
        "a2": spawn_server("--speed", "1.0", *SERVER),
    }
    # The three replays run at the same time, so a stall of this shared machine hits request
    # i of every run alike and the paired comparison cancels it (interleaving A and B, as
    # benchmarking guides advise); it also takes a third of the time.
    runs = {name: tmp_path / f"{name}.run" for name in servers}
    replays = [
        subprocess.Popen(
            [sys.executable, "-m", "imgtrace", "replay", str(trace), "--target", server.url,
             "-o", str(runs[name]), "--no-progress", "--warmup", "3"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        for name, server in servers.items()
    ]  # fmt: skip
    for process in replays:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr.decode()

    result = imgtrace(
        "compare",
        str(runs["a"]),
        str(runs["b"]),
        "--no-images",
        "--json",
        str(tmp_path / "ab.json"),
        "--fail-on",
        "typical:+10%",
        "--min-effect",
        "5%",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "REGRESSION" in result.stdout
    effects = json.loads((tmp_path / "ab.json").read_text())["comparisons"][0]["effects"]
    typical = next(e for e in effects if e["statistic"] == "typical" and e["stratum"] == "all")
    assert typical["verdict"] == "slower"
    # Speed 0.8 stretches the simulated compute by 1.25x; unscaled HTTP and image work pull the
    # change down, B's queueing pushes it up (measured: +30% to +40% in repeated runs).
    assert 0.15 < typical["estimate"] < 0.60
    assert typical["ci"][0] > 0.10

    result = imgtrace(
        "compare",
        str(runs["a"]),
        str(runs["a2"]),
        "--no-images",
        "--json",
        str(tmp_path / "aa.json"),
        "--fail-on",
        "typical:+10%",
        "--min-effect",
        "5%",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    effects = json.loads((tmp_path / "aa.json").read_text())["comparisons"][0]["effects"]
    typical = next(e for e in effects if e["statistic"] == "typical" and e["stratum"] == "all")
    assert typical["verdict"] == "~", typical
