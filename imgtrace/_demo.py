"""`imgtrace demo`: the whole pipeline on the bundled reference server, in one command.

It plays a small production story on this machine, with every tool run as the user would run
it (`imgtrace serve`, `record`, `synth`, `replay`, `compare` as subprocesses):

1. reference server A, and a recording proxy in front of it;
2. synthetic "users" send traffic through the proxy: the recorded production trace;
3. that trace replayed against A at 1x and 2x, once more at 1x (the A/A noise baseline), and
   against configuration B (slower, with a small change in its output images);
4. `compare` of A against B and against 2x, with the noise baseline, writing report.html.

Every process it starts is stopped when it ends, fails or is interrupted. Its command line is
`imgtrace._commands.demo`.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from traces import OutputExists, TraceError, UsageError

__all__ = ["DemoPlan", "run_demo"]

MARKER = ".imgtrace-demo"
# The rules a CI job would gate on: B is slower and its images changed, so this gate trips.
GATE = "median:+10%,images:changed>0"


@dataclass(frozen=True)
class DemoPlan:
    """The sizes of the story: `--quick` shrinks them to fit in well under 30 seconds."""

    requests: int
    rate: float
    server_speed: float

    @classmethod
    def choose(cls, quick: bool) -> DemoPlan:
        if quick:
            return cls(requests=20, rate=10.0, server_speed=8.0)
        return cls(requests=90, rate=6.0, server_speed=4.0)


class DemoError(TraceError):
    """Raised when a step of the demo fails; the message names the step and its log."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _say(message: str) -> None:
    print(message, flush=True)


class Processes:
    """Background processes of the demo; all stopped (SIGINT, then SIGKILL) on exit."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        log = open(self._logs / f"{name}.log", "wb")  # noqa: SIM115 - owned by the process
        process = subprocess.Popen(
            [sys.executable, "-m", "imgtrace", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
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
        result = subprocess.run(
            [sys.executable, "-m", "imgtrace", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    if result.returncode not in ok:
        raise DemoError(
            f"`imgtrace {' '.join(args[:2])} ...` failed ({result.returncode}); see {log}"
        )
    return result.returncode


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


def run_demo(out: Path, *, quick: bool, force: bool) -> int:
    plan = DemoPlan.choose(quick)
    logs = _prepare(out, force)
    started = time.monotonic()
    files = {
        name: out / f"{name}.imgtrace"
        for name in ("users", "production", "run-a", "run-a-2x", "run-a-again", "run-b")
    }
    with _processes(logs) as processes:
        a_port, b_port, proxy_port = _free_port(), _free_port(), _free_port()
        a_url, b_url = f"http://127.0.0.1:{a_port}", f"http://127.0.0.1:{b_port}"
        proxy_url = f"http://127.0.0.1:{proxy_port}"
        b_speed = plan.server_speed * 0.7
        _say(
            f"[1/6] reference server A on {a_url} (--speed {plan.server_speed:g}, 1 GPU) and B "
            f"on {b_url} (--speed {b_speed:g}: 30% less compute speed, --variant b: new outputs)"
        )
        server_a = processes.start(
            "server-a",
            ["serve", "--port", str(a_port), "--speed", str(plan.server_speed), "--noise", "1"],
        )
        server_b = processes.start(
            "server-b",
            [
                "serve",
                "--port",
                str(b_port),
                "--speed",
                str(b_speed),
                "--noise",
                "1",
                "--variant",
                "b",
            ],
        )
        _wait_ready(f"{a_url}/health", server_a, "server A", logs / "server-a.log")
        _wait_ready(f"{b_url}/health", server_b, "server B", logs / "server-b.log")

        _say(
            f"[2/6] recording proxy on {proxy_url} in front of A; {plan.requests} synthetic "
            f"requests at {plan.rate:g}/s go through it"
        )
        proxy = processes.start(
            "record",
            [
                "record",
                "--upstream",
                a_url,
                "--listen",
                f"127.0.0.1:{proxy_port}",
                "-o",
                str(files["production"]),
            ],
        )
        _wait_ready(f"{proxy_url}/health", proxy, "the recording proxy", logs / "record.log")
        _run_step(
            "synth",
            [
                "synth",
                "-o",
                str(files["users"]),
                "--count",
                str(plan.requests),
                "--rate",
                str(plan.rate),
                "--arrival",
                "poisson",
                "--seed",
                "7",
                "--image-size",
                "512x512",
                "--reuse",
                "0.3",
                "--request-seed",
                "per-request",
            ],
            logs,
        )
        _run_step(
            "drive",
            [
                "replay",
                str(files["users"]),
                "--target",
                proxy_url,
                "-o",
                str(out / "users-run.imgtrace"),
                "--no-progress",
            ],
            logs,
        )
        if processes.stop(proxy) != 0:
            raise DemoError(f"the recording proxy did not stop cleanly; see {logs / 'record.log'}")
        _run_step("show", ["show", str(files["production"])], logs)

        _say("[3/6] replaying production against A at 1x, at 2x, and at 1x again (noise baseline)")
        for name, extra in (("run-a", []), ("run-a-2x", ["--speed", "2"]), ("run-a-again", [])):
            _replay(files["production"], a_url, files[name], extra, logs, name)
        _say("[4/6] replaying production against B")
        _replay(files["production"], b_url, files["run-b"], [], logs, "run-b")

        _say("[5/6] comparing A with B and with 2x, A/A noise from the second 1x replay")
    report = out / "report.html"
    code = _run_step(
        "compare",
        [
            "compare",
            str(files["run-a"]),
            str(files["run-b"]),
            str(files["run-a-2x"]),
            "--noise",
            str(files["run-a-again"]),
            "--html",
            str(report),
            "--json",
            str(out / "compare.json"),
            "--fail-on",
            GATE,
        ],
        logs,
        ok=(0, 1),
    )
    print((logs / "compare.log").read_text(), end="")
    _say(f"[6/6] done in {time.monotonic() - started:.0f} s. Open the report: {report.resolve()}")
    _say(f"      traces and runs: {out}/*.imgtrace (try `imgtrace show {files['production']}`)")
    verdict = "found a regression (exit code 1)" if code else "found no regression (exit code 0)"
    _say(f"      the CI gate --fail-on '{GATE}' {verdict}")
    return 0


def _replay(trace: Path, target: str, run: Path, extra: list[str], logs: Path, name: str) -> None:
    _run_step(
        name,
        ["replay", str(trace), "--target", target, "-o", str(run), "--no-progress", *extra],
        logs,
    )
