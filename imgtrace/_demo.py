"""`imgtrace demo`: the whole pipeline on the bundled reference server, in one command.

It plays a small production story on this machine, with every tool run as the user would run
it (`imgtrace serve`, `record`, `synth`, `replay`, `compare` as subprocesses):

1. reference server A, a twin of A (same flags, the A/A baseline) and configuration B;
2. a recording proxy in front of A; synthetic "users" send traffic through it: the recorded
   production trace;
3. one interleaved replay of that trace against A, A again (the twin) and B: every request goes
   to all three at its intended time, so A/A and A/B are measured under the same conditions;
4. a second interleaved replay at twice the rate against A and its twin (near A's capacity, where
   queueing takes over); the twin's share keeps the machine's load like the first replay's, so
   the 2x effect is the server's queueing, not a quieter machine;
5. `compare` of A against B, 2x and A again, with the A/A noise, writing report.html and the
   `--json` document next to it.

The twin exists because the A/A pair must not share one simulated GPU: requests sent at the same
instant to one single-GPU server would queue behind each other, and that wait would be the noise.
Every process it starts is stopped when it ends, fails or is interrupted. Its command line is
`imgtrace._commands.demo`.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from traces import OutputExists, TraceError, UsageError

__all__ = ["DemoInterrupted", "DemoPlan", "run_demo"]

MARKER = ".imgtrace-demo"
# The rules a CI job would gate on: B is slower and its images changed, so this gate trips.
# The typical-change rule also sets how wide an A/A band may be and still let `~` be said.
GATE = "typical:+10%,images:changed>0"
# A 4-step 128x128 edit costs ~41 ms of simulated GPU time at speed 1 (docs/reference-server.md),
# ~68 ms at this speed: a budget that holds the server's real decode/render/encode work with room
# to spare (on a busy 2-core machine with one core burnt, about one overrun per server and run),
# so latency is the model's, not the CPU's.
# A serves ~14 edits/s: 1x sends 5.5/s (37% busy), 2x 11/s (75% busy), where queueing takes over:
# the knee. B runs 30% slower (53% busy at 1x). Closer to capacity, 2x waits would be longer but
# so correlated between neighbours (one long busy period) that the serial-correlation correction
# would leave too few effective pairs for a bounded interval.
SERVER_SPEED = 0.6
B_SPEED = SERVER_SPEED * 0.7
RATE = 5.5
IMAGE_SIZE = "128x128"
INTERRUPTED = 130


@dataclass(frozen=True)
class DemoPlan:
    """The size of the story: `--quick` tells it with fewer requests."""

    requests: int
    rate: float = RATE

    @classmethod
    def choose(cls, quick: bool) -> DemoPlan:
        return cls(requests=70 if quick else 160)


class DemoError(TraceError):
    """Raised when a step of the demo fails; the message names the step and its log."""


class DemoInterrupted(TraceError):
    """Raised when a step of the demo was interrupted (Ctrl-C): the demo exits 130."""


# What `serve` and `record` print once they listen on the port they got (port 0).
LISTENING = re.compile(r"imgtrace(?: serve)?: (?:listening on|recording) (http://127\.0\.0\.1:\d+)")


def _listening_url(process: subprocess.Popen[bytes], name: str, log: Path) -> str:
    """The URL a process started with port 0 says it listens on (read from its log)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = LISTENING.search(log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            raise DemoError(f"{name} exited with code {process.returncode}; see {log}")
        time.sleep(0.05)
    raise DemoError(f"{name} did not say where it listens after 60 s; see {log}")


def _say(message: str) -> None:
    print(message, flush=True)


def _command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "imgtrace", *args]


class Processes:
    """Background processes of the demo; all stopped (SIGINT, then SIGKILL) on exit.

    Every child runs in the logs folder: `python -m` puts its working directory first on the
    import path, and a folder named `imgtrace` where the user stands would shadow the package.
    """

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        log = open(self._logs / f"{name}.log", "wb")  # noqa: SIM115 - owned by the process
        process = subprocess.Popen(
            _command(args),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self._logs,
        )
        log.close()
        self._running.append((name, process))
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._running = [(n, p) for n, p in self._running if p is not process]
        return process.returncode

    def stop_all(self) -> None:
        for _, process in reversed(list(self._running)):
            self.stop(process, timeout=5.0)


def _wait_ready(url: str, process: subprocess.Popen[bytes], name: str, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"{name} exited with code {process.returncode}; see {log}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise DemoError(f"{name} was not ready after 60 s; see {log}")


def _run_step(name: str, args: Sequence[str], logs: Path, ok: tuple[int, ...] = (0,)) -> int:
    log = logs / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            _command(args), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=logs
        )
    try:
        returncode = process.wait()
    except KeyboardInterrupt:
        # Only the demo was interrupted: pass it on, so the step stops now and says so in its
        # output (a replay marks its run interrupted) instead of running to its end.
        Processes(logs).stop(process)
        raise
    if returncode in (INTERRUPTED, -signal.SIGINT):
        # Ctrl-C in a terminal reaches the step first; the demo stops as the step did.
        raise DemoInterrupted(f"`imgtrace {args[0]}` stopped; see {log}")
    if returncode not in ok:
        raise DemoError(f"`imgtrace {' '.join(args[:2])} ...` failed ({returncode}); see {log}")
    return returncode


def _prepare(out: Path, force: bool) -> Path:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder: choose another --out")
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists() and not force:
            raise OutputExists(
                out, what="--out", state="is not empty and was not made by `imgtrace demo`"
            )
        shutil.rmtree(out)
    (out / "logs").mkdir(parents=True)
    (out / MARKER).write_text("written by imgtrace demo; the next demo run may replace it\n")
    return out / "logs"


@contextlib.contextmanager
def _processes(logs: Path) -> Iterator[Processes]:
    processes = Processes(logs)
    try:
        yield processes
    finally:
        processes.stop_all()


def _serve(
    processes: Processes, name: str, speed: float, extra: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    # No cold start and no output cache: A is warmed by the recording and its twin and B are
    # not, and a first-batch penalty or cached work on one side only would be measured as a
    # difference between them.
    args = ["serve", "--port", "0", "--speed", f"{speed:g}", "--noise", "1"]
    return processes.start(name, [*args, "--cold-start", "0", "--cache-mb", "0", *extra])


@dataclass(frozen=True)
class _Files:
    out: Path

    @property
    def users(self) -> Path:
        return self.out / "users.imgtrace"

    @property
    def production(self) -> Path:
        return self.out / "production.imgtrace"

    @property
    def side_by_side(self) -> Path:
        return self.out / "ab"

    def run(self, name: str) -> Path:
        """a, a2 and b of the interleaved replay."""
        return self.side_by_side / f"{name}.imgtrace"

    @property
    def double(self) -> Path:
        """A's run of the second interleaved replay, at 2x."""
        return self.out / "2x" / "a-2x.imgtrace"

    @property
    def report(self) -> Path:
        return self.out / "report.html"


def run_demo(out: Path, *, quick: bool, force: bool) -> int:
    plan = DemoPlan.choose(quick)
    out = out.resolve()
    logs = _prepare(out, force)
    started = time.monotonic()
    files = _Files(out)
    with _processes(logs) as processes:
        urls = _start_servers(processes, logs)
        _record(processes, plan, files, urls["a"], logs)
        _say(
            f"[3/6] one interleaved replay: every request to A, A again (its twin) and B at its "
            f"intended time, in a random order per request -> {files.side_by_side}/"
        )
        targets = [arg for name in ("a", "a2", "b") for arg in ("--target", f"{name}={urls[name]}")]
        _run_step(
            "replay-ab",
            ["replay", str(files.production), *targets, "-o", str(files.side_by_side)]
            + ["--order-seed", "7", "--no-progress"],
            logs,
        )
        _say(
            f"[4/6] a second interleaved replay at 2x ({2 * plan.rate:g}/s, near A's capacity) "
            f"against A and its twin, so the machine carries a load like the first one's"
        )
        twins = [arg for name in ("a", "a2") for arg in ("--target", f"{name}-2x={urls[name]}")]
        _run_step(
            "replay-2x",
            ["replay", str(files.production), *twins, "-o", str(files.double.parent)]
            + ["--speed", "2", "--order-seed", "7", "--no-progress"],
            logs,
        )
    code = _compare(files, logs)
    _finish(files, started, code)
    return 0


def _start_servers(processes: Processes, logs: Path) -> dict[str, str]:
    # Each binds port 0 and says which port it got: no port is picked first and taken later.
    started = {
        "a": _serve(processes, "server-a", SERVER_SPEED),
        "a2": _serve(processes, "server-a2", SERVER_SPEED),
        "b": _serve(processes, "server-b", B_SPEED, ["--variant", "b"]),
    }
    urls = {}
    for name, process in started.items():
        log = logs / f"server-{name}.log"
        urls[name] = _listening_url(process, f"server {name.upper()}", log)
    _say(
        f"[1/6] reference server A on {urls['a']} (--speed {SERVER_SPEED:g}, 1 GPU), its twin "
        f"on {urls['a2']}, and B on {urls['b']} (--speed {B_SPEED:g}: 30% less compute speed, "
        "--variant b: new outputs)"
    )
    for name, process in started.items():
        log = logs / f"server-{name}.log"
        _wait_ready(f"{urls[name]}/health", process, f"server {name.upper()}", log)
    return urls


def _record(processes: Processes, plan: DemoPlan, files: _Files, a_url: str, logs: Path) -> None:
    listen = ["--listen", "127.0.0.1:0"]
    proxy = processes.start(
        "record", ["record", "--upstream", a_url, *listen, "-o", str(files.production)]
    )
    proxy_url = _listening_url(proxy, "the recording proxy", logs / "record.log")
    _say(
        f"[2/6] recording proxy on {proxy_url} in front of A; {plan.requests} synthetic "
        f"requests at {plan.rate:g}/s go through it"
    )
    _wait_ready(f"{proxy_url}/health", proxy, "the recording proxy", logs / "record.log")
    synth = ["synth", "-o", str(files.users), "--count", str(plan.requests)]
    synth += ["--rate", f"{plan.rate:g}", "--arrival", "poisson", "--seed", "7"]
    synth += [
        "--image-size",
        IMAGE_SIZE,
        "--size",
        IMAGE_SIZE,
        "--reuse",
        "0.3",
        "--request-seed",
        "per-request",
    ]
    _run_step("synth", synth, logs)
    users_run = files.out / "users-run.imgtrace"
    drive = ["replay", str(files.users), "--target", proxy_url, "-o", str(users_run)]
    _run_step("drive", [*drive, "--no-progress"], logs)
    if processes.stop(proxy) != 0:
        raise DemoError(f"the recording proxy did not stop cleanly; see {logs / 'record.log'}")
    _run_step("show", ["show", str(files.production)], logs)


def _compare(files: _Files, logs: Path) -> int:
    _say("[5/6] comparing A with B, with 2x and with A again, A/A noise from A again")
    a, a2, b = (files.run(name) for name in ("a", "a2", "b"))
    code = _run_step(
        "compare",
        ["compare", str(a), str(b), str(files.double), str(a2), "--noise", str(a2)]
        + ["--html", str(files.report), "--json", str(files.out / "compare.json")]
        + ["--fail-on", GATE],
        logs,
        ok=(0, 1),
    )
    print((logs / "compare.log").read_text(), end="")
    return code


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def _finish(files: _Files, started: float, code: int) -> None:
    report = files.report
    folder = report.with_name(report.stem + "_files")
    megabytes = (_size(report) + (_size(folder) if folder.exists() else 0)) / 1e6
    _say(f"[6/6] done in {time.monotonic() - started:.0f} s. Open the report: {report}")
    _say(f"      report: {megabytes:.1f} MB with its folder {folder.name}/")
    _say(f"      compare --json: {files.out / 'compare.json'}")
    _say(f"      traces and runs: {files.out}/ (try `imgtrace show {files.production}`)")
    verdict = "found a regression (exit code 1)" if code else "found no regression (exit code 0)"
    _say(f"      the CI gate --fail-on '{GATE}' {verdict}")
