"""Run `imgtrace demo --quick` N times in a row, optionally with one core kept busy, and tabulate
the verdicts (A/A, B, 2x), the wall time, the load average and the report's size.

    python benchmarks/demo_verdicts.py --runs 10 --burn

The acceptance check for the demo: A/A `~` and B `slower` every time, and the 2x replay the same
verdict in every run (never `faster`). Exit code 1 when that does not hold.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _verdict(comparison: dict[str, object]) -> str:
    effects = comparison["effects"]
    assert isinstance(effects, list)
    typical = next(e for e in effects if e["stratum"] == "all" and e["statistic"] == "typical")
    return f"{typical['verdict']} {typical['estimate'] * 100:+.1f}%"


def _size(folder: Path) -> float:
    files = [folder / "report.html", *(folder / "report_files").rglob("*")]
    return sum(f.stat().st_size for f in files if f.is_file()) / 1e6


def _one(out: Path) -> tuple[float, float, dict[str, str], float]:
    load = os.getloadavg()[0]
    started = time.monotonic()
    command = [sys.executable, "-m", "imgtrace", "demo", "--quick", "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, cwd=out.parent)
    wall = time.monotonic() - started
    document = json.loads((out / "compare.json").read_text())
    verdicts = {Path(c["cand"]).stem: _verdict(c) for c in document["comparisons"]}
    return wall, load, verdicts, _size(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--burn", action="store_true", help="keep one core busy meanwhile")
    args = parser.parse_args()
    burner = None
    if args.burn:
        burn = ["timeout", "1800", sys.executable, "-c", "while True: pass"]
        burner = subprocess.Popen(burn)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(1, args.runs + 1):
                wall, load, verdicts, size = _one(Path(tmp) / f"demo{run}")
                rows.append((run, wall, load, verdicts, size))
                a2, b, x2 = verdicts["a2"], verdicts["b"], verdicts["a-2x"]
                print(f"| {run} | {a2} | {b} | {x2} | {wall:.0f} s | {load:.1f} | {size:.1f} MB |",
                      flush=True)  # fmt: skip
    finally:
        if burner is not None:
            burner.terminate()
            burner.wait()
    kinds = {row[3]["a-2x"].split()[0] for row in rows}
    held = all(row[3]["a2"].startswith("~ ") and row[3]["b"].startswith("slower") for row in rows)
    ok = held and len(kinds) == 1 and "faster" not in kinds
    print(f"A/A ~ and B slower in every run: {held}; 2x verdicts: {sorted(kinds)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
