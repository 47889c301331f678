"""Analysis speed: `compare` of two 100,000-request runs and `report` of one.

Targets (issue 7): compare (statistics only) <= 10 s, report <= 5 s on the 2-core development
machine. The baseline in the same run is the time to just read both run files into rows, so the
ratio says how much the statistics cost on top of I/O whatever the machine.

    .venv/bin/python benchmarks/analysis.py [--requests 100000] [--classes 4]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from samples import answered

from analyzer._load import load_rows
from traces import Header, MultipartBody, Request, TextField, TraceReader, TraceWriter

SIZES = ("256x256", "512x512", "768x768", "1024x1024")


def write_runs(folder: Path, n: int, classes: int) -> tuple[Path, Path, Path]:
    """A trace with `classes` request sizes and two runs of it, CAND 5% slower."""
    rng = np.random.default_rng(0)
    cost = rng.lognormal(np.log(300e6), 0.5, n)
    trace = folder / "trace.imgtrace"
    with TraceWriter(trace, Header(kind="trace", source="synthetic")) as writer:
        for i in range(n):
            body = MultipartBody(parts=(TextField(name="size", value=SIZES[i % classes]),))
            writer.write(
                Request(
                    id=f"r{i:07d}", offset_ns=i * 10_000_000, path="/v1/images/edits", body=body
                )
            )

    with TraceReader(trace) as reader:
        digest = reader.trace_digest()
    paths = []
    for name, factor in (("base.run", 1.0), ("cand.run", 1.05)):
        path = folder / name
        latency = cost * factor * rng.lognormal(0, 0.05, n)
        header = Header(kind="run", source="replay", trace_digest=digest, trace_path=str(trace))
        with TraceWriter(path, header) as writer:
            for i in range(n):
                intended = i * 10_000_000
                writer.write(answered(f"r{i:07d}", i, intended, intended + int(latency[i])))
        paths.append(path)
    return trace, paths[0], paths[1]


def timed(args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of `imgtrace ARGS` (CPU time is steadier on a shared machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "imgtrace", *args], capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise SystemExit(f"imgtrace {' '.join(args)} failed: {result.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=4, choices=range(1, 5))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        trace, base, cand = write_runs(folder, args.requests, args.classes)
        start = time.perf_counter()
        load_rows(base)
        load_rows(cand)
        read_both = time.perf_counter() - start
        startup, _ = timed(["--version"])
        compare, compare_cpu = timed(["compare", str(base), str(cand), "--no-images"])
        report, report_cpu = timed(["report", str(base)])
    print(f"requests per run:           {args.requests:,} ({args.classes} classes)")
    print(f"baseline, read both runs:   {read_both:6.2f} s (in-process)")
    print(f"imgtrace start-up:          {startup:6.2f} s")
    print(
        f"compare (statistics only):  {compare:6.2f} s wall, {compare_cpu:6.2f} s CPU"
        f" = {compare / read_both:4.1f}x baseline (target <= 10 s)"
    )
    print(
        f"report:                     {report:6.2f} s wall, {report_cpu:6.2f} s CPU"
        f" = {report / (read_both / 2):4.1f}x reading one run (target <= 5 s)"
    )


if __name__ == "__main__":
    main()
