"""Send timing measured at the server: `imgtrace replay` (and AIPerf, when given) side by side.

Run:  .venv/bin/python benchmarks/replay_fidelity.py --arrivals-only \\
          [--aiperf /path/to/aiperf --aiperf-tokenizer DIR] [--smoke]

A null server in another process (benchmarks/null_server.py) reads each request, answers a JSON
body of a chosen size (a base64 image, as image-edit servers return) and logs when each
request's first bytes arrived, twice: as the kernel stamped the segment on the socket (on
loopback, as the client wrote it) and as the server's process read it.
The lag of arrival i is its arrival time against the ideal schedule (i / rate), relative to the
least-late request: the same measure for every tool, with no trust in a tool's own clock. The
socket's stamps give the lag columns; `read_lag_p99_ms` is the same p99 from the server's reads,
which adds the time the server waited for a core (on 2 cores, often the tool's own other
processes or the response's bytes being copied).
Each tool runs as a process of its own; CPU is its process tree's user+sys time (imgtrace's
dispatch workers' share beside it) and peak memory the largest sum of PSS over its process tree
(shared pages counted once), sampled every 20 ms. The load average before
each run is printed with it (on a busy machine the tail belongs to the neighbours), and how busy
the machine's cores were during it, all processes together.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from null_server import start_null_server  # benchmarks/ is the script's directory

SAMPLE_S = 0.02


# -- the arrival-logging null server (its own process) -------------------------------------------


class ArrivalServer:
    """benchmarks/null_server.py answering every request, logging when each one arrived."""

    def __init__(self, response_bytes: int, work: Path) -> None:
        self.log = Path(tempfile.mkstemp(prefix="arrivals-", suffix=".txt", dir=work)[1])
        self.server = start_null_server(response_bytes, log=self.log)
        self.url = self.server.url

    def arrivals(self) -> tuple[list[int], list[int]]:
        """Stop the server; its arrival times as the kernel stamped them, and as it read them."""
        self.server.stop(30)
        pairs = [line.split() for line in self.log.read_text().splitlines()]
        return [int(kernel) for _, kernel in pairs], [int(read) for read, _ in pairs]


def lag_ms(arrivals: tuple[list[int], list[int]], rate: float, planned: int) -> dict[str, float]:
    """Lag of the last `planned` arrivals (a tool's probes before the schedule are left out), at
    the server's socket, and the p99 as the server's process read them (its own waits added)."""
    import numpy as np

    def lags(times_ns: list[int]) -> Any:
        times = np.sort(np.asarray(times_ns, dtype=np.float64))[-planned:]
        lag = times - np.arange(len(times)) * (1e9 / rate)
        return (lag - lag.min()) / 1e6

    unstamped = arrivals[0].count(0)
    if unstamped:
        raise RuntimeError(f"{unstamped} arrivals have no kernel stamp")
    kernel, read = lags(arrivals[0]), lags(arrivals[1])
    return {
        "arrived": float(len(arrivals[0])),
        "lag_p50_ms": float(np.percentile(kernel, 50)),
        "lag_p99_ms": float(np.percentile(kernel, 99)),
        "lag_max_ms": float(kernel.max()),
        "read_lag_p50_ms": float(np.percentile(read, 50)),
        "read_lag_p99_ms": float(np.percentile(read, 99)),
    }


# -- the tools, each a process tree of its own ---------------------------------------------------


_TICK = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return found


def _pss_kb(pid: int) -> int:
    """Proportional set size: pages shared between processes (libraries, the dispatcher's
    shared-memory rings) are split among them, so the tree's sum counts each page once."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        return int(rollup.split("\nPss:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return 0


def _cpu_s(pid: int) -> tuple[str, float]:
    """The process's role (a dispatch worker, or not) and its CPU seconds so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "", 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    role = "dispatch" if b"spawn_main" in command else "other"
    return role, (int(fields[11]) + int(fields[12])) / _TICK


def _machine_ticks() -> tuple[int, int]:
    """(busy, all) CPU ticks of the whole machine so far, every core together (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def measured(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `command`; its exit code, CPU seconds of its tree (and of its dispatch workers),
    peak tree memory (the sum of PSS), load average, and how busy the machine's cores were
    meanwhile (every process: the tool, the server, this script's sampling)."""
    load = os.getloadavg()[0]
    busy_before, all_before = _machine_ticks()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = 0
    dispatch: dict[int, float] = {}
    while process.poll() is None:
        pids = _tree(process.pid)
        peak = max(peak, sum(_pss_kb(pid) for pid in pids))
        for pid in pids:
            role, cpu = _cpu_s(pid)
            if role == "dispatch":
                dispatch[pid] = cpu
        time.sleep(SAMPLE_S)
    stderr = process.stderr.read().decode() if process.stderr else ""
    busy_after, all_after = _machine_ticks()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if process.returncode != 0:
        print(f"  {command[0]} exited with {process.returncode}: {stderr[-400:]}")
    return {
        "rc": process.returncode,
        "cpu_s": cpu,
        "cpu_dispatch_s": sum(dispatch.values()),
        "peak_pss_mb": peak / 1024,
        "load": load,
        "machine_busy": (busy_after - busy_before) / max(all_after - all_before, 1),
    }


def make_trace(path: Path, count: int, rate: float, image: bytes) -> Path:
    from traces import FilePart, Header, MultipartBody, Request, TextField, TraceWriter

    with TraceWriter(path, Header(source="synthetic"), force=True) as writer:
        digest = writer.add_blob(image, "image/png")
        for i in range(count):
            parts = (
                TextField(name="prompt", value=f"make it blue {i}"),
                FilePart(name="image", blob=digest, size=len(image), filename="ref.png",
                         content_type="image/png"),
            )  # fmt: skip
            writer.write(
                Request(
                    id=f"r{i:06d}",
                    offset_ns=int(i * 1e9 / rate),
                    path="/v1/images/edits",
                    body=MultipartBody(parts=parts, boundary="benchmarkboundary"),
                )
            )
    return path


def _planned(trace: Path) -> int:
    from traces import TraceReader

    with TraceReader(trace) as reader:
        return sum(1 for _ in reader.requests())


def imgtrace_row(trace: Path, server: ArrivalServer, rate: float, workers: int, work: Path,
                 store: bool = True) -> dict[str, Any]:  # fmt: skip
    command = [sys.executable, "-m", "imgtrace", "replay", str(trace), "--target", server.url]
    command += ["-o", str(work / "run.imgtrace"), "--force", "--no-progress"]
    command += ["--workers", str(workers)] + ([] if store else ["--no-images"])
    row = {"tool": f"imgtrace --workers {workers}", **measured(command)}
    return {**row, **lag_ms(server.arrivals(), rate, _planned(trace))}


def aiperf_row(trace: Path, server: ArrivalServer, rate: float, aiperf: str, tokenizer: str,
               work: Path) -> dict[str, Any]:  # fmt: skip
    jsonl = work / "aiperf-input.jsonl"
    subprocess.run(
        [sys.executable, "-m", "imgtrace", "export", "aiperf-input", str(trace), "-o", str(jsonl),
         "--force"], check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    command = [aiperf, "profile", "--model", "black-forest-labs/FLUX.2-klein-4B", "--tokenizer",
               tokenizer, "--url", server.url, "--endpoint-type", "image_edit", "--input-file",
               str(jsonl), "--custom-dataset-type", "single_turn", "--fixed-schedule",
               "--artifact-dir", str(work / "aiperf"), "--ui", "none"]  # fmt: skip
    # With HF_HUB_OFFLINE set, AIPerf refuses a local tokenizer directory.
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    row = {"tool": "AIPerf", **measured(command, env)}
    return {**row, **lag_ms(server.arrivals(), rate, _planned(trace))}


# -- the scenarios of the targets ----------------------------------------------------------------

COLUMNS = [
    ("tool", ""), ("arrived", ".0f"), ("lag_p50_ms", ".3f"), ("lag_p99_ms", ".3f"),
    ("lag_max_ms", ".2f"), ("read_lag_p99_ms", ".3f"), ("cpu_s", ".1f"),
    ("cpu_dispatch_s", ".1f"), ("peak_pss_mb", ".0f"), ("load", ".2f"), ("machine_busy", ".0%"),
]  # fmt: skip


def show(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    print("  " + "  ".join(f"{key:>20}" if key == "tool" else f"{key:>11}" for key, _ in COLUMNS))
    for row in rows:
        cells = [
            f"{row[key]:>20}" if key == "tool" else f"{format(row.get(key, 0), fmt):>11}"
            for key, fmt in COLUMNS
        ]
        print("  " + "  ".join(cells))


def run(aiperf: str | None, tokenizer: str | None, smoke: bool, upload: bytes) -> dict[str, Any]:
    """Every target of the dispatcher, measured at the server; returns the figures."""
    work = Path(tempfile.mkdtemp(prefix="imgtrace-arrivals-"))
    count = 30 if smoke else 1000
    figures: dict[str, Any] = {}

    def rows_at(rate: float, response: int, trace: Path, workers: tuple[int, ...],
                with_aiperf: bool) -> list[dict[str, Any]]:  # fmt: skip
        rows = []
        for n in workers:
            rows.append(imgtrace_row(trace, ArrivalServer(response, work), rate, n, work))
        if with_aiperf and aiperf and tokenizer:
            server = ArrivalServer(response, work)
            rows.append(aiperf_row(trace, server, rate, aiperf, tokenizer, work))
        return rows

    # Target: lag p99 <= 1 ms and <= 1/3 of AIPerf's, p50 <= 0.3 ms, CPU <= 3 ms per request.
    trace = make_trace(work / "u100.imgtrace", count, 100, upload)
    rows = rows_at(100, 800_000, trace, (1, 0), with_aiperf=True)
    # The same with a tenth of the requests: the difference is the CPU of the requests alone,
    # without each tool's fixed cost of starting its processes.
    short = make_trace(work / "u100-short.imgtrace", count // 10, 100, upload)
    shorts = rows_at(100, 800_000, short, (1, 0), with_aiperf=True)
    for row, fewer in zip(rows, shorts, strict=True):
        row["cpu_ms_per_request"] = row["cpu_s"] / count * 1000
        extra = count - count // 10
        row["cpu_ms_per_request_marginal"] = (row["cpu_s"] - fewer["cpu_s"]) / extra * 1000
        row["cpu_s_fixed"] = (
            fewer["cpu_s"] - (count // 10) * row["cpu_ms_per_request_marginal"] / 1000
        )
    figures["uploads_100rps_0.8MB"] = rows
    show(f"100 req/s, 512² uploads, 0.8 MB responses stored, {count} requests", rows)
    print("  CPU ms per request (all, and beyond the fixed start-up cost): " + ", ".join(
        f"{r['tool']} {r['cpu_ms_per_request']:.2f} / {r['cpu_ms_per_request_marginal']:.2f}"
        for r in rows))  # fmt: skip

    # Target: peak memory <= 300 MB with 4 MB responses at 50 req/s, images stored.
    trace = make_trace(work / "u50.imgtrace", count // 2 if smoke else 1500, 50, upload)
    rows = rows_at(50, 4_000_000, trace, (1,), with_aiperf=False)
    figures["uploads_50rps_4MB"] = rows
    show("50 req/s, 4 MB responses stored", rows)

    # Target: the highest rate with lag p99 < 5 ms, --workers 2 >= 1.7x --workers 1.
    best: dict[int, float] = {}
    search = []
    for workers in (1, 2):
        for rate in (100, 300) if smoke else (500, 1000, 1500, 2000, 2500, 3000, 4000, 5000):
            n = int(rate * (0.2 if smoke else 3))
            trace = make_trace(work / f"s{rate}.imgtrace", n, rate, b"\x89PNG small")
            row = imgtrace_row(trace, ArrivalServer(64, work), rate, workers, work)
            row["rate"] = rate
            search.append(row)
            if row["lag_p99_ms"] >= 5 or row["arrived"] < n:
                break
            best[workers] = rate
    figures["small_search"] = search
    figures["highest_rate"] = best
    show("small bodies: rates tried (until lag p99 >= 5 ms)", search)
    print(f"  highest rate with lag p99 < 5 ms: {best}")

    # Target: a 100,000-request replay in <= 300 MB (flat, not growing per request).
    n = 2000 if smoke else 100_000
    trace = make_trace(work / "long.imgtrace", n, 1000, b"\x89PNG small")
    rows = rows_at(1000, 64, trace, (1,), with_aiperf=False)
    figures["long_run"] = rows
    show(f"{n:,} requests at 1,000 req/s, small bodies", rows)
    return figures
