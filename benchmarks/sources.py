"""Speed of `imgtrace synth` and of the importers, each against a baseline in the same run.

    .venv/bin/python benchmarks/sources.py [--requests 40] [--records 150] [--repeat 3]

- synthesis: requests per second with 512x512 photo-like reference images (png and jpeg), against
  the floor cost of a request, Pillow encoding an already-made 512x512 image in the same format;
- import: MB/s of `import aiperf-raw`, `import har` and `import aiperf-input` (data URLs), against
  parsing the same file as plain JSON (stdlib `json`, line by line for JSON-lines).

Each figure is the best of `--repeat` runs (the least disturbed by other load on the machine).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from recorder import (
    ArrivalProcess,
    SynthOptions,
    export_aiperf_input,
    import_aiperf_input,
    import_aiperf_raw,
    import_har,
    synthesize,
)
from recorder._photos import encode_image, photo

START_NS = 1_750_000_000_000_000_000


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_synth(folder: Path, requests: int, repeat: int, fmt: str) -> dict[str, float]:
    options = SynthOptions(
        count=requests,
        arrival=ArrivalProcess(kind="poisson"),
        seed=1,
        image_size="512x512",
        image_format=fmt,
    )
    out = folder / f"synth-{fmt}.imgtrace"
    seconds = best_of(repeat, lambda: synthesize(options, out, force=True))
    image = photo(np.random.default_rng(0), 512, 512)
    baseline = best_of(repeat, lambda: [encode_image(image, fmt) for _ in range(requests)])
    return {
        "requests_per_s": requests / seconds,
        "encode_only_per_s": requests / baseline,
        "ratio": baseline / seconds,
    }


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    photo(np.random.default_rng(seed), 512, 512).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def make_inputs(folder: Path, records: int) -> dict[str, Path]:
    """An AIPerf raw export, a HAR file and a single_turn file, each with 512x512 images."""
    pool = [jpeg(i) for i in range(8)]  # distinct inputs and outputs, reused across records
    encoded = [base64.b64encode(p).decode() for p in pool]
    raw_lines, entries, turns = [], [], []
    for i in range(records):
        image, output = encoded[i % 8], encoded[(i + 3) % 8]
        response = json.dumps({"created": 1, "data": [{"b64_json": output}]})
        payload = {
            "prompt": f"edit {i}",
            "model": "m",
            "response_format": "b64_json",
            "n": 1,
            "image": {"b64_data": image, "filename": "image.jpg", "content_type": "image/jpeg"},
            "size": "512x512",
            "seed": i + 1,
        }
        raw_lines.append(
            json.dumps(
                {
                    "metadata": {
                        "request_start_ns": START_NS + i * 10**8,
                        "request_end_ns": START_NS + i * 10**8 + 5 * 10**8,
                        "x_request_id": f"r{i}",
                        "benchmark_phase": "profiling",
                    },
                    "payload": payload,
                    "status": 200,
                    "request_headers": {},
                    "response_headers": {"content-type": "application/json"},
                    "responses": [{"perf_ns": i, "text": response}],
                    "error": None,
                }
            )
        )
        entries.append(
            {
                "startedDateTime": f"2026-01-01T00:{i // 600:02d}:{i % 60:02d}.{i % 10}00Z",
                "time": 500.0,
                "request": {
                    "method": "POST",
                    "url": "http://h/v1/images/edits",
                    "headers": [],
                    "postData": {
                        "mimeType": "multipart/form-data; boundary=b",
                        "params": [
                            {"name": "prompt", "value": f"edit {i}"},
                            {
                                "name": "image",
                                "fileName": "a.jpg",
                                "contentType": "image/jpeg",
                                "value": image,
                                "encoding": "base64",
                            },
                        ],
                    },
                },
                "response": {
                    "status": 200,
                    "headers": [],
                    "content": {"mimeType": "application/json", "text": response},
                },
            }
        )
        turns.append(
            json.dumps(
                {
                    "text": f"edit {i}",
                    "image": f"data:image/jpeg;base64,{image}",
                    "timestamp": i * 100,
                }
            )
        )
    paths = {
        "aiperf-raw": folder / "profile_export_raw.jsonl",
        "har": folder / "capture.har",
        "aiperf-input": folder / "inputs.jsonl",
    }
    paths["aiperf-raw"].write_text("\n".join(raw_lines) + "\n")
    paths["har"].write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}))
    paths["aiperf-input"].write_text("\n".join(turns) + "\n")
    return paths


def parse_plain(path: Path) -> None:
    if path.suffix == ".har":
        json.loads(path.read_bytes())
        return
    with open(path, "rb") as file:
        for line in file:
            json.loads(line)


IMPORTERS: dict[str, Callable[[Path, Path], object]] = {
    "aiperf-raw": lambda src, out: import_aiperf_raw(src, out, force=True),
    "har": lambda src, out: import_har(src, out, force=True),
    "aiperf-input": lambda src, out: import_aiperf_input(src, out, force=True),
}


def bench_import(folder: Path, records: int, repeat: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, source in make_inputs(folder, records).items():
        size_mb = source.stat().st_size / 1e6
        out = folder / f"{name}.imgtrace"
        seconds = best_of(repeat, lambda s=source, n=name, o=out: IMPORTERS[n](s, o))
        baseline = best_of(repeat, lambda s=source: parse_plain(s))
        results[name] = {
            "input_mb": size_mb,
            "mb_per_s": size_mb / seconds,
            "plain_json_mb_per_s": size_mb / baseline,
            "ratio": baseline / seconds,
        }
    trace = folder / "aiperf-raw.imgtrace"
    exported = folder / "export.jsonl"
    seconds = best_of(repeat, lambda: export_aiperf_input(trace, str(exported), force=True))
    results["export aiperf-input"] = {
        "output_mb": exported.stat().st_size / 1e6,
        "requests_per_s": records / seconds,
    }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="synthetic requests per run")
    parser.add_argument("--records", type=int, default=150, help="records per imported file")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best kept)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="imgtrace-bench-") as tmp:
        folder = Path(tmp)
        synth = {
            fmt: bench_synth(folder, args.requests, args.repeat, fmt) for fmt in ("png", "jpeg")
        }
        imports = bench_import(folder, args.records, args.repeat)
    print(f"synthesis, 512x512 reference images (best of {args.repeat})")
    for fmt, r in synth.items():
        print(
            f"  {fmt:5s} {r['requests_per_s']:7.1f} req/s; encode-only baseline "
            f"{r['encode_only_per_s']:7.1f} /s; ratio {r['ratio']:.2f}"
        )
    print(f"import (best of {args.repeat})")
    for name, r in imports.items():
        if "mb_per_s" in r:
            print(
                f"  {name:13s} {r['input_mb']:6.1f} MB at {r['mb_per_s']:6.1f} MB/s; plain "
                f"JSON parse {r['plain_json_mb_per_s']:6.1f} MB/s; ratio {r['ratio']:.2f}"
            )
        else:
            print(f"  {name:13s} {r['requests_per_s']:7.1f} req/s ({r['output_mb']:.1f} MB out)")
    ratios = [r["ratio"] for r in imports.values() if "ratio" in r]
    print(f"  median import/plain-JSON ratio {statistics.median(ratios):.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"synth": synth, "import": imports}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
