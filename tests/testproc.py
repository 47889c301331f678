"""Process helpers every test folder shares: clean stops, raw HTTP.

A plain module beside tests/conftest.py (pytest puts tests/ on sys.path), so helper modules in
the sub-folders can import it too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after `timeout`; closes its pipes. Returns the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    return process.returncode


def exact_head(path: str, size: int) -> bytes:
    """A GET head of exactly `size` bytes (padded by one header), asking to close afterwards."""
    start = f"GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\nx-pad: ".encode()
    end = b"\r\n\r\n"
    return start + b"p" * (size - len(start) - len(end)) + end


def raw_status(port: int, data: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    """Send `data` as is to 127.0.0.1:`port`; the status and the bytes of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    status = int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/1.1 ") else 0
    return status, bytes(received)


def run_imgtrace(
    *args: str,
    input: bytes | None = None,
    timeout: float = 120.0,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the `imgtrace` command in a subprocess, as a user would; text output."""
    return subprocess.run(
        [sys.executable, "-m", "imgtrace", *args],
        input=input.decode() if input is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
