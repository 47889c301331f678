"""Scale-out: sharded replays against the unsharded one, merge and compare at 100,000 requests.

Targets (issue 15), on a quiet machine:
- 2 shards on this machine reproduce the unsharded schedule: the merged run's intended offsets
  equal the unsharded run's to the nanosecond (offsets count from each run's t0);
- each shard's send lag is as good as a single replay's (here: p99 within 1.2x, or 0.5 ms);
- `imgtrace merge` of 2 x 100,000-request shard runs: <= 10 s and <= 300 MB peak RSS;
- `imgtrace compare --no-images` of two 100,000-request merged runs: <= 10 s.
The shard runs for merge and compare are written synthetically with TraceWriter (as
`replay --shard` writes them); the replay part sends a real trace to the reference server.

    .venv/bin/python benchmarks/scale_out.py [--requests 100000] [--replay-requests 3000]
        [--rate 100] [--skip-replay]
"""

from __future__ import annotations

import argparse
import io
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from samples import answered, returned

from traces import Header, TraceReader, TraceWriter, shard_metadata

MS = 1_000_000
GAP_NS = 10 * MS
DIGEST = "b" * 64
DISTINCT_IMAGES = 64


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (seed % 256, seed // 256 % 256, 90)).save(buffer, "PNG")
    return buffer.getvalue()


def write_shards(folder: Path, name: str, n: int, shards: int, factor: float) -> list[Path]:
    """`shards` runs that together hold n sends; output images repeat across requests."""
    rng = np.random.default_rng(int(factor * 100))
    latency = rng.lognormal(np.log(300e6), 0.5, n) * factor
    images = [png(i) for i in range(DISTINCT_IMAGES)]
    paths = []
    for index in range(shards):
        path = folder / f"{name}-{index}.imgtrace"
        header = Header(
            kind="run",
            source="replay",
            trace_digest=DIGEST,
            start_wall_ns=1_800_000_000 * 10**9,
            metadata={
                "planned": len(range(index, n, shards)),
                **shard_metadata(index, shards, name),
            },
        )
        with TraceWriter(path, header) as writer:
            # Completion order, not send order: the merge must sort.
            order = sorted(range(index, n, shards), key=lambda k: k * GAP_NS + latency[k])
            for seq in order:
                digest = writer.add_blob(images[seq % DISTINCT_IMAGES], "image/png")
                intended = seq * GAP_NS
                done = intended + int(latency[seq])
                sizes = {"bytes_up": 300_000, "bytes_down": 400_000}
                sent = intended + 150_000
                writer.write(
                    answered(
                        f"r{seq:07d}",
                        seq,
                        intended,
                        done,
                        sent_ns=sent,
                        **sizes,
                        **returned(digest),
                    )
                )
        paths.append(path)
    return paths


def measured(args: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of `imgtrace ARGS` in its own process."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "imgtrace", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    assert process.stderr is not None
    err = process.stderr.read().decode()
    process.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"imgtrace {' '.join(args)} failed ({code}): {err}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def lag_ms(path: Path) -> tuple[float, float]:
    with TraceReader(path) as reader:
        lags = [o.sent_ns - o.intended_ns for o in reader.outcomes() if o.sent_ns is not None]
    values = np.array(lags, dtype=np.float64) / MS
    return float(np.quantile(values, 0.5)), float(np.quantile(values, 0.99))


def intended(path: Path) -> dict[tuple[str, int], int]:
    with TraceReader(path) as reader:
        return {(o.request_id, o.seq): o.intended_ns for o in reader.outcomes()}


def replay_part(folder: Path, requests: int, rate: float) -> None:
    trace = folder / "trace.imgtrace"
    imgtrace = [sys.executable, "-m", "imgtrace"]
    subprocess.run(
        [*imgtrace, "synth", "-o", str(trace), "--count", str(requests), "--rate", str(rate),
         "--arrival", "poisson", "--image-size", "256x256", "--size", "256x256", "--seed", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    server = subprocess.Popen(
        [*imgtrace, "serve", "--host", "127.0.0.1", "--port", "0", "--speed", "1000",
         "--load-time", "0", "--cold-start", "0", "--gpus", "8", "--max-batch", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        readable, _, _ = select.select([server.stdout], [], [], 60)
        line = server.stdout.readline().decode() if readable else ""
        if not line.startswith("imgtrace serve: ready on "):
            raise SystemExit(f"the reference server did not start: {line!r}")
        url = line.split()[4]
        # A single replay before the shards and one after: the better of the two is the bar.
        singles = [folder / "single-before.imgtrace", folder / "single-after.imgtrace"]
        replay_single(imgtrace, trace, url, singles[0])
        start = f"{time.time() + 5:.3f}"
        shards = [
            subprocess.Popen(
                [
                    *imgtrace,
                    "replay",
                    str(trace),
                    "--target",
                    url,
                    "--shard",
                    f"{i}/2",
                    "--start-at",
                    start,
                    "-o",
                    str(folder / f"shard-{i}.imgtrace"),
                    "--no-progress",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )  # fmt: skip
            for i in range(2)
        ]
        for process in shards:
            _, err = process.communicate()
            if process.returncode != 0:
                raise SystemExit(f"a shard failed: {err.decode()}")
        replay_single(imgtrace, trace, url, singles[1])
    finally:
        server.terminate()
        server.wait()
    merged = folder / "replayed-merged.imgtrace"
    subprocess.run(
        [*imgtrace, "merge", *(str(folder / f"shard-{i}.imgtrace") for i in range(2)),
         "-o", str(merged)],
        check=True, capture_output=True,
    )  # fmt: skip
    same = all(intended(merged) == intended(single) for single in singles)
    print(f"replay: {requests:,} requests, poisson {rate:g} req/s, 2 shards on this machine")
    print(f"  merged intended offsets equal the unsharded run's: {'yes' if same else 'NO'}")
    p99 = float("inf")
    for single, when in zip(singles, ("before", "after"), strict=True):
        one50, one99 = lag_ms(single)
        p99 = min(p99, one99)
        print(f"  single ({when:<6}) lag p50 {one50:7.3f} ms   p99 {one99:7.3f} ms")
    for i in range(2):
        s50, s99 = lag_ms(folder / f"shard-{i}.imgtrace")
        ok = s99 <= max(1.2 * p99, p99 + 0.5)
        print(
            f"  shard {i}/2        lag p50 {s50:7.3f} ms   p99 {s99:7.3f} ms"
            f"   {'as good' if ok else 'WORSE'} (target p99 <= 1.2x single, or +0.5 ms)"
        )


def replay_single(imgtrace: list[str], trace: Path, url: str, out: Path) -> None:
    subprocess.run(
        [*imgtrace, "replay", str(trace), "--target", url, "-o", str(out), "--no-progress"],
        check=True,
        capture_output=True,
    )


def merge_part(folder: Path, requests: int) -> None:
    """Merge 2 shards of `requests` each; compare two merged runs of `requests` in all."""
    big = write_shards(folder, "big", 2 * requests, 2, 1.0)
    wall, cpu, rss = measured(["merge", *map(str, big), "-o", str(folder / "big.imgtrace")])
    print(f"merge of 2 x {requests:,}-request shard runs")
    print(
        f"  {wall:6.2f} s wall, {cpu:6.2f} s CPU, peak RSS {rss:6.1f} MB"
        "   (target <= 10 s and <= 300 MB)"
    )
    runs = []
    for name, factor in (("base", 1.0), ("cand", 1.05)):
        run = folder / f"{name}.imgtrace"
        measured(
            ["merge", *map(str, write_shards(folder, name, requests, 2, factor)), "-o", str(run)]
        )
        runs.append(str(run))
    wall, cpu, rss = measured(["compare", *runs, "--no-images"])
    print(f"compare --no-images of two {requests:,}-request merged runs")
    print(f"  {wall:6.2f} s wall, {cpu:6.2f} s CPU, peak RSS {rss:6.1f} MB   (target <= 10 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests",
        type=int,
        default=100_000,
        help="sends per shard run merged, and per merged run compared (default 100,000)",
    )
    parser.add_argument("--replay-requests", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--skip-replay", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.skip_replay:
            replay_part(folder, args.replay_requests, args.rate)
        merge_part(folder, args.requests)


if __name__ == "__main__":
    main()
