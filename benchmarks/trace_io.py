"""Trace file write/read throughput and size, against AIPerf-style JSON lines in the same run.

    python benchmarks/trace_io.py [--requests 2000] [--reuse 0.3] [--seed 1]

Builds a workload of image edits whose reference images are natural-looking 512² and 1024²
PNG/JPEG pictures (smooth gradients, shapes, grain: they compress like photographs), where a
share `--reuse` of requests edits an earlier image. It then measures, on one core:

- writing the trace with `TraceWriter` and reading it back with `TraceReader` (every record,
  every blob's bytes), in MB/s of request payload and records/s;
- the same traffic stored the way AIPerf's raw export stores it: one JSON line per request with
  the image base64-encoded, written and parsed back (json + base64), as the baseline;
- bytes per request in both, and their ratio.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from traces import (
    FormPartData,
    Header,
    Request,
    TraceReader,
    TraceWriter,
    body_from_parts,
)

PROMPTS = [
    "replace the sky with a sunset",
    "make the car red",
    "remove the person on the left",
    "turn it into a watercolour painting",
    "add snow on the roof",
]


def natural_image(seed: int, side: int, fmt: str) -> bytes:
    """A picture with the statistics of a photo: smooth regions, edges and sensor grain."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((6, 6, 3)) * 255
    base = Image.fromarray(coarse.astype(np.uint8)).resize((side, side), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(base)
    for _ in range(12):
        x0, y0 = rng.integers(0, side, 2)
        w, h = rng.integers(side // 16, side // 3, 2)
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((int(x0), int(y0), int(x0 + w), int(y0 + h)), fill=colour)
    base = base.filter(ImageFilter.GaussianBlur(side / 256))
    pixels = np.asarray(base).astype(np.int16)
    pixels += rng.normal(0, 3, pixels.shape).astype(np.int16)
    picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    if fmt == "png":
        picture.save(out, "PNG", compress_level=6)
    else:
        picture.save(out, "JPEG", quality=90)
    return out.getvalue()


def _image_job(job: tuple[int, int, str]) -> bytes:
    return natural_image(*job)


def build_workload(requests: int, reuse: float, seed: int) -> list[tuple[str, bytes, str]]:
    """(prompt, image bytes, filename) per request; `reuse` of them repeat an earlier image."""
    rng = random.Random(seed)
    plan: list[int | None] = []
    fresh = 0
    for _ in range(requests):
        if fresh and rng.random() < reuse:
            plan.append(rng.randrange(fresh))
        else:
            plan.append(None)
            fresh += 1
    jobs = [
        (seed * 100_003 + i, rng.choice([512, 1024]), rng.choice(["png", "jpeg"]))
        for i in range(fresh)
    ]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        images = list(pool.map(_image_job, jobs, chunksize=8))
    workload = []
    next_fresh = 0
    for choice in plan:
        index = choice if choice is not None else next_fresh
        if choice is None:
            next_fresh += 1
        ext = "png" if images[index].startswith(b"\x89PNG") else "jpg"
        workload.append((rng.choice(PROMPTS), images[index], f"ref.{ext}"))
    return workload


def write_trace(path: Path, workload: list[tuple[str, bytes, str]]) -> None:
    with TraceWriter(path, Header(source="benchmark")) as writer:
        for index, (prompt, image, filename) in enumerate(workload):
            parts = [
                FormPartData("prompt", prompt.encode()),
                FormPartData("model", b"flux-2-klein-4b"),
                FormPartData(
                    "image",
                    image,
                    filename,
                    "image/png" if filename.endswith("png") else "image/jpeg",
                ),
            ]
            body = body_from_parts(parts, "imgtraceboundary", writer.add_blob)
            writer.write(
                Request(
                    id=str(index), offset_ns=index * 50_000_000, path="/v1/images/edits", body=body
                )
            )


def read_trace(path: Path) -> int:
    """Read every record and fetch each request's image by digest; returns the image bytes seen."""
    seen = 0
    with TraceReader(path) as reader:
        for request in reader.requests():
            for part in request.body.parts:  # type: ignore[union-attr]
                if hasattr(part, "blob"):
                    seen += len(reader.blob(part.blob))
    return seen


def write_aiperf_style(path: Path, workload: list[tuple[str, bytes, str]]) -> None:
    with open(path, "w") as out:
        for index, (prompt, image, filename) in enumerate(workload):
            line = {
                "request_start_ns": index * 50_000_000,
                "payload": {
                    "prompt": prompt,
                    "model": "flux-2-klein-4b",
                    "image": {"b64_data": base64.b64encode(image).decode(), "filename": filename},
                },
            }
            out.write(json.dumps(line) + "\n")


def read_aiperf_style(path: Path) -> int:
    seen = 0
    with open(path) as lines:
        for line in lines:
            record = json.loads(line)
            seen += len(base64.b64decode(record["payload"]["image"]["b64_data"]))
    return seen


def timed(function, *args):  # type: ignore[no-untyped-def]
    start = time.process_time()
    wall = time.perf_counter()
    result = function(*args)
    return result, time.process_time() - start, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--reuse", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    print(f"building {args.requests} requests ({args.reuse:.0%} reuse an earlier image)...")
    workload = build_workload(args.requests, args.reuse, args.seed)
    payload = sum(len(prompt) + len(image) for prompt, image, _ in workload)
    distinct = len({image for _, image, _ in workload})
    records = args.requests + distinct + 1
    print(f"payload {payload / 1e6:.1f} MB in {args.requests} requests, {distinct} distinct images")

    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "bench.imgtrace"
        jsonl = Path(folder) / "bench.jsonl"
        _, write_cpu, write_wall = timed(write_trace, trace, workload)
        seen, read_cpu, read_wall = timed(read_trace, trace)
        assert seen == sum(len(image) for _, image, _ in workload)
        _, base_write_cpu, _ = timed(write_aiperf_style, jsonl, workload)
        base_seen, base_read_cpu, _ = timed(read_aiperf_style, jsonl)
        assert base_seen == seen
        trace_size, jsonl_size = trace.stat().st_size, jsonl.stat().st_size

    mb = payload / 1e6
    rows = [
        ("write", mb / write_cpu, records / write_cpu, mb / base_write_cpu),
        ("read", mb / read_cpu, records / read_cpu, mb / base_read_cpu),
    ]
    print(
        f"\n{'':6} {'imgtrace MB/s':>14} {'records/s':>11} {'AIPerf-style MB/s':>18} {'ratio':>7}"
    )
    for name, ours, per_record, baseline in rows:
        print(f"{name:6} {ours:14.0f} {per_record:11.0f} {baseline:18.0f} {ours / baseline:7.2f}x")
    print(
        f"(wall: write {write_wall:.2f} s, read {read_wall:.2f} s; "
        "the figures are CPU time on one core)"
    )
    print(
        f"\nbytes per request: imgtrace {trace_size / args.requests / 1e3:.0f} KB, "
        f"AIPerf-style {jsonl_size / args.requests / 1e3:.0f} KB; "
        f"size ratio {trace_size / jsonl_size:.3f}x (target <= 0.5x)"
    )
    print(
        f"targets: write >= 150 MB/s ({'met' if mb / write_cpu >= 150 else 'MISSED'}), "
        f"read >= 400 MB/s ({'met' if mb / read_cpu >= 400 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
