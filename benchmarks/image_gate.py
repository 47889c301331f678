"""The `images:changed>0` gate with `--noise` against the reference server, over many seeds.

    .venv/bin/python benchmarks/image_gate.py [--seeds 20] [--requests 24]

Per seed: a synthetic trace; a server with `--noise 2` (nondeterministic, like a GPU) replayed
three times (A, A', A''), and one with `--variant b --noise 2` (a "new build") replayed once
(B). `imgtrace compare A A' --noise A''` must pass the gate (A/A), `compare A B --noise A''`
must fail it. Prints the share of seeds for each (targets: A/A passes in >= 95%, B fails).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "images"))

from gate_runs import SERVER, gate, replay, synth
from servers import start_serve


def trial(folder: Path, seed: int, requests: int) -> tuple[bool, bool]:
    """(A/A passed, B failed) for one seed."""
    trace = synth(folder, seed, requests)
    noisy_server = start_serve(*SERVER, "--noise", "2", "--random-seed", str(seed))
    variant_server = start_serve(
        *SERVER, "--noise", "2", "--variant", "b", "--random-seed", str(seed)
    )
    noisy, variant = noisy_server.url, variant_server.url
    try:
        runs = {name: folder / f"{name}{seed}.run" for name in ("a", "a2", "a3", "b")}
        for name in ("a", "a2", "a3"):
            replay(trace, noisy, runs[name])
        replay(trace, variant, runs["b"])
    finally:
        noisy_server.stop()
        variant_server.stop()
    same = gate(runs["a"], runs["a2"], runs["a3"])
    changed = gate(runs["a"], runs["b"], runs["a3"])
    for result in (same, changed):
        if result.returncode not in (0, 1):
            raise SystemExit(f"compare failed (exit {result.returncode}): {result.stderr}")
    return same.returncode == 0, changed.returncode == 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds to try (20)")
    parser.add_argument("--requests", type=int, default=24, help="requests per trace (24)")
    args = parser.parse_args()
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="imgtrace-gate-") as temp:
        for seed in range(args.seeds):
            same, changed = trial(Path(temp), seed, args.requests)
            passed += same
            failed += changed
            print(f"seed {seed}: A/A {'passes' if same else 'FAILS'}, "
                  f"variant b {'fails' if changed else 'PASSES'}", flush=True)  # fmt: skip
    print(f"A/A passes the gate in {passed} of {args.seeds} seeds "
          f"({100 * passed / args.seeds:.0f}%; target >= 95%)")  # fmt: skip
    print(f"variant b fails the gate in {failed} of {args.seeds} seeds "
          f"({100 * failed / args.seeds:.0f}%; target 100%)")  # fmt: skip


if __name__ == "__main__":
    main()
