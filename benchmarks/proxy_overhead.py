"""What the recording proxy adds: latency through the proxy minus direct, in one run; max rate.

    .venv/bin/python benchmarks/proxy_overhead.py [--rounds 1000] [--rate 20]
        [--upload-bytes 1000000] [--response-bytes 2000000] [--forwarding-arm] [--json FILE]

Processes on 127.0.0.1: a minimal upstream (reads the whole upload, answers every edit with the
same photo-like PNG as base64 JSON, `--response-bytes` in all), `imgtrace record` in front of it
(recording every image request; its recording process is measured apart), optionally a second
`imgtrace record` that records nothing (`--forwarding-arm`: the cost of forwarding alone), and
this client. The defaults are the recording target's setup: 20 req/s through the proxy, 1 MB
uploads, 2 MB responses. Requests go out open loop in rounds: each round sends one request to
every arm (direct, recording proxy, forwarding proxy) in a random order, evenly spaced, so
every arm sees `--rate` req/s and the same machine state. "Added" is an arm's percentile minus
the direct one; "paired" is the median of the per-round differences. Then the maximum request
rate for small bodies, closed loop, direct and through each proxy. Every loop is bounded in
count and time.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from servers import json_app, serve_asgi, start_helper, start_record

TARGET_ADDED_P50_MS = 1.0
TARGET_ADDED_P99_MS = 5.0


def photo_like_png(size: int, seed: int) -> bytes:
    """A PNG that compresses like a photo: smooth structure plus mild noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (size // 32, size // 32, 3), dtype=np.uint8)
    smooth = np.asarray(
        Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), np.int16
    )
    noisy = smooth + rng.integers(-6, 7, smooth.shape, dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def png_of_about(target: int, seed: int) -> bytes:
    """The photo-like PNG (side a multiple of 32) whose size is closest to `target` bytes."""
    low, high = 1, 128  # sides of 32..4096 pixels
    best = photo_like_png(32, seed)
    while low <= high:
        middle = (low + high) // 2
        image = photo_like_png(32 * middle, seed)
        if abs(len(image) - target) < abs(len(best) - target):
            best = image
        if len(image) < target:
            low = middle + 1
        else:
            high = middle - 1
    return best


# -- the upstream (run as a subprocess of this script) ----------------------------------------


def serve_upstream(response_bytes: int) -> None:
    # Base64 takes 4 bytes for 3: an image of 3/4 of the body makes a body of about that size.
    image = png_of_about(response_bytes * 3 // 4, seed=1)
    payload = json.dumps(
        {"created": 1, "data": [{"b64_json": base64.b64encode(image).decode()}]}
    ).encode()
    small = b'{"created": 1, "data": []}'

    def answer(scope: dict[str, Any]) -> bytes:
        return small if scope["path"] == "/v1/images/generations" else payload

    serve_asgi(json_app(answer), http="h11", ws="none")


# -- processes ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads, from /proc (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def recording_pid(proxy_pid: int) -> int | None:
    """The recording process `imgtrace record` spawned (not multiprocessing's tracker)."""
    children = Path(f"/proc/{proxy_pid}/task/{proxy_pid}/children").read_text().split()
    for pid in children:
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return int(pid)
    return None


class Proxy:
    """One `imgtrace record` process in front of the upstream."""

    def __init__(self, name: str, upstream: str, paths: str, workdir: Path) -> None:
        self.name = name
        self.trace = workdir / f"{name}.imgtrace"
        # Port 0, the port read from what it prints once it listens.
        started = start_record(
            "--upstream", upstream, "-o", str(self.trace), "--paths", paths, stdout=None
        )
        self.process = started.process
        self.url = started.url
        self.recording: int | None = None
        self.summary = ""

    def ready(self) -> None:
        self.recording = recording_pid(self.process.pid)

    def cpu(self) -> tuple[float, float]:
        """(forwarding process, recording process) CPU seconds so far."""
        recording = cpu_seconds(self.recording) if self.recording else 0.0
        return cpu_seconds(self.process.pid), recording

    def stop(self) -> None:
        self.process.terminate()
        _, stderr = self.process.communicate(timeout=120)
        lines = stderr.decode().strip().splitlines()
        self.summary = lines[-1] if lines else ""


# -- the client ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def rounds(arms: dict[str, str], image: bytes, count: int, rate: float) -> dict[str, Any]:
    """`count` rounds, each arm at `rate` req/s in random order; latencies in ms per arm."""
    files = {"image": ("in.png", image, "image/png")}
    data = {"prompt": "benchmark", "seed": "1"}
    rng = random.Random(7)
    names = list(arms)
    results: dict[str, list[float | None]] = {name: [None] * count for name in names}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for url in arms.values():  # warm every path and its connections
            for _ in range(3):
                (await client.post(url + "/v1/images/edits", data=data, files=files)).read()

        async def one(name: str, index: int) -> None:
            start = time.perf_counter()
            response = await client.post(arms[name] + "/v1/images/edits", data=data, files=files)
            response.read()
            if response.status_code == 200:
                results[name][index] = (time.perf_counter() - start) * 1000

        spacing = 1 / (rate * len(names))
        t0 = time.perf_counter() + 0.1
        async with anyio.create_task_group() as group:
            for index in range(count):
                order = names[:]
                rng.shuffle(order)
                for slot, name in enumerate(order):
                    deadline = t0 + (index * len(names) + slot) * spacing
                    await anyio.sleep(max(0.0, deadline - time.perf_counter()))
                    group.start_soon(one, name, index)
    complete = [i for i in range(count) if all(results[n][i] is not None for n in names)]
    latency = {n: [float(results[n][i] or 0) for i in complete] for n in names}
    report: dict[str, Any] = {"rounds": len(complete), "upload_bytes": len(image)}
    direct = latency["direct"]
    for name in names:
        values = latency[name]
        report[f"{name}_p50_ms"] = percentile(values, 50)
        report[f"{name}_p99_ms"] = percentile(values, 99)
        if name != "direct":
            diffs = [b - a for a, b in zip(direct, values, strict=True)]
            report[f"{name}_added_p50_ms"] = percentile(values, 50) - percentile(direct, 50)
            report[f"{name}_added_p99_ms"] = percentile(values, 99) - percentile(direct, 99)
            report[f"{name}_paired_median_ms"] = statistics.median(diffs)
    return report


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


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--serve-upstream", "--response-bytes"]
    upstream_server = start_helper([*argv, str(args.response_bytes)], timeout=60)
    upstream = upstream_server.process
    proxies = [Proxy("record", upstream_server.url, args.record_paths, workdir)]
    if args.forwarding_arm:
        proxies.append(Proxy("forward", upstream_server.url, "/nothing", workdir))
    report: dict[str, Any] = {"rate_per_arm": args.rate, "load_before": os.getloadavg()}
    try:
        for proxy in proxies:
            proxy.ready()
        arms = {"direct": upstream_server.url} | {p.name: p.url for p in proxies}
        report["response_bytes"] = len(
            httpx.post(arms["direct"] + "/v1/images/edits", content=b"x").content
        )
        for size in args.upload_bytes:
            image = png_of_about(size, seed=size % 1000)
            before = {p.name: p.cpu() for p in proxies}
            upstream_before = cpu_seconds(upstream.pid)
            result = anyio.run(rounds, arms, image, args.rounds, args.rate)
            served = args.rounds + 3  # per arm: the rounds plus the warm-ups
            for proxy in proxies:
                forwarding, recording = proxy.cpu()
                result[f"{proxy.name}_forwarding_cpu_ms_per_req"] = (
                    (forwarding - before[proxy.name][0]) * 1000 / served
                )
                result[f"{proxy.name}_recording_cpu_ms_per_req"] = (
                    (recording - before[proxy.name][1]) * 1000 / served
                )
            result["upstream_cpu_ms_per_req"] = (
                (cpu_seconds(upstream.pid) - upstream_before) * 1000 / (served * len(arms))
            )
            report[f"upload_{size}"] = result
        if args.rate_seconds > 0:
            count = int(args.rate_seconds * 5000)
            for name, url in arms.items():
                report[f"max_rate_{name}"] = anyio.run(
                    max_rate, url, args.concurrency, count, args.rate_seconds
                )
    finally:
        for proxy in proxies:
            proxy.stop()
        upstream_server.stop()
    report["load_after"] = os.getloadavg()
    for proxy in proxies:
        report[f"{proxy.name}_summary"] = proxy.summary
        report[f"{proxy.name}_trace_bytes"] = proxy.trace.stat().st_size
    return report


def show(report: dict[str, Any], args: argparse.Namespace) -> None:
    arms = ["record"] + (["forward"] if args.forwarding_arm else [])
    for size in args.upload_bytes:
        r = report[f"upload_{size}"]
        print(
            f"{r['upload_bytes'] / 1e6:.2f} MB up, {report['response_bytes'] / 1e6:.2f} MB down, "
            f"{r['rounds']} rounds at {args.rate:g} req/s per arm: direct p50 "
            f"{r['direct_p50_ms']:.2f} ms p99 {r['direct_p99_ms']:.2f} ms"
        )
        for arm in arms:
            met = (
                r[f"{arm}_added_p50_ms"] <= TARGET_ADDED_P50_MS
                and r[f"{arm}_added_p99_ms"] <= TARGET_ADDED_P99_MS
            )
            print(
                f"  {arm}: p50 {r[f'{arm}_p50_ms']:.2f} ms p99 {r[f'{arm}_p99_ms']:.2f} ms; added "
                f"p50 {r[f'{arm}_added_p50_ms']:+.2f} ms p99 {r[f'{arm}_added_p99_ms']:+.2f} ms "
                f"(target <= {TARGET_ADDED_P50_MS:g} / {TARGET_ADDED_P99_MS:g} ms: "
                f"{'met' if met else 'not met'}); paired median "
                f"{r[f'{arm}_paired_median_ms']:+.2f} ms; CPU per request: forwarding "
                f"{r[f'{arm}_forwarding_cpu_ms_per_req']:.1f} ms, recording "
                f"{r[f'{arm}_recording_cpu_ms_per_req']:.1f} ms"
            )
        print(f"  upstream CPU per request {r['upstream_cpu_ms_per_req']:.1f} ms")
    if args.rate_seconds > 0:
        rates = ", ".join(
            f"{name} {report[f'max_rate_{name}']:.0f} req/s" for name in ["direct", *arms]
        )
        print(f"max rate, small bodies, {args.concurrency} clients: {rates}")
    print(
        "load average before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(
            *report["load_before"], *report["load_after"]
        )
    )
    for arm in arms:
        print(f"{arm}: {report[f'{arm}_summary']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1000, help="requests per arm and upload")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second per arm")
    parser.add_argument(
        "--upload-bytes",
        type=int,
        action="append",
        help="upload size in bytes, a photo-like PNG of about that size (repeatable; "
        "default 1000000)",
    )
    parser.add_argument(
        "--response-bytes",
        type=int,
        default=2_000_000,
        help="size of each edit's response body (JSON with one base64 PNG; default 2000000)",
    )
    parser.add_argument(
        "--forwarding-arm",
        action="store_true",
        help="also a proxy that records nothing, in the same rounds",
    )
    parser.add_argument("--rate-seconds", type=float, default=5.0, help="max-rate phase, 0: skip")
    parser.add_argument("--concurrency", type=int, default=16, help="max-rate clients")
    parser.add_argument("--json", help="also write the figures as JSON to this file")
    parser.add_argument(
        "--record-paths", default="/v1/images/*", help="what the recording proxy records"
    )
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.response_bytes)
        return
    if args.rounds < 1 or args.rate <= 0:
        parser.error("--rounds must be at least 1 and --rate more than 0")
    args.upload_bytes = args.upload_bytes or [1_000_000]
    workdir = Path(tempfile.mkdtemp(prefix="imgtrace-bench-"))
    try:
        report = measure(args, workdir)
    finally:
        for path in workdir.iterdir():
            os.unlink(path)
        workdir.rmdir()
    show(report, args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
