"""How many attempts `imgtrace reduce` needs, and how reliably it finds a planted bug.

    .venv/bin/python benchmarks/reduce_search.py [--requests 200] [--seeds 5] [--flaky-seeds 10]

Against `imgtrace serve --plant mask-after-size:2` (a 500 for a masked edit that follows an edit
of another size within 2 simulated seconds), on a trace of `--requests` 512x512 edits where one
random request asks for 1024x1024 and the next one, 300 ms later, carries a mask:

- deterministic: for each of `--seeds` pair positions, whether the search keeps exactly those
  two requests, and its attempts (every replay counts: the check of the full trace, the search
  and the 3 confirmation replays). Target: exactly the pair in <= 80 attempts.
- flaky: the same with `--plant-rate 0.5` (the bug fires half the time its condition holds) and
  `--tries 4`, over `--flaky-seeds` seeds. Target: exactly the pair in >= 9 of 10 seeds.

Seed N places the pair with `random.Random(N)` and starts the flaky server with
`--random-seed N`, so every seed's coin flips are the same on every machine: the planted bug
draws once per replay that holds the pair, in order. Seed 4's first six draws all miss (a
1-in-64 stream): a check of the full trace with only `--tries` replays would refuse it on any
machine. reduce checks the full trace with two rounds of `--tries` (as many tests as its last
passes give a candidate), so a 50% bug ends a seed before its search 1 time in 256, not 1 in 16.

These are counts, not timings; server and replays run at `--speed` (default 10), with idle gaps
compressed to 0.2 s, so that a search takes seconds. The planted bug's window is state on the
server, so every attempt first resets it (`POST /v1/planted/reset`, as `--reset` does for a
user's server): an attempt that ends with the 1024x1024 edit must not arm the next one. A
loaded machine can still delay a send enough to break the interaction (its window is 200 ms of
wall time at speed 10, the pair 20 ms apart): the replays' lag is part of what is measured, and
a full trace that does not reproduce in its check ends that seed's search (reported as such,
with the attempts it spent).
"""

from __future__ import annotations

import argparse
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "reduce"))

from reduce_support import planted_trace, warm_up

from imgtrace._reduce import (
    NotReproduced,
    Progress,
    ReduceConfig,
    RunnerOptions,
    parse_predicate,
    reduce_trace,
)

READY = re.compile(r"ready on (http://\S+)")


def start_server(speed: float, *extra: str) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable, "-m", "imgtrace", "serve", "--host", "127.0.0.1", "--port", "0",
        "--speed", f"{speed:g}", "--cold-start", "0", "--load-time", "0", "--jitter", "0",
        "--plant", "mask-after-size:2", *extra,
    ]  # fmt: skip
    # The readiness line (with the port picked) is the server's only line on stdout.
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        found = READY.search(line)
        if found:
            return process, found.group(1)
        if not line and process.poll() is not None:
            break
    process.kill()
    raise SystemExit("the reference server did not start")


def reset_command(url: str) -> str:
    """A reset of the planted bugs' state, as a user's `--reset` would restart a server."""
    code = (
        "import urllib.request as u; "
        f"u.urlopen(u.Request({url + '/v1/planted/reset'!r}, method='POST'), timeout=30)"
    )
    return shlex.join([sys.executable, "-c", code])


def one_search(
    folder: Path, url: str, requests: int, seed: int, speed: float, tries: int
) -> tuple[bool, int, int, float]:
    big = random.Random(seed).randrange(requests - 1)
    trace = planted_trace(folder / f"t{seed}.imgtrace", requests, big=big, masked=big + 1)
    out = folder / f"min{seed}.imgtrace"
    config = ReduceConfig(
        trace=trace,
        output=out,
        predicate=parse_predicate("status>=500"),
        runner=RunnerOptions(
            target=url, speed=speed, compress_gaps_s=0.2, reset=reset_command(url)
        ),
        tries=tries,
        confirm=3,
        force=True,
    )
    attempts = 0

    def count(progress: Progress) -> None:
        nonlocal attempts
        attempts = progress.attempts

    started = time.monotonic()
    try:
        result = reduce_trace(config, count)
    except NotReproduced as exc:
        print(f"seed {seed}: {exc}", flush=True)
        return False, attempts, attempts, time.monotonic() - started
    exact = result.kept == [f"r{big:04d}", f"r{big + 1:04d}"]
    if not exact:
        print(f"seed {seed}: kept {result.kept}, planted r{big:04d} and r{big + 1:04d}")
    return exact, result.attempts, result.search_attempts, time.monotonic() - started


def campaign(
    label: str, requests: int, seeds: range, speed: float, tries: int, rate: float
) -> list[tuple[bool, int]]:
    results: list[tuple[bool, int]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in seeds:
            extra = ("--plant-rate", f"{rate:g}", "--random-seed", str(seed)) if rate < 1 else ()
            process, url = start_server(speed, *extra)
            try:
                warm_up(url)
                exact, attempts, searched, seconds = one_search(
                    Path(scratch), url, requests, seed, speed, tries
                )
            finally:
                process.terminate()
                process.wait(timeout=30)
            results.append((exact, attempts))
            print(
                f"{label} seed {seed}: {'exact pair' if exact else 'NOT exact'}, {attempts} "
                f"attempts ({searched} before the confirmation), {seconds:.1f} s",
                flush=True,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--flaky-seeds", type=int, default=10)
    parser.add_argument("--speed", type=float, default=10.0)
    args = parser.parse_args()
    plain = campaign("deterministic", args.requests, range(args.seeds), args.speed, 1, 1.0)
    flaky = campaign("flaky 50%, --tries 4", args.requests, range(args.flaky_seeds), args.speed,
                     4, 0.5)  # fmt: skip
    worst = max((attempts for _, attempts in plain), default=0)
    print(
        f"\ndeterministic: exact pair in {sum(e for e, _ in plain)} of {len(plain)} seeds, "
        f"at most {worst} attempts (target: all exact, <= 80)"
    )
    print(
        f"flaky 50% with --tries 4: exact pair in {sum(e for e, _ in flaky)} of {len(flaky)} "
        f"seeds, mean {sum(a for _, a in flaky) / max(len(flaky), 1):.0f} attempts "
        "(target: >= 9 of 10)"
    )


if __name__ == "__main__":
    main()
