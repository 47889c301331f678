"""Image comparison: the labelled corpus's confusion table; metric speed; compare of two runs.

    .venv/bin/python benchmarks/image_compare.py [--requests 1000] [--jobs 2] [--html]
    .venv/bin/python benchmarks/image_compare.py --requests 0 --repeat 20   # parts 0 and 1
    .venv/bin/python benchmarks/image_compare.py --corpus-only [--pictures 8 --side 512]

Part 0 builds the labelled corpus of tests/images/image_corpus.py (photographs and photo-like
pictures, casts, patches, strokes, re-encodes, noise, shifts, crops, server re-renders), judges
every pair with the default thresholds and prints the confusion table (expected x verdict).
Part 1 times every metric of one pair (PSNR, SSIM, pHash and dHash of both images, YIQ delta
with differing-pixel counts) on one core, against the baseline of decoding the two PNGs with
Pillow. Part 2 writes two run files with 1024x1024 PNG outputs (each output a distinct blob, so
every byte is read back), compares them with `compare_run_images` on all cores, and reports
the wall time, the time per request, the ratio against decoding every output once in one
process, and the peak memory of the main and worker processes.
"""

from __future__ import annotations

import os

# One BLAS thread per process: part 1 is "one core", and the workers must not oversubscribe.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import io
import resource
import statistics
import struct
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from analyzer._images import ImageThresholds, compare_run_images
from analyzer._images.colour import colour_difference
from analyzer._images.metrics import _dhash, _phash, decode_image, pair_metrics, small_gray
from traces import Header, Outcome, TraceReader, TraceWriter

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "images"))

SIDE = 1024
POOL = 24


def picture(seed: int) -> np.ndarray:
    """A 1024x1024 photo-like picture: gradient, shapes, mild grain (PNG of about 1-2 MB)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) / SIDE
    image = Image.fromarray(
        np.dstack([90 + 100 * x, 80 + 120 * y, 160 - 80 * x * y]).clip(0, 255).astype(np.uint8)
    )
    draw = ImageDraw.Draw(image)
    for _ in range(20):
        x0, y0 = (int(v) for v in rng.integers(0, SIDE - 200, 2))
        w, h = (int(v) for v in rng.integers(60, 300, 2))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse([x0, y0, x0 + w, y0 + h], fill=fill)
    grain = rng.normal(0, 2.5, (SIDE, SIDE, 1))
    return np.clip(np.asarray(image) + grain, 0, 255).astype(np.uint8)


def encode(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    # Level 1 keeps the setup short; decoding costs about the same at any level.
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def tagged(png: bytes, tag: str) -> bytes:
    """The same PNG with a tEXt chunk after IHDR: other bytes (a distinct blob), same pixels."""
    body = b"imgtrace\0" + tag.encode()
    chunk = (
        struct.pack(">I", len(body))
        + b"tEXt"
        + body
        + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    )
    return png[:33] + chunk + png[33:]


def timed(function: object, repeat: int) -> float:
    """Median CPU seconds of this process per call: what one core spends, which a shared
    machine's load does not inflate the way it inflates wall time."""
    samples = []
    for _ in range(repeat):
        start = time.process_time()
        function()  # type: ignore[operator]
        samples.append(time.process_time() - start)
    return statistics.median(samples)


def one_pair(repeat: int) -> None:
    a = picture(1)
    b = a.copy()
    b[400:432, 400:432] = 255 - b[400:432, 400:432]
    b = np.clip(b.astype(np.int16) + np.random.default_rng(2).integers(-2, 3, b.shape), 0, 255)
    png_a, png_b = encode(a), encode(b.astype(np.uint8))
    decoded_a = decode_image(png_a, max_pixels=10**8)
    decoded_b = decode_image(png_b, max_pixels=10**8)

    def baseline() -> None:
        Image.open(io.BytesIO(png_a)).load()
        Image.open(io.BytesIO(png_b)).load()

    rgb_images = [Image.fromarray(decoded.rgb) for decoded in (decoded_a, decoded_b)]

    def metrics() -> None:
        for image in rgb_images:  # hashes and SSIM's grey are made while decoding: time them here
            gray = image.convert("L")
            _phash(gray)
            _dhash(gray)
            small_gray(gray)
        pair_metrics(decoded_a, decoded_b, threshold=0.1)

    def colour() -> None:
        colour_difference(decoded_a.rgb, decoded_b.rgb, local_threshold=5.0)

    base = timed(baseline, repeat)
    cost = timed(metrics, repeat)
    colour_cost = timed(colour, repeat)
    print(f"\none 1024x1024 pair, one core (CPU time), median of {repeat}:")
    print(f"  decode both PNGs (Pillow, baseline)        {base * 1e3:7.1f} ms")
    print(f"  all metrics (hashes, PSNR, SSIM, YIQ, dE00) {cost * 1e3:7.1f} ms  (target <= 60)")
    print(f"  of which the colour difference (CIEDE2000)  {colour_cost * 1e3:7.1f} ms")
    print(f"  ratio metrics / decode                     {cost / base:7.2f}")


def confusion(pictures: int, side: int, seed: int) -> None:
    """The corpus's confusion table: rows the expected verdict, columns the verdict given."""
    from collections import Counter

    from image_corpus import cases, verdict_of

    thresholds = ImageThresholds()
    start = time.perf_counter()
    corpus = cases(pictures, side, seed, thresholds)
    built = time.perf_counter() - start
    table: Counter[tuple[str, str]] = Counter()
    wrong = []
    for case in corpus:
        got = verdict_of(case, thresholds)
        table[(case.expected, got)] += 1
        if got != case.expected:
            wrong.append(f"  {case.family}, {case.name}, {case.picture}: "
                         f"expected {case.expected}, got {got}")  # fmt: skip
    names = sorted({v for pair in table for v in pair}, key=_LADDER.index)
    width = max(len(n) for n in names) + 2
    print(f"labelled corpus: {len(corpus)} pairs from {pictures} pictures of <= {side}px "
          f"(seed {seed}; built in {built:.0f} s)")  # fmt: skip
    print("expected \\ verdict".ljust(width) + "".join(n.rjust(width) for n in names))
    for expected in names:
        row = [str(table[(expected, got)]).rjust(width) for got in names]
        print(expected.ljust(width) + "".join(row))
    right = sum(n for (e, g), n in table.items() if e == g)
    print(
        f"as expected: {right} of {len(corpus)} ({100 * right / len(corpus):.1f}%; target >= 98%)"
    )
    families = Counter(case.family for case in corpus)
    print("families: " + ", ".join(f"{name} {count}" for name, count in sorted(families.items())))
    print("\n".join(wrong))


_LADDER = ["identical-bytes", "identical-pixels", "visually-identical", "within-noise",
           "changed", "layout-differs", "missing", "undecodable"]  # fmt: skip


def write_runs(folder: Path, requests: int) -> tuple[Path, Path]:
    """A and B from POOL base pictures; B re-encodes, adds grain, or edits a patch (1/3 each)."""
    pool = [picture(100 + i) for i in range(POOL)]
    a_png = [encode(p) for p in pool]
    variants: list[list[bytes]] = []
    for pixels, data in zip(pool, a_png, strict=True):
        grain = np.random.default_rng(7).integers(-1, 2, pixels.shape)
        patched = pixels.copy()
        patched[300:364, 500:564] = 255 - patched[300:364, 500:564]
        variants.append([
            data,  # same pixels (tagged differently below)
            encode(np.clip(pixels + grain, 0, 255).astype(np.uint8)),
            encode(patched),
        ])  # fmt: skip
    paths = folder / "a.run", folder / "b.run"
    choices = (lambda i: a_png[i % POOL], lambda i: variants[i % POOL][i % 3])
    for path, pick in zip(paths, choices, strict=True):
        with TraceWriter(path, Header(kind="run", source="benchmark")) as writer:
            for i in range(requests):
                digest = writer.add_blob(tagged(pick(i), f"{path.stem}-{i}"), "image/png")
                writer.write(Outcome(request_id=f"r{i}", seq=i, intended_ns=i, status=200,
                                     images=(digest,)))  # fmt: skip
    return paths


class PeakMemory:
    """Peak resident memory (VmHWM) of this process and of each worker it starts (Linux)."""

    def __init__(self) -> None:
        Path("/proc/self/clear_refs").write_text("5")  # reset this process's peak
        self.main_before = self._status_kb("self", "VmRSS:") / 1024
        self.workers: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    @staticmethod
    def _status_kb(pid: str, field: str = "VmHWM:") -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
        return 0

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            for task in Path("/proc/self/task").iterdir():
                try:
                    children = (task / "children").read_text().split()
                except OSError:
                    continue  # the thread just ended
                for pid in children:
                    try:
                        self.workers[int(pid)] = self._status_kb(pid)
                    except OSError:
                        pass  # the worker just exited

    def stop(self) -> tuple[float, float]:
        """(main MB, largest worker MB)."""
        self._stop.set()
        self._thread.join()
        return self._status_kb("self") / 1024, max(self.workers.values(), default=0) / 1024


def two_runs(requests: int, jobs: int, html: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="imgtrace-bench-") as temp:
        folder = Path(temp)
        start = time.perf_counter()
        a, b = write_runs(folder, requests)
        print(f"\nwrote two runs of {requests} requests in {time.perf_counter() - start:.1f} s "
              f"({a.stat().st_size / 1e9:.2f} + {b.stat().st_size / 1e9:.2f} GB)")  # fmt: skip

        def decode_all() -> None:
            with TraceReader(a) as reader:
                for outcome in reader.outcomes():
                    Image.open(io.BytesIO(reader.blob(outcome.images[0]))).load()

        start = time.perf_counter()
        decode_all()
        base = (time.perf_counter() - start) * 2  # both runs' outputs, once, in one process
        memory = PeakMemory()
        cpu_before = _cpu_seconds()
        start = time.perf_counter()
        report = compare_run_images(
            a, b, None, thresholds=ImageThresholds(), jobs=jobs,
            assets_dir=folder / "report_files" if html else None, force=False,
        )  # fmt: skip
        wall = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu_before  # workers are joined by now, so they are counted
        main_mb, worker_mb = memory.stop()
        counts = {k: v for k, v in report.counts().items() if v}
        print(f"compare of 2 x {requests} requests, 1024x1024 PNG outputs, jobs={jobs}"
              f"{', drawing the HTML pictures' if html else ''}:")  # fmt: skip
        print(f"  baseline: decode every output once, one process  {base:7.1f} s")
        print(f"  compare_run_images                               {wall:7.1f} s "
              f"({wall / requests * 1e3:.1f} ms per request)")  # fmt: skip
        print(f"  ratio compare / decode                           {wall / base:7.2f}")
        print(f"  CPU time, all processes                          {cpu:7.1f} s "
              f"({cpu / requests * 1e3:.1f} ms per request; the shared machine's other load "
              "shows in the wall time, not here)")  # fmt: skip
        print(f"  verdicts {counts}")
        print(
            f"  peak RSS during compare: main {main_mb:.0f} MB ({memory.main_before:.0f} MB "
            f"before it started), largest worker {worker_mb:.0f} MB"
        )


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per run (1000)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--repeat", type=int, default=20, help="repetitions for one pair (20)")
    parser.add_argument("--html", action="store_true", help="also draw the report pictures")
    parser.add_argument("--pictures", type=int, default=8, help="corpus pictures (8)")
    parser.add_argument("--side", type=int, default=512, help="corpus picture side (512)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (1)")
    parser.add_argument("--corpus-only", action="store_true", help="only the confusion table")
    args = parser.parse_args()
    for name, least in (("requests", 0), ("jobs", 1), ("repeat", 1), ("pictures", 1), ("side", 64)):
        if getattr(args, name) < least:
            parser.error(f"--{name} must be at least {least}")
    confusion(args.pictures, args.side, args.seed)
    if args.corpus_only:
        return
    one_pair(args.repeat)
    if args.requests == 0:
        print("\ncompare of two runs: skipped (--requests 0)")
        return
    two_runs(args.requests, args.jobs, args.html)


if __name__ == "__main__":
    main()
