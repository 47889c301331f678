"""Property tests: records round-trip, multipart round-trips, truncation yields a prefix."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traces import (
    ErrorInfo,
    FilePart,
    FormPartData,
    Header,
    JsonBody,
    MultipartBody,
    Outcome,
    RawBody,
    Redaction,
    Request,
    Response,
    TextField,
    TraceFormatError,
    TraceReader,
    TraceWriter,
    encode_multipart,
    parse_multipart,
)

names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"%'),
    min_size=1,
    max_size=12,
)
small_text = st.text(max_size=30)
digests = st.binary(min_size=32, max_size=32).map(bytes.hex)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
form_parts = st.one_of(
    st.builds(TextField, name=names, value=small_text),
    st.builds(
        FilePart, name=names, blob=digests, size=st.integers(0, 10**9), filename=st.none() | names
    ),
)
bodies = st.one_of(
    st.builds(
        MultipartBody,
        parts=st.lists(form_parts, max_size=4).map(tuple),
        boundary=st.text("abc123", max_size=20),
    ),
    st.builds(JsonBody, value=json_values),
    st.builds(
        RawBody, blob=digests, size=st.integers(0, 10**6), content_type=st.none() | small_text
    ),
)
responses = st.builds(
    Response,
    status=st.none() | st.integers(100, 599),
    headers=st.lists(st.tuples(names, small_text), max_size=3).map(tuple),
    error=st.none()
    | st.builds(ErrorInfo, kind=st.sampled_from(["connect", "timeout"]), message=small_text),
    envelope=json_values,
    images=st.lists(digests, max_size=2).map(tuple),
)
requests = st.builds(
    Request,
    id=st.text(min_size=1, max_size=8),
    offset_ns=st.integers(0, 2**62),
    path=st.just("/v1/images/edits"),
    method=st.sampled_from(["POST", "GET"]),
    query=small_text,
    headers=st.lists(
        st.tuples(st.sampled_from(["x-a", "x-b", "user-agent"]), small_text), max_size=3
    ).map(tuple),
    body=st.none() | bodies,
    wall_ns=st.none() | st.integers(0, 2**62),
    response=st.none() | responses,
)
outcomes = st.builds(
    Outcome,
    request_id=st.text(max_size=8),
    seq=st.integers(0, 2**31),
    intended_ns=st.integers(0, 2**62),
    sent_ns=st.none() | st.integers(0, 2**62),
    status=st.none() | st.integers(100, 599),
    bytes_up=st.integers(0, 2**40),
    warmup=st.booleans(),
    images=st.lists(digests, max_size=2).map(tuple),
)
records = st.lists(st.one_of(requests, outcomes, st.binary(max_size=300)), max_size=25)


def _write(path: Path, items: list[Request | Outcome | bytes], flush_records: int) -> list[object]:
    expected: list[object] = []
    writer = TraceWriter(path, Header(source="prop"), flush_records=flush_records, force=True)
    # Every writer redacts what must never reach a file; what comes back is the redacted record.
    redaction = Redaction()
    for item in items:
        if isinstance(item, bytes):
            digest = writer.add_blob(item)
            if digest not in {getattr(e, "digest", None) for e in expected}:
                expected.append(("blob", digest, item))
        else:
            writer.write(item)
            if isinstance(item, Request):
                expected.append(redaction.apply_to_request(item))
            else:
                expected.append(redaction.apply_to_outcome(item))
    writer.close()
    return _dedup(expected)


def _dedup(expected: list[object]) -> list[object]:
    seen: set[str] = set()
    out = []
    for item in expected:
        if isinstance(item, tuple):
            if item[1] in seen:
                continue
            seen.add(item[1])
        out.append(item)
    return out


@contextmanager
def _written(
    items: list[Request | Outcome | bytes], flush_records: int
) -> Iterator[tuple[Path, list[object]]]:
    """A trace of `items` in a fresh folder, and the records it must read back."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.imgtrace"
        yield path, _write(path, items, flush_records)


def _read(path: Path) -> list[object]:
    """The records of a trace after its header, comparable with `_write`'s."""
    with TraceReader(path) as reader:
        return [_as_comparable(r) for r in reader.records()][1:]


def _as_comparable(record: object) -> object:
    from traces import Blob

    if isinstance(record, Blob):
        return ("blob", record.digest, record.data)
    return record


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=records, flush_records=st.integers(1, 6))
def test_any_sequence_of_records_round_trips(
    items: list[Request | Outcome | bytes], flush_records: int
) -> None:
    with _written(items, flush_records) as (path, expected):
        assert _read(path) == expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=records, cut=st.floats(0, 1))
def test_truncating_at_any_byte_yields_a_prefix(
    items: list[Request | Outcome | bytes], cut: float
) -> None:
    with _written(items, 3) as (path, expected):
        data = path.read_bytes()
        for position in {int(cut * len(data)), len(data) - 1, len(data) // 2}:
            cut_path = path.with_name("cut.imgtrace")
            cut_path.write_bytes(data[:position])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    read = _read(cut_path)
                except TraceFormatError:
                    # Only a cut inside the signature or the header frame may refuse the file.
                    assert position < _header_end(data)
                    continue
            assert read == expected[: len(read)]


def _header_end(data: bytes) -> int:
    import zstandard

    from traces._framing import SIGNATURE_FRAME

    stream = zstandard.ZstdDecompressor().decompressobj()
    stream.decompress(data[len(SIGNATURE_FRAME) :])
    return len(data) - len(stream.unused_data)


part_data = st.builds(
    FormPartData,
    name=names,
    data=st.binary(max_size=200),
    filename=st.none() | names,
    content_type=st.none()
    | st.sampled_from(["image/png", "text/plain; charset=utf-8", "application/octet-stream"]),
)


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(part_data, max_size=6),
    boundary=st.text("abcdefXYZ0123456789-_", min_size=8, max_size=40),
)
def test_multipart_encode_then_parse_keeps_everything(
    parts: list[FormPartData], boundary: str
) -> None:
    body = encode_multipart(parts, boundary)
    assert parse_multipart(body, f"multipart/form-data; boundary={boundary}") == parts


@settings(max_examples=100, deadline=None)
@given(
    fields=st.lists(st.tuples(names, st.text(max_size=30)), max_size=4),
    files=st.lists(st.tuples(names, names, st.binary(max_size=100)), max_size=3),
)
def test_parse_then_encode_reproduces_an_httpx_body(
    fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]
) -> None:
    request = httpx.Request(
        "POST",
        "http://x/v1/images/edits",
        data=dict(fields) if fields else None,
        files=[(name, (filename, data, "image/png")) for name, filename, data in files] or None,
    )
    raw = request.read()
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/"):
        return
    boundary = content_type.split("boundary=")[1]
    parsed = parse_multipart(raw, content_type)
    assert encode_multipart(parsed, boundary) == raw
