"""Replay timing fidelity: send lag, achieved rate, CPU and memory of `imgtrace replay`.

Run:  .venv/bin/python benchmarks/replay_fidelity.py  (minutes; --quick: no 100k memory run)

Against a minimal HTTP server in another process (benchmarks/null_server.py: it discards the body
and answers a fixed small JSON), it measures in one run:
- send lag p50/p99/max and achieved rate at 100, 300 and 1,000 req/s (constant arrivals) with
  small bodies and with 512x512 (~400 KB) PNG uploads, and the CPU seconds per 1,000 requests;
- the highest rate whose lag p99 stays under 5 ms (small bodies);
- the baseline: the lateness of a bare `asyncio.sleep` scheduler that sends nothing, measured
  just before each row (on a shared machine, other processes' load dominates the tail);
- the connection design: a closed loop through one shared httpx pool vs one client per
  in-flight request (imgtrace's lanes), at several concurrencies, against a server taking 10 ms;
- peak RSS of a 100,000-request replay (in a subprocess) against a 1,000-request one.
Then (only these with --arrivals-only) benchmarks/replay_arrivals.py's runs, lag measured at the
server, AIPerf beside imgtrace with `--aiperf EXE --aiperf-tokenizer DIR`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import replay_arrivals  # benchmarks/ is the script's directory, first on sys.path
from null_server import start_null_server

# -- traces ----------------------------------------------------------------------------------------


def upload_png() -> bytes:
    """A 512x512 PNG of about 400 KB (noise on a gradient, as a photo compresses)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:512, 0:512]
    base = np.stack([(x // 2) % 256, (y // 2) % 256, ((x + y) // 4) % 256], axis=-1)
    noisy = (base + rng.integers(0, 6, size=base.shape)).clip(0, 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(noisy, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def small_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_trace(path: Path, count: int, image: bytes, distinct: int = 1) -> Path:
    from traces import FilePart, Header, MultipartBody, Request, TextField, TraceWriter

    with TraceWriter(path, Header(source="synthetic"), force=True) as writer:
        digests = [
            writer.add_blob(image + bytes([i]) * (i > 0), "image/png") for i in range(distinct)
        ]
        for i in range(count):
            parts = (
                TextField(name="prompt", value=f"make it blue {i}"),
                TextField(name="seed", value=str(i)),
                FilePart(
                    name="image",
                    blob=digests[i % distinct],
                    size=len(image),
                    filename="ref.png",
                    content_type="image/png",
                ),
            )
            writer.write(
                Request(
                    id=f"r{i:06d}",
                    offset_ns=i * 1_000_000,
                    path="/v1/images/edits",
                    body=MultipartBody(parts=parts, boundary="benchmarkboundary"),
                )
            )
    return path


# -- measurements --------------------------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def replay_once(trace: Path, url: str, rate: float | None, out: Path, **kw: Any) -> dict[str, Any]:
    from replayer import ReplayConfig, Timing, replay

    timing = Timing("rate", rate=rate) if rate else kw.pop("timing")
    config = ReplayConfig(trace=trace, target=url, output=out, timing=timing, force=True, **kw)
    before = cpu_seconds()
    result = replay(config)
    cpu = cpu_seconds() - before
    return {
        "rate": rate,
        "sends": result.stats.done,
        "errors": result.stats.errors,
        "lag_p50_ms": result.lag.p50_ms,
        "lag_p99_ms": result.lag.p99_ms,
        "lag_max_ms": result.lag.max_ms,
        "late_share": result.lag.late_share,
        "achieved": result.achieved_rate,
        "achieved_share": result.achieved_rate / rate if rate else None,
        "cpu_s_per_1000": cpu / max(result.stats.done, 1) * 1000,
        "lanes": result.lanes,
    }


def bare_sleep_lag(rate: float, count: int) -> dict[str, float]:
    """Baseline: schedule `count` absolute deadlines with plain asyncio.sleep, send nothing."""
    import numpy as np

    async def main() -> list[int]:
        lags = []
        t0 = time.perf_counter_ns()
        for i in range(count):
            deadline = t0 + int(i * 1e9 / rate)
            delay = (deadline - time.perf_counter_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(time.perf_counter_ns() - deadline)
        return lags

    lags = np.array(asyncio.run(main()), dtype=float) / 1e6
    return {
        "p50": float(np.percentile(lags, 50)),
        "p99": float(np.percentile(lags, 99)),
        "max": float(lags.max()),
    }


def pool_comparison(url: str, concurrencies: list[int], per_level: int) -> list[dict[str, Any]]:
    """Closed loop through one shared httpx pool vs one single-connection client per slot."""
    import httpx

    async def closed_loop(concurrency: int, shared: bool) -> tuple[float, float, float]:
        import numpy as np

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        clients = (
            [httpx.AsyncClient(limits=limits, timeout=None)]
            if shared
            else [httpx.AsyncClient(limits=one, timeout=None) for _ in range(concurrency)]
        )
        latencies: list[int] = []
        remaining = per_level

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter_ns()
                response = await client.post(url + "/v1/images/edits", content=b"x" * 512)
                await response.aread()
                latencies.append(time.perf_counter_ns() - start)

        cpu0, t0 = cpu_seconds(), time.perf_counter()
        await asyncio.gather(
            *(worker(clients[0] if shared else clients[i]) for i in range(concurrency))
        )
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        for client in clients:
            await client.aclose()
        p99 = float(np.percentile(np.array(latencies) / 1e6, 99))
        return per_level / elapsed, p99, cpu / per_level * 1000

    rows = []
    for concurrency in concurrencies:
        shared = asyncio.run(closed_loop(concurrency, True))
        lanes = asyncio.run(closed_loop(concurrency, False))
        rows.append(
            {
                "concurrency": concurrency,
                "shared_rps": shared[0],
                "shared_p99_ms": shared[1],
                "shared_cpu_ms": shared[2],
                "lanes_rps": lanes[0],
                "lanes_p99_ms": lanes[1],
                "lanes_cpu_ms": lanes[2],
            }
        )
    return rows


def peak_rss_mb(trace: Path, url: str, rate: float, out: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of `imgtrace replay` in a fresh process."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child forked from this
    # (large) benchmark process would report the parent's size.
    code = (
        "import sys\n"
        "from imgtrace._commands._main import main\n"
        "code = main(sys.argv[1:])\n"
        "status = open('/proc/self/status').read()\n"
        "print(status.split('VmHWM:')[1].split()[0])\n"
        "sys.exit(code)\n"
    )
    start = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "replay",
            str(trace),
            "--target",
            url,
            "-o",
            str(out),
            "--force",
            "--rate",
            str(rate),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return int(result.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - start


# -- report -------------------------------------------------------------------------------------


def table(title: str, rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> None:
    """Print `rows` under `title`: one column per (label, key, format)."""
    print(f"\n{title}")
    print(
        "  "
        + "  ".join(f"{label:>{len(label) if len(label) > 9 else 9}}" for label, _, _ in columns)
    )
    for row in rows:
        cells = []
        for label, key, fmt in columns:
            width = len(label) if len(label) > 9 else 9
            value = row.get(key)
            cells.append(f"{format(value, fmt) if value is not None else '-':>{width}}")
        print("  " + "  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 100k memory run")
    parser.add_argument("--json", help="also write all figures to this JSON file")
    parser.add_argument("--aiperf", help="AIPerf's executable: also measure it at the server")
    parser.add_argument("--aiperf-tokenizer", help="AIPerf's offline tokenizer directory")
    parser.add_argument("--arrivals-only", action="store_true", help="server-side runs only")
    parser.add_argument("--smoke", action="store_true", help="with it, a few requests each")
    args = parser.parse_args()
    if args.arrivals_only:
        figures = replay_arrivals.run(args.aiperf, args.aiperf_tokenizer, args.smoke, upload_png())
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2))
        return

    figures: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="imgtrace-bench-"))
    null = start_null_server()
    slow = start_null_server(delay=0.010)
    try:
        seconds = 3 if args.quick else 5
        big = upload_png()
        print(f"upload image: 512x512 PNG, {len(big) / 1024:.0f} KB; {os.cpu_count()} cores")
        rows = []
        for label, image in (("small", small_png()), ("512²", big)):
            for rate in (100, 300, 1000):
                count = 1000 if rate == 100 and not args.quick else int(rate * seconds)
                trace = make_trace(work / f"{label}-{rate}.imgtrace", count, image)
                noise = bare_sleep_lag(1000, 1000)
                row = replay_once(trace, null.url, rate, work / "run.imgtrace")
                row["body"] = label
                row["noise_p99_ms"] = noise["p99"]
                rows.append(row)
        figures["fidelity"] = rows
        title = "send lag at constant rates (null server; lag = first request byte − intended)"
        table(
            title,
            rows,
            [
                ("body", "body", ""),
                ("rate", "rate", ".0f"),
                ("sends", "sends", "d"),
                ("lag p50 ms", "lag_p50_ms", ".3f"),
                ("lag p99 ms", "lag_p99_ms", ".3f"),
                ("lag max ms", "lag_max_ms", ".2f"),
                ("late>1ms", "late_share", ".2%"),
                ("achieved", "achieved", ".2f"),
                ("of target", "achieved_share", ".3%"),
                ("CPU s/1000", "cpu_s_per_1000", ".2f"),
                ("noise p99 ms", "noise_p99_ms", ".3f"),
            ],
        )
        print(
            "  noise p99: lateness of a bare asyncio.sleep scheduler that sends nothing, 1 s at "
            "1000/s just before the row: the machine's own scheduling noise at that moment"
        )

        baseline = bare_sleep_lag(1000, 3000)
        figures["bare_sleep_baseline_1000rps"] = baseline
        print(
            f"\nbaseline: bare asyncio.sleep to absolute deadlines at 1000/s, nothing sent: "
            f"late p50 {baseline['p50']:.3f} ms, p99 {baseline['p99']:.3f} ms, "
            f"max {baseline['max']:.2f} ms"
        )

        best = None
        search = []
        from replayer import Selection

        small_trace = make_trace(work / "search.imgtrace", 5000, small_png())
        for rate in (300, 500, 700, 1000, 1300, 1600, 2000):
            count = int(rate * 2.5)
            # Two tries per rate: a neighbour's burst on this shared machine should not end the
            # search; a rate passes if either try keeps lag p99 under 5 ms at >= 99% of the rate.
            passed = False
            for attempt in (1, 2):
                row = replay_once(
                    small_trace,
                    null.url,
                    rate,
                    work / "run.imgtrace",
                    selection=Selection(limit=count),
                )
                row["try"] = attempt
                search.append(row)
                if row["lag_p99_ms"] < 5 and row["achieved_share"] > 0.99:
                    passed = True
                    break
            if not passed:
                break
            best = rate
        figures["max_rate_search"] = search
        figures["max_rate_lag_p99_under_5ms"] = best
        table(
            "highest rate with lag p99 < 5 ms (small bodies, 2.5 s each)",
            search,
            [
                ("rate", "rate", ".0f"),
                ("try", "try", "d"),
                ("lag p99 ms", "lag_p99_ms", ".3f"),
                ("achieved", "achieved", ".1f"),
                ("CPU s/1000", "cpu_s_per_1000", ".2f"),
            ],
        )
        print(f"  → highest rate sustained with lag p99 < 5 ms: {best} req/s")

        pool = pool_comparison(slow.url, [1, 8, 16, 32, 64, 128], 1500 if not args.quick else 800)
        figures["pool"] = pool
        title = "connection design: closed loop, server takes 10 ms (ideal rps = concurrency × 100)"
        table(
            title,
            pool,
            [
                ("concurrency", "concurrency", "d"),
                ("shared rps", "shared_rps", ".0f"),
                ("shared p99 ms", "shared_p99_ms", ".1f"),
                ("shared CPU ms", "shared_cpu_ms", ".2f"),
                ("lanes rps", "lanes_rps", ".0f"),
                ("lanes p99 ms", "lanes_p99_ms", ".1f"),
                ("lanes CPU ms", "lanes_cpu_ms", ".2f"),
            ],
        )

        if not args.quick:
            small_1k = make_trace(work / "mem-1k.imgtrace", 1000, small_png(), distinct=50)
            small_100k = make_trace(work / "mem-100k.imgtrace", 100_000, small_png(), distinct=50)
            rss_1k, _ = peak_rss_mb(small_1k, null.url, 2000, work / "m1.run")
            rss_100k, wall = peak_rss_mb(small_100k, null.url, 2000, work / "m2.run")
            figures["rss_mb"] = {"1k": rss_1k, "100k": rss_100k, "100k_wall_s": wall}
            print(
                f"\npeak RSS of `imgtrace replay` (--rate 2000, small bodies): 1,000 requests "
                f"{rss_1k:.0f} MB, 100,000 requests {rss_100k:.0f} MB "
                f"(ratio {rss_100k / rss_1k:.2f}; 100k took {wall:.0f} s)"
            )
            uploads = make_trace(work / "mem-512.imgtrace", 3000, big, distinct=200)
            rss_big, _ = peak_rss_mb(uploads, null.url, 300, work / "m3.run")
            figures["rss_mb"]["512_3000_at_300"] = rss_big
            print(f"peak RSS with 512² uploads, 3,000 requests at 300/s: {rss_big:.0f} MB")

        # Measured at the server, each tool in processes of its own (AIPerf with --aiperf).
        figures["arrivals"] = replay_arrivals.run(args.aiperf, args.aiperf_tokenizer, False, big)
    finally:
        null.stop()
        slow.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
