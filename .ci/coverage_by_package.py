"""Print the coverage of each package and the total, from coverage.py's JSON report."""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(path: str) -> None:
    with open(path) as report:
        files = json.load(report)["files"]
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, data in files.items():
        summary = data["summary"]
        package = name.split("/", 1)[0]
        sums[package][0] += summary["covered_lines"] + summary.get("covered_branches", 0)
        sums[package][1] += summary["num_statements"] + summary.get("num_branches", 0)
    print(f"{'package':<10} {'covered':>8} {'of':>8} {'share':>7}")
    for package, (covered, total) in sorted(sums.items()):
        print(f"{package:<10} {covered:>8} {total:>8} {covered / total:>7.1%}")
    covered = sum(c for c, _ in sums.values())
    total = sum(t for _, t in sums.values())
    print(f"{'total':<10} {covered:>8} {total:>8} {covered / total:>7.1%}")


if __name__ == "__main__":
    main(sys.argv[1])
