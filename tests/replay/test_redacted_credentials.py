"""Credentials a recording redacted: never sent as placeholders, named before sending, suppliable.

A recorded trace keeps `Authorization: [redacted]` and `?api_key=[redacted]`. A replay without
`--header`/`--query` says so before the first send, sends neither placeholder, and exits 2 with
the hint when every request is refused with 401 or 403.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from raw_capture import RawCaptureServer
from replay_helpers import write_trace

from replayer import Shaper, parse_query
from traces import Request, UsageError

SECRET_KEY = "query-SECRET-4711"
SECRET_TOKEN = "sk-header-SECRET-0815"


def _trace(tmp_path: Path) -> Path:
    return write_trace(
        tmp_path / "t.imgtrace",
        [0, 5, 10],
        headers=[("authorization", "[redacted]"), ("x-team", "imaging")],
        query=lambda i: f"size=512x512&api_key=%5Bredacted%5D&note=a+b%21{i}",
    )


def _replay(trace: Path, target: str, run: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imgtrace", "replay", str(trace), "--target", target]
        + ["-o", str(run), "--no-progress", "--speed", "100", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KEY": SECRET_KEY, "TOKEN": SECRET_TOKEN},
    )


def test_a_replay_without_credentials_says_so_and_exits_2_when_all_are_refused(
    tmp_path: Path,
) -> None:
    server = RawCaptureServer(status=401, response_body=b'{"error": "no key"}')
    try:
        done = _replay(_trace(tmp_path), server.url, tmp_path / "run.imgtrace")
    finally:
        server.close()
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    header_hint = next(line for line in lines if "authorization header was redacted" in line)
    assert header_hint.startswith("imgtrace: warning: ")
    assert "--header 'authorization: Bearer ${TOKEN}'" in header_hint
    assert "every request" in header_hint
    assert any("query parameter api_key was redacted" in line for line in lines)
    assert lines[-1].startswith("imgtrace: error: every one of the 3 requests was refused")
    assert "--header" in lines[-1]
    assert len(server.requests) == 3
    lines_sent = sorted(request.head.split(b"\r\n")[0] for request in server.requests)
    assert lines_sent == [
        b"POST /v1/images/edits?size=512x512&note=a+b%21" + str(i).encode() + b" HTTP/1.1"
        for i in range(3)
    ]
    for request in server.requests:
        assert b"redacted" not in request.head.lower()
        assert request.header("x-team") == "imaging"


def test_supplied_credentials_are_sent_and_never_written_to_the_run(tmp_path: Path) -> None:
    server = RawCaptureServer()
    run = tmp_path / "run.imgtrace"
    try:
        done = _replay(
            _trace(tmp_path),
            server.url,
            run,
            "--header",
            "Authorization: Bearer ${TOKEN}",
            "--query",
            "api_key=${KEY}",
        )
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert "redacted" not in done.stderr
    first = server.requests[0]
    assert first.head.split(b"\r\n")[0].startswith(
        b"POST /v1/images/edits?size=512x512&api_key=" + SECRET_KEY.encode() + b"&note=a+b%210 "
    )
    assert first.header("authorization") == f"Bearer {SECRET_TOKEN}"
    stored = run.read_bytes()
    assert SECRET_KEY.encode() not in stored and SECRET_TOKEN.encode() not in stored


def test_all_refused_with_403_exits_2_too_but_some_refused_does_not(tmp_path: Path) -> None:
    trace = _trace(tmp_path)
    forbidden = RawCaptureServer(status=403, response_body=b"{}")
    try:
        assert _replay(trace, forbidden.url, tmp_path / "a").returncode == 2
    finally:
        forbidden.close()
    mixed = RawCaptureServer(every_other_status=401)
    try:
        done = _replay(trace, mixed.url, tmp_path / "b")
    finally:
        mixed.close()
    assert done.returncode == 0, done.stderr
    assert "401: 1" in done.stderr


def test_query_shaping_keeps_what_it_does_not_change() -> None:
    shaper = Shaper(target="http://h", queries=[("api_key", "k 1")])
    assert shaper.query_for("a=1&api_key=[redacted]&b=x+y") == "a=1&api_key=k+1&b=x+y"
    assert shaper.query_for("a=%7E") == "a=%7E&api_key=k+1"
    plain = Shaper(target="http://h")
    assert plain.query_for("a=%7E&b") == "a=%7E&b"
    assert plain.query_for("sig=%3Credacted%3E&a=1") == "a=1"
    request = Request(id="r", offset_ns=0, path="/", query="api_key=[redacted]")
    assert plain.unsupplied_secrets(request) == ["query api_key"]
    assert shaper.unsupplied_secrets(request) == []


def test_a_bad_query_flag_is_one_clear_error() -> None:
    for text in ("novalue", "=x", "a b=1"):
        try:
            parse_query(text, {})
        except UsageError as exc:
            assert "--query" in str(exc)
        else:
            raise AssertionError(text)
    try:
        parse_query("k=${UNSET_VARIABLE_X}", {})
    except UsageError as exc:
        assert "UNSET_VARIABLE_X is not set" in str(exc)
    else:
        raise AssertionError("unset variable accepted")


def test_an_interleaved_replay_exits_2_naming_the_targets_that_refused_everything(
    tmp_path: Path,
) -> None:
    good, refusing = RawCaptureServer(), RawCaptureServer(status=403, response_body=b"{}")
    try:
        trace = _trace(tmp_path)
        both = _replay(trace, f"a={good.url}", tmp_path / "ab", "--target", f"b={refusing.url}")
        only = _replay(trace, f"b={refusing.url}", tmp_path / "b", "--target", f"c={refusing.url}")
    finally:
        good.close()
        refusing.close()
    # As with a target nothing could connect to: one target that refused everything is enough.
    assert both.returncode == 2, both.stderr
    assert "every one of the requests to b was refused" in both.stderr.splitlines()[-1]
    assert only.returncode == 2
    assert "every one of the requests to b, c was refused" in only.stderr.splitlines()[-1]
