"""`imgtrace import har` on HAR 1.2 files written to the spec (as devtools and mitmproxy do)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from source_fixtures import Cli, Open, har_entry, png, write_har

from recorder import import_har
from recorder._har import parse_har_time
from traces import FilePart, MultipartBody, TextField, TraceReader


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_har_entries_become_requests_with_timing_and_responses(
    tmp_path: Path, cli: Cli, open_trace: Open
) -> None:
    entries = [
        har_entry("2026-03-01T10:00:01.250Z", image=png(2), as_text=False, prompt="second"),
        har_entry("2026-03-01T10:00:00.000Z", image=png(1), output=png(50), prompt="first"),
        har_entry("2026-03-01T10:00:00.500Z", method="GET", url="http://h/v1/models", body=False),
        har_entry("2026-03-01T11:00:02.000+01:00", image=png(3), prompt="third", status=0),
    ]
    source = write_har(tmp_path / "capture.har", entries)
    out = tmp_path / "t.imgtrace"
    code, stdout, err = cli("import", "har", str(source), "-o", str(out), "--json", "-")
    assert code == 0, err
    assert "3 requests" in err and "1 entries skipped (not image edits)" in err
    counts = json.loads(stdout)
    assert counts["images"] == 3 and counts["output_images"] == 1
    reader, requests = open_trace(out)
    assert reader.header.source == "import:har"
    assert [r.offset_ns for r in requests] == [0, 1_250_000_000, 2_000_000_000]
    first, second, third = requests
    assert first.wall_ns == parse_har_time("2026-03-01T10:00:00Z")
    assert first.path == "/v1/images/edits"
    assert isinstance(first.body, MultipartBody)
    assert first.body.boundary == "harboundary123"  # the captured boundary is kept
    assert [(p.name, p.value) for p in first.body.parts if isinstance(p, TextField)] == [
        ("prompt", "first"),
        ("n", "1"),
    ]
    files = [p for p in first.body.parts if isinstance(p, FilePart)]
    assert [(f.name, f.filename, f.blob) for f in files] == [("image", "in.png", sha(png(1)))]
    assert dict(first.headers)["Authorization"] == "[redacted]"
    response = first.response
    assert response is not None and response.status == 200
    assert response.images == (sha(png(50)),)
    assert response.upload_done_ns == 8_000_000  # blocked 1 + connect 2 + send 5 ms
    assert response.first_byte_ns == 408_000_000
    assert response.done_ns == 420_500_000
    second_files = [p for p in second.body.parts if isinstance(p, FilePart)]  # type: ignore[union-attr]
    assert second_files[0].blob == sha(png(2))
    assert second.response is not None and second.response.envelope is None
    assert third.response is not None and third.response.error is not None
    assert third.response.error.kind == "aborted"


@given(
    st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1)),
    st.integers(-14 * 60, 14 * 60),
    st.integers(0, 999),
)
def test_har_times_parse_like_datetime(when: dt.datetime, zone_minutes: int, nanos: int) -> None:
    aware = when.replace(tzinfo=dt.timezone(dt.timedelta(minutes=zone_minutes)))
    # Nanosecond digits beyond what datetime can print, as some exporters write them.
    micros = f".{aware.microsecond:06d}"
    text = aware.isoformat(timespec="microseconds").replace(micros, f"{micros}{nanos:03d}")
    whole_seconds = (aware - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(
        seconds=1
    )
    expected = whole_seconds * 10**9 + aware.microsecond * 1000 + nanos
    assert parse_har_time(text) == expected
    if zone_minutes == 0:
        assert parse_har_time(text.replace("+00:00", "Z")) == expected


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prompt=st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
    as_text=st.booleans(),
)
def test_any_prompt_survives_either_body_form(tmp_path: Path, prompt: str, as_text: bool) -> None:
    # CR and LF inside a multipart field are legal; the text form carries them byte for byte.
    source = write_har(
        tmp_path / "c.har", [har_entry("2026-01-01T00:00:00Z", prompt=prompt, as_text=as_text)]
    )
    out = tmp_path / "t.imgtrace"
    import_har(source, out, force=True)
    with TraceReader(out) as reader:
        (request,) = reader.requests()
    assert isinstance(request.body, MultipartBody)
    texts = {p.name: p.value for p in request.body.parts if isinstance(p, TextField)}
    assert texts["prompt"] == prompt
