"""Overhead of the reference server itself, with the simulated compute set to zero.

Starts `imgtrace serve --speed inf` and, as the baseline, a trivial ASGI endpoint on the same
uvicorn that reads the same multipart body and answers a small JSON. Sends the same sequence of
512x512 and 1024x1024 edit requests to each (one connection, one request at a time) and reports
requests/s and the server process's CPU milliseconds per request (from /proc, so Linux only),
with the ratio to the baseline.

Three request mixes, because the server caches decoded inputs and encoded outputs:
  distinct   every request has new image bytes and a new seed (everything is computed)
  new-seed   the same input image, a new seed each time (inputs cached, outputs computed)
  identical  the very same request again (outputs served from the cache)

    .venv/bin/python benchmarks/server_overhead.py [--requests 40] [--json FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from servers import json_app, serve_asgi, start_helper, start_serve

TICKS = os.sysconf("SC_CLK_TCK")


def baseline_app_main() -> None:
    """The baseline: uvicorn + an ASGI app that reads the body and answers a small JSON."""
    serve_asgi(json_app(lambda scope: b'{"ok":true}'))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def photo_like(side: int) -> bytes:
    """A smooth, photo-like PNG (low-frequency colour noise scaled up)."""
    rng = np.random.default_rng(side)
    small = Image.fromarray((rng.random((48, 48, 3)) * 255).astype(np.uint8))
    buffer = io.BytesIO()
    small.resize((side, side), Image.Resampling.BICUBIC).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Result:
    server: str
    mix: str
    side: int
    requests: int
    requests_per_s: float
    cpu_ms_per_request: float


def run(url: str, pid: int, server: str, mix: str, side: int, count: int) -> Result:
    image = photo_like(side)
    with httpx.Client(base_url=url, timeout=60) as http:

        def request(i: int) -> None:
            data = image + i.to_bytes(4, "big") if mix == "distinct" else image
            # Seeds never repeat across mixes, or the output cache would serve "new" requests.
            offset = {"distinct": 0, "new-seed": 10**6, "identical": 0}[mix]
            seed = "1" if mix == "identical" else str(offset + i)
            response = http.post(
                "/v1/images/edits",
                files=[("image", ("in.png", data, "image/png"))],
                data={"prompt": "a warmer light", "seed": seed, "size": f"{side}x{side}"},
            )
            response.raise_for_status()

        request(10**6 + side)  # warm the connection and the codecs
        cpu, wall = cpu_seconds(pid), time.perf_counter()
        for i in range(count):
            request(i)
        wall, cpu = time.perf_counter() - wall, cpu_seconds(pid) - cpu
    return Result(server, mix, side, count, count / wall, cpu / count * 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per case (default 40)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--baseline-app", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_app:
        baseline_app_main()
        return 0
    starts = {
        "baseline": lambda: start_helper([sys.executable, __file__, "--baseline-app"]),
        "imgtrace": lambda: start_serve(
            "--speed", "inf", "--load-time", "0", "--cold-start", "0", "--jitter", "0",
            stderr=subprocess.DEVNULL,
        ),
    }  # fmt: skip
    results: list[Result] = []
    for name, start in starts.items():
        server = start()
        try:
            for side in (512, 1024):
                for mix in ("distinct", "new-seed", "identical"):
                    results.append(
                        run(server.url, server.process.pid, name, mix, side, args.requests)
                    )
        finally:
            server.stop()
    base = {(r.mix, r.side): r for r in results if r.server == "baseline"}
    print(
        "| size | mix | imgtrace req/s | imgtrace CPU ms/req | baseline req/s "
        "| baseline CPU ms/req | CPU ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if r.server != "imgtrace":
            continue
        b = base[(r.mix, r.side)]
        print(
            f"| {r.side}x{r.side} | {r.mix} | {r.requests_per_s:.0f} | "
            f"{r.cpu_ms_per_request:.1f} | {b.requests_per_s:.0f} | {b.cpu_ms_per_request:.1f} "
            f"| {r.cpu_ms_per_request / max(b.cpu_ms_per_request, 1e-9):.1f}x |"
        )
    if args.json:
        with open(args.json, "w") as out:
            json.dump([asdict(r) for r in results], out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
