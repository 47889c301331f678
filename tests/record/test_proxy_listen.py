"""The proxy's listening address (exposure warnings, printed URLs) and its request-head limit."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx
import pytest
from recorder_helpers import (
    Upstream,
    decompressed,
    requests_of,
    wait_for,
)
from servers import ThreadServer, imgtrace_argv, start_process
from testproc import exact_head, raw_status

from imgtrace._headlimit import uvicorn_http
from recorder import Recorder, RecordingProxy, RecordOptions
from traces import DEFAULT_MAX_HEADER_SIZE, TraceReader


def test_listen_address_exposure_and_url() -> None:
    from recorder._listen import exposure_warning, is_exposed, listen_url

    for host in ("0.0.0.0", "::"):
        warning = exposure_warning(host, f"{host}:8080")
        assert warning is not None and "binds ALL network interfaces" in warning
    # An address of the host's own network (not loopback) is reachable by others too.
    for host in ("192.0.2.2", "10.1.2.3", "fd00::2"):
        assert is_exposed(host)
        warning = exposure_warning(host, f"{host}:8080")
        assert warning is not None and f"binds {host}, an address other machines" in warning
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert not is_exposed(host)
        assert exposure_warning(host, f"{host}:8080") is None
    assert listen_url("::", 8080) == "http://[::]:8080"
    assert listen_url("::1", 8080) == "http://[::1]:8080"
    assert listen_url("127.0.0.1", 8080) == "http://127.0.0.1:8080"


def test_record_warns_for_a_network_address(capsys: pytest.CaptureFixture[str]) -> None:
    from imgtrace._commands.record import parse_listen

    assert parse_listen("192.0.2.2:8080") == ("192.0.2.2", 8080)
    assert "binds 192.0.2.2, an address other machines can reach" in capsys.readouterr().err
    assert parse_listen("[::]:8080") == ("::", 8080)
    assert "binds ALL network interfaces" in capsys.readouterr().err
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    assert capsys.readouterr().err == ""


def test_record_prints_a_bracketed_ipv6_url(tmp_path: Path) -> None:
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            pass
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    argv = imgtrace_argv(
        "record", "--upstream", "http://127.0.0.1:9", "--listen", "[::1]:0",
        "-o", str(tmp_path / "v6.imgtrace"),
    )  # fmt: skip
    # Any "recording" line: the bracketed form is what is checked below.
    proxy = start_process(argv, re.compile(r"imgtrace: recording (\S+?:(\d+)) -> "), watch="stderr")
    url = f"http://[::1]:{proxy.port}"

    def serving() -> bool:
        try:
            httpx.get(url + "/health", timeout=1)  # 502: the upstream is down
        except httpx.TransportError:
            return False
        return True

    try:
        wait_for(serving, timeout=20)  # a stop before uvicorn serves would not be seen
    finally:
        proxy.stop()
    assert proxy.lines[-1].startswith(f"imgtrace: recording {url} -> "), proxy.lines


def test_header_over_the_limit_is_refused_and_recorded(upstream: Upstream, tmp_path: Path) -> None:
    limit = DEFAULT_MAX_HEADER_SIZE
    path = tmp_path / "limit.imgtrace"
    recorder = Recorder(path, options=RecordOptions(paths=("/echo",), user_key=b"k"))
    proxy = RecordingProxy(upstream.url, recorder)
    # The HTTP server settings of `imgtrace record`.
    server = ThreadServer(proxy, **uvicorn_http(limit)).start()
    value = "HUGE-HEADER-VALUE-" * ((1 << 20) // 18)  # 1 MiB
    try:
        response = httpx.get(server.url + "/echo", headers={"x-kept": "yes", "x-huge": value})
        assert response.status_code == 431
        error = response.json()["error"]
        assert error["code"] == "request_header_fields_too_large"
        assert f"limit of {limit:,} bytes" in error["message"]
        # Exactly at the limit passes; one byte more does not.
        status, answer = raw_status(server.port, exact_head("/echo", limit))
        assert status == 200, answer[:200]
        assert raw_status(server.port, exact_head("/echo", limit + 1))[0] == 431
    finally:
        server.stop()
        recorder.close()
    # The upstream saw only the request within the limit.
    assert [seen["path"] for seen in upstream.seen] == ["/echo"]
    assert "x-huge" not in upstream.seen[0]["headers"]
    assert b"HUGE-HEADER-VALUE" not in decompressed(path)
    with TraceReader(path) as reader:
        refused, passed, over_by_one = requests_of(reader)
    assert refused.response.status == 431 and over_by_one.response.status == 431
    assert refused.response.error.kind == "protocol"
    assert "not forwarded" in refused.response.error.message
    assert refused.notes["head_too_large"]["limit"] == limit
    assert refused.notes["head_too_large"]["size"] > limit
    assert dict(refused.headers)["x-kept"] == "yes"
    assert "x-huge" not in dict(refused.headers)
    assert passed.response.status == 200 and passed.response.error is None
