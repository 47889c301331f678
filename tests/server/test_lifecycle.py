"""Start, readiness, shutdown, and option errors of `imgtrace serve`."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest
from server_support import Server, assert_error, make_png

from imgtrace._cli import main


def test_health_is_503_until_warm_and_sigint_stops_cleanly() -> None:
    server = Server("--load-time", "1000")
    try:
        server.wait_listening()
        health = httpx.get(server.url + "/health")
        assert_error(health, 503)
        refused = httpx.post(
            server.url + "/v1/images/edits",
            files=[("image", ("a.png", make_png()))],
            data={"prompt": "x"},
        )
        assert_error(refused, 503)
        assert refused.json()["error"]["code"] == "not_ready"
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(10) == 0
        assert server.process.stdout is not None
        assert server.process.stdout.read() == b""  # never claimed to be ready
    finally:
        server.stop()


def test_ready_line_names_the_real_port_and_sigterm_exits_0() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "imgtrace", "serve", "--port", "0", "--speed", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            line = process.stdout.readline().decode()
            match = re.match(r"imgtrace serve: ready on http://127\.0\.0\.1:(\d+) ", line)
            assert match, line
            url = f"http://127.0.0.1:{match.group(1)}"
            assert httpx.get(url + "/health").status_code == 200
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0
            assert "Traceback" not in process.stderr.read().decode()
        finally:
            if process.poll() is None:
                process.kill()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--speed 0", "--speed must be > 0"),
        ("--speed nan", "--speed must be > 0"),
        ("--gpus 0", "--gpus must be between 1 and 64"),
        ("--max-batch 65", "--max-batch must be between 1 and 64"),
        ("--cold-start -1", "--cold-start must be >= 0 and finite"),
        ("--error-rate 1.5", "--error-rate must be between 0 and 1"),
        (
            "--error-rate 0.6 --timeout-rate 0.6",
            "--error-rate plus --timeout-rate must not exceed 1",
        ),
        ("--noise 300", "--noise must be between 0 and 255"),
        ("--slow-factor 0.5", "--slow-factor must be >= 1"),
        ("--max-body 100", "--max-body must be at least 1024 bytes"),
        ("--max-header-size 100", "--max-header-size must be at least 1024 bytes"),
    ],
)
def test_bad_options_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], args: str, message: str
) -> None:
    # In-process: the same main() as the command; nothing starts when an option is bad.
    assert main(["serve", "--port", "0", *args.split()]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == f"imgtrace: error: {message}"
    assert captured.out == ""


def test_bad_option_from_the_command_line(
    imgtrace: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = imgtrace("serve", "--port", "0", "--speed", "-2")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "imgtrace: error: --speed must be > 0\n"


def test_bad_max_body_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--max-body", "12q"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--max-body" in err and "not a byte count" in err


def test_a_busy_port_is_a_clear_error(
    imgtrace: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = imgtrace("serve", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.startswith(f"imgtrace: error: cannot listen on 127.0.0.1:{port}")
