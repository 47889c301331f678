"""What the recording proxy adds: paired latency through the proxy minus direct, and max rate.

    .venv/bin/python benchmarks/proxy_overhead.py [--pairs 100] [--rate 20] [--json FILE]

Three processes on 127.0.0.1: a minimal upstream (answers every edit with the same 1024x1024 PNG
as base64 JSON, after reading the whole upload), `imgtrace record` in front of it (recording
everything), and this client. For each upload size, requests go out open-loop at `--rate` req/s,
alternating direct and through-proxy in a random order per pair, so both see the same machine
state; the added latency is reported as the difference of the percentiles and as the median of
the per-pair differences. Then the maximum request rate for small bodies, closed loop, direct and
through the proxy. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
from PIL import Image


def photo_like_png(size: int, seed: int) -> bytes:
    """A PNG that compresses like a photo: smooth structure plus mild noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (size // 32, size // 32, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), np.int16)
    noisy = smooth + rng.integers(-6, 7, smooth.shape, dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


# -- the upstream (run as a subprocess of this script) ----------------------------------------


def serve_upstream(port: int) -> None:
    import uvicorn

    payload = json.dumps(
        {"created": 1, "data": [{"b64_json": base64.b64encode(photo_like_png(1024, 1)).decode()}]}
    ).encode()
    small = b'{"created": 1, "data": []}'

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            if not message.get("more_body"):
                break
        body = small if scope["path"] == "/v1/images/generations" else payload
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        http="h11",
        ws="none",
        lifespan="off",
        log_level="warning",
        access_log=False,
    )


# -- the client ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a server process exited early ({process.returncode})")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit("a server did not start in 30 s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def paired(direct: str, proxy: str, image: bytes, pairs: int, rate: float) -> dict[str, Any]:
    """Open loop at `rate` req/s over both targets; returns latencies in ms."""
    files = {"image": ("in.png", image, "image/png")}
    data = {"prompt": "benchmark", "seed": "1"}
    rng = random.Random(7)
    results: dict[str, list[float | None]] = {"direct": [None] * pairs, "proxy": [None] * pairs}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for url in (direct, proxy):  # warm both paths and their connections
            for _ in range(3):
                (await client.post(url + "/v1/images/edits", data=data, files=files)).read()

        async def one(target: str, url: str, index: int) -> None:
            start = time.perf_counter()
            response = await client.post(url + "/v1/images/edits", data=data, files=files)
            response.read()
            if response.status_code == 200:
                results[target][index] = (time.perf_counter() - start) * 1000

        t0 = time.perf_counter() + 0.1
        async with anyio.create_task_group() as group:
            for index in range(pairs):
                order = [("direct", direct), ("proxy", proxy)]
                rng.shuffle(order)
                for slot, (target, url) in enumerate(order):
                    deadline = t0 + (2 * index + slot) / rate
                    await anyio.sleep(max(0.0, deadline - time.perf_counter()))
                    group.start_soon(one, target, url, index)
    ok = [
        i
        for i in range(pairs)
        if results["direct"][i] is not None and results["proxy"][i] is not None
    ]
    d = [float(results["direct"][i] or 0) for i in ok]
    p = [float(results["proxy"][i] or 0) for i in ok]
    diffs = [b - a for a, b in zip(d, p, strict=True)]
    return {
        "pairs": len(ok),
        "upload_bytes": len(image),
        "direct_p50_ms": percentile(d, 50),
        "direct_p99_ms": percentile(d, 99),
        "proxy_p50_ms": percentile(p, 50),
        "proxy_p99_ms": percentile(p, 99),
        "added_p50_ms": percentile(p, 50) - percentile(d, 50),
        "added_p99_ms": percentile(p, 99) - percentile(d, 99),
        "median_paired_diff_ms": statistics.median(diffs),
    }


async def max_rate(url: str, concurrency: int, count: int, seconds: float) -> float:
    """Closed loop with small bodies: completed requests per second."""
    body = {"prompt": "small", "seed": "1"}
    done = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for _ in range(20):
            await client.post(url + "/v1/images/generations", json=body)
        start = time.perf_counter()
        stop_at = start + seconds

        async def worker() -> None:
            nonlocal done
            while done < count and time.perf_counter() < stop_at:
                response = await client.post(url + "/v1/images/generations", json=body)
                if response.status_code == 200:
                    done += 1

        async with anyio.create_task_group() as group:
            for _ in range(concurrency):
                group.start_soon(worker)
        return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100, help="pairs per upload size")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (both)")
    parser.add_argument("--rate-seconds", type=float, default=5.0, help="max-rate phase length")
    parser.add_argument("--concurrency", type=int, default=16, help="max-rate clients")
    parser.add_argument("--json", help="also write the figures as JSON to this file")
    parser.add_argument(
        "--record-paths",
        default="/v1/images/*",
        help="what the proxy records (e.g. /nothing: forwarding cost only)",
    )
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return
    up_port, proxy_port = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="imgtrace-bench-"))
    trace = workdir / "bench.imgtrace"
    upstream = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(up_port)])
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imgtrace",
            "record",
            "--upstream",
            f"http://127.0.0.1:{up_port}",
            "--listen",
            f"127.0.0.1:{proxy_port}",
            "-o",
            str(trace),
            "--paths",
            args.record_paths,
        ],
        stderr=subprocess.PIPE,
    )
    report: dict[str, Any] = {}
    try:
        wait_listening(up_port, upstream)
        wait_listening(proxy_port, proxy)
        direct, through = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{proxy_port}"
        for size in (512, 1024):
            image = photo_like_png(size, seed=size)
            before = cpu_seconds(proxy.pid), cpu_seconds(upstream.pid)
            result = anyio.run(paired, direct, through, image, args.pairs, args.rate)
            # The upstream served every request twice (direct and proxied) plus 6 warm-ups.
            served = 2 * args.pairs + 6
            result["proxy_cpu_ms_per_req"] = (
                (cpu_seconds(proxy.pid) - before[0]) * 1000 / (args.pairs + 3)
            )
            result["upstream_cpu_ms_per_req"] = (
                (cpu_seconds(upstream.pid) - before[1]) * 1000 / (served)
            )
            report[f"upload_{size}"] = result
        count = int(args.rate_seconds * 5000)
        report["max_rate_direct"] = anyio.run(
            max_rate, direct, args.concurrency, count, args.rate_seconds
        )
        report["max_rate_proxy"] = anyio.run(
            max_rate, through, args.concurrency, count, args.rate_seconds
        )
    finally:
        proxy.terminate()
        _, stderr = proxy.communicate(timeout=60)
        upstream.terminate()
        upstream.wait(10)
    report["proxy_summary"] = stderr.decode().strip().splitlines()[-1]
    report["trace_bytes"] = trace.stat().st_size
    for name in ("upload_512", "upload_1024"):
        r = report[name]
        print(
            f"{name} ({r['upload_bytes'] / 1e6:.2f} MB up, {r['pairs']} pairs at "
            f"{args.rate:g} req/s): direct p50 {r['direct_p50_ms']:.2f} ms p99 "
            f"{r['direct_p99_ms']:.2f} ms; proxy p50 {r['proxy_p50_ms']:.2f} ms p99 "
            f"{r['proxy_p99_ms']:.2f} ms; added p50 {r['added_p50_ms']:+.2f} ms p99 "
            f"{r['added_p99_ms']:+.2f} ms; median paired diff "
            f"{r['median_paired_diff_ms']:+.2f} ms; CPU per request: proxy "
            f"{r['proxy_cpu_ms_per_req']:.1f} ms, upstream {r['upstream_cpu_ms_per_req']:.1f} ms"
        )
    print(
        f"max rate, small bodies, {args.concurrency} clients: direct "
        f"{report['max_rate_direct']:.0f} req/s, proxy {report['max_rate_proxy']:.0f} req/s "
        f"({report['max_rate_proxy'] / report['max_rate_direct']:.2f}x)"
    )
    print(report["proxy_summary"])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    for path in workdir.iterdir():
        os.unlink(path)
    workdir.rmdir()


if __name__ == "__main__":
    main()
