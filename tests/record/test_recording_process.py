"""The recording process of `imgtrace record`: its hand-off, its death, a stall, Ctrl-C.

The proxy forwards; a process of its own records. These tests stop, kill and interrupt that
process (and the proxy) for real, on 127.0.0.1, and check that forwarding never waits, that
memory stays within the budget, and that the trace always ends closed, with the counts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from multiprocessing import Pipe
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recorder_helpers import (
    StartProxy,
    Upstream,
    has_exited,
    png,
    recording_pid,
    requests_of,
    requests_on_disk,
    rss_peak_kib,
    wait_for,
)
from servers import start_record

from recorder import RecorderProcess, RecorderStats, RecordOptions
from recorder._capture import Exchange
from recorder._intake import STOP, Handoff
from recorder._rec_child import _exchange_of
from recorder._rec_wire import Capture, Forwarded, decode_feed, encode
from traces import ErrorInfo, MultipartBody, TraceReader


def _finished(seq: int, body: bytes, response: bytes) -> Exchange:
    exchange = Exchange(
        id=f"{seq:06d}",
        arrival_ns=seq,
        wall_ns=seq,
        method="POST",
        path="/v1/images/edits",
        query="",
        headers=[("content-type", "application/json")],
        max_body=1 << 20,
    )
    exchange.add_request_chunk(body)
    exchange.status = 200
    exchange.add_response_chunk(response)
    return exchange


def test_the_handoff_leaves_bodies_out_then_drops_and_never_waits() -> None:
    stats = RecorderStats()
    handoff = Handoff(RecordOptions(max_queue=4, max_queue_bytes=6000), stats)
    started = time.monotonic()
    exchanges = [_finished(i, b"u" * 1500, b"r" * 500) for i in range(6)]
    for exchange in exchanges:
        handoff.put(exchange)  # nobody takes: the consumer is stalled
    assert time.monotonic() - started < 1.0
    # Two fit with their 2,000 bytes of bodies, the next two only without; the rest is over
    # the count of four.
    assert [e.left_out is None for e in exchanges[:4]] == [True, True, False, False]
    assert exchanges[2].request_chunks == [] and exchanges[2].response_chunks == []
    assert stats.bodies_dropped_behind == 2 and stats.dropped_queue_full == 2
    items, held = handoff.held
    assert items == 4 and held <= 6000
    taken = handoff.take(timeout=0)
    assert isinstance(taken, tuple) and taken[0] is exchanges[0]
    handoff.release(taken[1])
    assert handoff.close() and not handoff.close()
    handoff.put(_finished(9, b"", b""))
    assert stats.dropped_after_close == 1
    for _ in range(3):
        assert isinstance(handoff.take(timeout=0), tuple)
    assert handoff.take(timeout=0) is STOP


_text = st.text(max_size=20)


@settings(max_examples=40, deadline=None)
@given(
    request=st.lists(st.binary(max_size=2000), max_size=5),
    response=st.lists(st.binary(max_size=2000), max_size=5),
    headers=st.lists(st.tuples(_text, _text), max_size=4),
    # Notes are msgpack values (trace records are msgpack): integers within its 64-bit range.
    notes=st.dictionaries(
        _text, st.one_of(_text, st.integers(-(2**63), 2**64 - 1), st.none()), max_size=3
    ),
    status=st.one_of(st.none(), st.integers(100, 599)),
    error=st.one_of(st.none(), st.sampled_from(["aborted", "read", "timeout"])),
)
def test_an_exchange_crosses_the_pipe_intact(
    request: list[bytes],
    response: list[bytes],
    headers: list[tuple[str, str]],
    notes: dict[str, Any],
    status: int | None,
    error: str | None,
) -> None:
    exchange = _finished(7, b"", b"")
    exchange.request_chunks, exchange.response_chunks = request, response
    exchange.headers, exchange.notes, exchange.status = headers, notes, status
    if error is not None:
        exchange.fail(error, f"because {error}")  # type: ignore[arg-type]
    receiving, sending = Pipe(duplex=False)
    with receiving, sending:
        head = Exchange(**{**exchange.__dict__, "request_chunks": [], "response_chunks": []})
        capture = Capture(head, len(request), len(response), 1, 2, Forwarded(seen=1))
        sending.send_bytes(encode(capture))
        for chunk in (*request, *response):
            sending.send_bytes(chunk)
        message = decode_feed(receiving.recv_bytes())
        assert isinstance(message, Capture)
        assert vars(_exchange_of(receiving, message)) == vars(exchange)
    assert exchange.error is None or isinstance(exchange.error, ErrorInfo)


def _post_image(client: httpx.Client, seed: int, size: int = 32) -> httpx.Response:
    return client.post(
        "/v1/images/edits",
        data={"prompt": f"p{seed}"},
        files={"image": ("i.png", png(seed, size), "image/png")},
    )


def test_a_dead_recording_process_is_reported_and_the_trace_sealed(
    upstream: Upstream, start_proxy: StartProxy, capfd: pytest.CaptureFixture[str]
) -> None:
    proxy = start_proxy(upstream.url, flush_interval=0.05)
    with httpx.Client(base_url=proxy.url) as client:
        assert all(_post_image(client, i).status_code == 200 for i in range(3))
        wait_for(lambda: requests_on_disk(proxy.path) == 3)
        assert proxy.recorder.pid is not None
        os.kill(proxy.recorder.pid, signal.SIGKILL)
        wait_for(lambda: proxy.recorder.failure is not None)
        # Forwarding goes on; these are counted as lost with the recording process.
        assert all(_post_image(client, i).status_code == 200 for i in range(3, 5))
    reader = proxy.close()
    stats = proxy.recorder.stats
    assert (stats.seen, stats.recorded, stats.dropped_recorder_died) == (5, 3, 2)
    assert stats.files == [str(proxy.path)]
    assert reader.closed_cleanly
    assert [r.id for r in requests_of(reader)] == ["000001", "000002", "000003"]
    metadata = reader.metadata()
    assert metadata["dropped_records"] == 2
    assert metadata["recorder"]["dropped_recorder_died"] == 2
    assert "was killed by SIGKILL" in metadata["recording_process"]
    warnings = [line for line in capfd.readouterr().err.splitlines() if "recording process" in line]
    assert len(warnings) == 1
    assert "traffic is still forwarded" in warnings[0]


def test_a_recording_process_killed_before_its_first_record_leaves_an_empty_trace(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    out = tmp_path / "never.imgtrace"
    recorder = RecorderProcess(out, options=RecordOptions(paths=("/x",)), warn=lines.append)
    assert recorder.pid is not None
    os.kill(recorder.pid, signal.SIGKILL)
    wait_for(lambda: recorder.failure is not None)
    exchange = recorder.begin("POST", "/x", "", [])
    assert exchange is not None
    recorder.submit(exchange)
    stats = recorder.close()
    assert (stats.seen, stats.recorded, stats.dropped_recorder_died) == (1, 0, 1)
    assert len(lines) == 1 and "was killed by SIGKILL" in lines[0]
    with TraceReader(out) as reader:
        assert reader.closed_cleanly and list(reader.requests()) == []
        assert reader.metadata()["dropped_records"] == 1
        assert "killed by SIGKILL" in reader.metadata()["recording_process"]


RecordCli = tuple[subprocess.Popen[str], str]


@pytest.fixture
def record_cli() -> Iterator[Any]:
    """`record_cli(*args)`: `imgtrace record` in a session of its own (like a terminal job)."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> RecordCli:
        proxy = start_record(*args, text=True, start_new_session=True)
        started.append(proxy.process)
        return proxy.process, proxy.url

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def test_ctrl_c_stops_both_processes_with_a_closed_trace(
    upstream: Upstream, record_cli: Any, tmp_path: Path
) -> None:
    out = tmp_path / "ctrl-c.imgtrace"
    process, url = record_cli("--upstream", upstream.url, "-o", str(out))
    recording = recording_pid(process.pid)
    with httpx.Client(base_url=url) as client:
        assert all(_post_image(client, i).status_code == 200 for i in range(2))
    os.killpg(process.pid, signal.SIGINT)  # what a terminal sends: to the whole job
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "recorded 2 of 2 matching requests" in stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    wait_for(lambda: has_exited(recording))
    with TraceReader(out) as reader:
        assert reader.closed_cleanly and len(list(reader.requests())) == 2
        assert reader.metadata()["recorder"]["recorded"] == 2


def test_record_says_in_one_line_that_its_recording_process_died(
    upstream: Upstream, record_cli: Any, tmp_path: Path
) -> None:
    out = tmp_path / "died.imgtrace"
    process, url = record_cli(
        "--upstream", upstream.url, "-o", str(out), "--paths", "/echo", "--flush-interval", "0.05"
    )
    recording = recording_pid(process.pid)
    with httpx.Client(base_url=url) as client:
        for i in range(2):
            assert client.post("/echo", content=b"%d" % i).status_code == 200
        wait_for(lambda: requests_on_disk(out) == 2)
        os.kill(recording, signal.SIGKILL)
        wait_for(lambda: has_exited(recording))
        for i in range(2, 5):
            assert client.post("/echo", content=b"%d" % i).json()["size"] == 1
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    died = [line for line in stderr.splitlines() if "recording process" in line]
    assert len(died) == 2, stderr  # the moment it died, and the summary at exit
    assert died[0].startswith(f"imgtrace: warning: the recording process (pid {recording}) ")
    assert "was killed by SIGKILL" in died[0]
    assert "recorded 2 of 5 matching requests" in died[1]
    assert "DROPPED 3 records" in died[1] and "3 lost with the recording process" in died[1]
    with TraceReader(out) as reader:
        assert reader.closed_cleanly
        assert [r.id for r in reader.requests()] == ["000001", "000002"]
        assert reader.metadata()["dropped_records"] == 3


def test_a_stalled_recording_process_never_delays_forwarding(
    upstream: Upstream, record_cli: Any, tmp_path: Path
) -> None:
    out = tmp_path / "stalled.imgtrace"
    budget_mib, requests = 4, 40
    process, url = record_cli(
        "--upstream", upstream.url, "-o", str(out), "--max-backlog", f"{budget_mib}M"
    )
    recording = recording_pid(process.pid)
    # A random 420x420 PNG: about 0.5 MB up and, as base64 in the echo, 0.7 MB down.
    with httpx.Client(base_url=url, timeout=10) as client:
        assert _post_image(client, 0, size=420).status_code == 200
        wait_for(lambda: requests_on_disk(out) == 1)
        before = rss_peak_kib(process.pid)
        os.kill(recording, signal.SIGSTOP)
        try:
            started = time.monotonic()
            for seed in range(1, requests + 1):
                assert _post_image(client, seed, size=420).status_code == 200
            stalled_for = time.monotonic() - started
            growth_mib = (rss_peak_kib(process.pid) - before) / 1024
        finally:
            os.kill(recording, signal.SIGCONT)
    # Had forwarding waited for the stopped recorder, the requests above would have hung.
    assert stalled_for < 60
    # Unbounded, the proxy would hold all 40 exchanges (about 50 MB) for the recorder.
    assert growth_mib < budget_mib + 16, f"forwarding process grew by {growth_mib:.0f} MiB"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    with TraceReader(out) as reader:
        assert reader.closed_cleanly
        records = list(reader.requests())
        behind = reader.metadata()["recorder"]["bodies_dropped_behind"]
    assert len(records) == requests + 1  # every exchange is recorded, with or without bodies
    left_out = [r for r in records if str(r.notes.get("body_dropped", "")).startswith("the rec")]
    assert behind == len(left_out) >= requests - 2 * budget_mib
    assert all(r.response is not None and r.response.images == () for r in left_out)
    assert all(r.response is not None and r.response.status == 200 for r in left_out)
    with_bodies = [r for r in records if isinstance(r.body, MultipartBody)]
    assert len(with_bodies) == len(records) - behind
    assert f"{behind} without bodies (the recorder fell behind" in stderr
    # Said once, when it began: not once per exchange.
    assert stderr.count("imgtrace: warning: the recorder is behind") == 1
