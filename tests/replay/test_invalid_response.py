"""A 2xx whose body is not JSON is an error of its own kind, `invalid-response`, everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from raw_capture import OK_JSON, RawCaptureServer
from replay_helpers import write_trace
from testproc import run_imgtrace

from traces import INVALID_RESPONSE, TraceReader, invalid_response


def _replay(trace: Path, target: str, out: Path) -> dict[str, object]:
    done = run_imgtrace(
        "replay", str(trace), "--target", target, "-o", str(out), "--no-progress", "--json", "-"
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, object] = json.loads(done.stdout)
    return summary


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html", b"<html>502 from the gateway, sent as 200</html>"),
        ("application/json", b'{"data": [{"b64_json": "iVBOR'),
        ("application/json", b""),
    ],
)
def test_a_200_that_is_not_json_is_an_invalid_response_in_the_run_report_and_compare(
    tmp_path: Path, content_type: str, body: bytes
) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0, 5, 10, 15])
    good, bad = RawCaptureServer(), RawCaptureServer(every_other=(content_type, body))
    try:
        base = _replay(trace, good.url, tmp_path / "base.imgtrace")
        summary = _replay(trace, bad.url, tmp_path / "bad.imgtrace")
    finally:
        good.close()
        bad.close()
    assert base["errors"] == 0
    assert summary["errors"] == 2
    assert summary["error_kinds"] == {INVALID_RESPONSE: 2}
    with TraceReader(tmp_path / "bad.imgtrace") as reader:
        kinds = sorted(o.error.kind if o.error else "" for o in reader.outcomes())
    assert kinds == ["", "", INVALID_RESPONSE, INVALID_RESPONSE]

    report = run_imgtrace("report", "--json", "-", str(tmp_path / "bad.imgtrace"))
    assert report.returncode == 0, report.stderr
    assert INVALID_RESPONSE in report.stdout
    compared = run_imgtrace(
        "compare", str(tmp_path / "base.imgtrace"), str(tmp_path / "bad.imgtrace"), "--json", "-"
    )
    assert INVALID_RESPONSE in compared.stdout, compared.stderr


def test_the_rule() -> None:
    assert invalid_response(200, "application/json", OK_JSON) is None
    assert invalid_response(500, "text/html", b"<html>") is None  # an HTTP error already
    assert invalid_response(200, "image/png", b"\x89PNG") is None  # the image itself
    assert invalid_response(200, "text/plain", b'{"data": []}') is None  # JSON all the same
    error = invalid_response(201, None, b"")
    assert error is not None and error.kind == INVALID_RESPONSE
    assert error.message == "HTTP 201 with an empty body that is not valid JSON"
