"""AIPerf interchange: raw profile exports and `single_turn` input files in, `single_turn` out.

- `import_aiperf_raw`: `profile_export_raw.jsonl` (`--export-level raw`) of an `image_edit` run
  becomes a trace with the original send times and the recorded responses.
- `import_aiperf_input` (`_aiperf_input.py`): a `single_turn` JSONL input file becomes the
  trace AIPerf would send for it.
- the exporter (`_aiperf_export.py`) writes the same `single_turn` shape back.

See docs/importing.md for the field mapping.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import IO, Any

import msgspec

from traces import (
    REDACTED,
    BlobSink,
    ErrorInfo,
    ErrorKind,
    FilePart,
    FormPart,
    MultipartBody,
    Request,
    Response,
    TextField,
    TraceWriter,
    error_kind_named,
    extension_for,
    secret_header_name,
    strip_images,
)

from ._aiperf_input import RESERVED_FIELDS, form_value, import_aiperf_input
from ._source_io import (
    ImportStats,
    InputError,
    JsonLine,
    check_image,
    decode_data_url,
    decode_error,
    empty_reason,
    import_header,
    import_output,
    read_line,
    scan_jsonl,
    stable_boundary,
)

__all__ = ["RESERVED_FIELDS", "form_value", "import_aiperf_input", "import_aiperf_raw"]

_DROPPED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding"})
# What AIPerf writes in its exports for a header value it redacted (`aiperf.common.redact`).
AIPERF_PLACEHOLDER = "<redacted>"


class _Meta(msgspec.Struct):
    request_start_ns: int | None = None
    request_ack_ns: int | None = None
    request_end_ns: int | None = None
    x_request_id: str | None = None
    x_correlation_id: str | None = None
    benchmark_phase: str | None = None
    was_cancelled: bool = False


class _PayloadKind(msgspec.Struct):
    prompt: Any = None
    image: msgspec.Raw = msgspec.Raw(b"null")  # left undecoded: it holds the base64 image
    url: Any = None

    def is_edit(self) -> bool:
        has_image = len(self.image) > 0 and self.image != msgspec.Raw(b"null")
        return isinstance(self.prompt, str) and (has_image or self.url is not None)


class _RawTiming(msgspec.Struct):
    """The first pass reads only what orders and filters records; images stay undecoded."""

    metadata: _Meta | None = None
    payload: msgspec.Raw = msgspec.Raw(b"null")
    # Present (non-empty) only in other AIPerf files: per-request metrics, single_turn lines.
    metrics: msgspec.Raw = msgspec.Raw(b"")
    text: msgspec.Raw = msgspec.Raw(b"")
    texts: msgspec.Raw = msgspec.Raw(b"")


class _RawResponse(msgspec.Struct):
    perf_ns: int | None = None
    text: str | None = None
    content_type: str | None = None


class _RawError(msgspec.Struct):
    code: int | None = None
    type: str | None = None
    message: str | None = None


class _RawRecord(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)
    payload: Any = None
    request_headers: Any = None
    status: int | None = None
    response_headers: Any = None
    responses: list[_RawResponse] = []
    error: _RawError | None = None


_timing_decoder = msgspec.json.Decoder(_RawTiming)
_kind_decoder = msgspec.json.Decoder(_PayloadKind)
_raw_decoder = msgspec.json.Decoder(_RawRecord)
_json_decoder = msgspec.json.Decoder()


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    """Headers from a dict or a list of pairs, without the ones a re-encoded body changes.

    AIPerf's placeholder for a value it redacted is never kept as a value: a credential header
    becomes imgtrace's `[redacted]` (never sent on replay), any other (AIPerf redacts
    `X-Session-Affinity`) is left out.
    """
    pairs: list[tuple[str, str]] = []
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = [
            tuple(item) for item in value if isinstance(item, (list, tuple)) and len(item) == 2
        ]
    else:
        return ()
    for name, item in items:
        name, item = str(name), str(item)
        if name.lower() in _DROPPED_HEADERS:
            continue
        if AIPERF_PLACEHOLDER in item:
            if not secret_header_name(name):
                continue
            item = REDACTED
        pairs.append((name, item))
    return tuple(pairs)


def _image_part(
    value: Any, name: str, add_blob: BlobSink, path: Path, line: int, index: int
) -> FilePart:
    """A file part for an AIPerf image payload: {b64_data, filename, content_type} or a data URL.

    A `b64_data` part gets the file name and type AIPerf's transport gives it (the key and
    `application/octet-stream` when the payload names none).
    """
    declared: str | None = None
    filename: str | None = None
    try:
        if isinstance(value, dict) and isinstance(value.get("b64_data"), str):
            data = base64.b64decode(value["b64_data"], validate=True)
            media = check_image(data, path, line, f"payload {name!r}")
            return FilePart(
                name=name,
                blob=add_blob(data, media),
                size=len(data),
                filename=str(value.get("filename") or name),
                content_type=str(value.get("content_type") or "application/octet-stream"),
            )
        elif isinstance(value, str) and value.startswith("data:"):
            declared, data = decode_data_url(value)
        elif isinstance(value, str):
            data = base64.b64decode(value, validate=True)
        else:
            raise InputError(path, line, f"payload {name!r} is neither b64_data nor a data URL")
    except (binascii.Error, ValueError) as exc:
        raise InputError(path, line, f"payload {name!r} does not decode: {exc}") from None
    media = check_image(data, path, line, f"payload {name!r}")
    if filename is None:
        filename = f"image{index or ''}.{extension_for(media)}"
    return FilePart(
        name=name,
        blob=add_blob(data, media),
        size=len(data),
        filename=filename,
        content_type=declared if declared and declared.startswith("image/") else media,
    )


def payload_body(
    payload: Any, add_blob: BlobSink, path: Path, line: int, boundary: str
) -> MultipartBody | None:
    """The multipart body AIPerf sent for an image_edit payload; None if it is not an edit."""
    if not isinstance(payload, dict) or not isinstance(payload.get("prompt"), str):
        return None
    if payload.get("image") is None and payload.get("url") is None:
        return None  # image generation, chat: not an edit
    parts: list[FormPart] = []
    for key, value in payload.items():
        if key == "image" or (isinstance(value, dict) and isinstance(value.get("b64_data"), str)):
            images = value if isinstance(value, list) else [value]
            for index, image in enumerate(images):
                parts.append(_image_part(image, str(key), add_blob, path, line, index))
        else:
            parts.extend(TextField(name=str(key), value=text) for text in form_value(value))
    return MultipartBody(parts=tuple(parts), boundary=boundary)


def _error_kind(error: _RawError | None, cancelled: bool) -> ErrorKind:
    if cancelled:
        return "aborted"
    return error_kind_named(f"{error.type if error else ''} {error.message if error else ''}")


def _raw_response(
    record: _RawRecord, zero: int, add_blob: BlobSink, stats: ImportStats
) -> tuple[Response | None, dict[str, Any]]:
    """The recorded response, and notes on what AIPerf did not record."""
    meta = record.metadata
    notes: dict[str, Any] = {}
    status = record.status
    if status is None and record.error is not None and record.error.code:
        status = record.error.code if 100 <= record.error.code <= 599 else None
    text = "".join(r.text for r in record.responses if r.text is not None)
    if not text and status is not None and record.error is not None and record.error.message:
        text = record.error.message  # AIPerf keeps an HTTP error's body as the error message
    if status is None and not text and record.error is None:
        return None, notes
    done = meta.request_end_ns - zero if meta.request_end_ns is not None else None
    if not record.responses and meta.request_end_ns == meta.request_start_ns:
        # AIPerf stamps a failed request's end at its start: that is no latency, not 0 ms.
        done = None
        notes["aiperf_no_end_time"] = True
    first_byte = meta.request_ack_ns - zero if meta.request_ack_ns is not None else None
    headers = _headers(record.response_headers)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    if content_type is None:
        content_type = next((r.content_type for r in record.responses if r.content_type), None)
    envelope: Any = None
    images: tuple[str, ...] = ()
    body_blob: str | None = None
    if text:
        try:
            envelope, images = strip_images(_json_decoder.decode(text), add_blob)
        except msgspec.DecodeError:
            body_blob = add_blob(text.encode(), content_type)
    error: ErrorInfo | None = None
    if status is None or meta.was_cancelled:
        message = (record.error.message or record.error.type or "") if record.error else ""
        error = ErrorInfo(kind=_error_kind(record.error, meta.was_cancelled), message=message)
    stats.responses += 1
    stats.output_images += len(images)
    response = Response(
        status=status,
        headers=headers,
        first_byte_ns=first_byte,
        done_ns=done,
        error=error,
        bytes_down=len(text.encode()),
        content_type=content_type,
        envelope=envelope,
        images=images,
        body_blob=body_blob,
    )
    return response, notes


def import_aiperf_raw(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    force: bool = False,
    skip_bad: bool = False,
    include_warmup: bool = False,
) -> ImportStats:
    """Turn an AIPerf `profile_export_raw.jsonl` of an image_edit run into a trace.

    Requests are written in send order with offsets from the first send; wall times are kept.
    Raises InputError naming the file and line for a bad line, unless `skip_bad`.
    """
    path = Path(source)
    stats = ImportStats(source=str(path), output=os.fspath(output))
    timed: list[tuple[int, JsonLine]] = []
    for line, data in scan_jsonl(path):
        try:
            first = _timing_decoder.decode(data)
            _refuse_other_aiperf_file(first, path)
            start = first.metadata.request_start_ns if first.metadata is not None else None
            if start is None:
                raise InputError(
                    path, line.number, "no metadata.request_start_ns: not a raw record"
                )
            assert first.metadata is not None
            if first.metadata.benchmark_phase == "warmup" and not include_warmup:
                stats.skipped_warmup += 1
                continue
            if not _is_edit(first.payload):
                stats.skipped_not_edit += 1
                continue
        except msgspec.DecodeError as exc:
            stats.skip_or_raise(InputError(path, line.number, decode_error(exc)), skip_bad)
            continue
        except InputError as error:
            if error.where is None:
                raise  # the whole file is of another kind: --skip-bad cannot help
            stats.skip_or_raise(error, skip_bad)
            continue
        timed.append((start, line))
    if not timed:
        raise InputError(path, None, empty_reason(stats, "raw records"))
    timed.sort(key=lambda item: (item[0], item[1].number))
    zero = timed[0][0]
    header = import_header("aiperf-raw", path, zero)
    seen: set[str] = set()
    with import_output(output, force, header, stats, skip_bad) as out, open(path, "rb") as file:

        def unique_request(line: JsonLine, start: int) -> Request | None:
            request = _raw_request(file, line, start, zero, path, out.writer, stats)
            return None if request is None else _unique(request, seen)

        for start, line in timed:
            out.add(unique_request, line, start)
    return stats


def _refuse_other_aiperf_file(first: _RawTiming, path: Path) -> None:
    """Name the AIPerf file given instead of a raw export, and what to do (one error per file)."""
    if len(first.metrics) and first.payload == msgspec.Raw(b"null"):
        raise InputError(
            path,
            None,
            "is AIPerf's per-request metrics export (profile_export.jsonl), which holds no "
            "request payloads or responses: rerun AIPerf with --export-level raw and import "
            "profile_export_raw.jsonl from the same artifact directory",
        )
    if first.metadata is None and (len(first.text) or len(first.texts)):
        raise InputError(
            path,
            None,
            "is an AIPerf single_turn input file, not a raw export: import it with "
            "`imgtrace import aiperf-input`",
        )


def _raw_request(
    file: IO[bytes],
    line: JsonLine,
    start: int,
    zero: int,
    path: Path,
    writer: TraceWriter,
    stats: ImportStats,
) -> Request | None:
    try:
        record = _raw_decoder.decode(read_line(file, line))
    except msgspec.DecodeError as exc:
        raise InputError(path, line.number, decode_error(exc)) from None
    meta = record.metadata
    ident = meta.x_request_id or meta.x_correlation_id or f"aiperf-{line.number:06d}"
    boundary = stable_boundary(ident)
    body = payload_body(record.payload, writer.add_blob, path, line.number, boundary)
    if body is None:
        stats.skipped_not_edit += 1
        return None
    headers = (
        ("content-type", f"multipart/form-data; boundary={boundary}"),
        *_headers(record.request_headers),
    )
    stats.images += sum(isinstance(part, FilePart) for part in body.parts)
    response, notes = _raw_response(record, zero, writer.add_blob, stats)
    return Request(
        id=ident,
        offset_ns=start - zero,
        path="/v1/images/edits",
        headers=headers,
        body=body,
        wall_ns=start,
        response=response,
        notes={"aiperf_line": line.number, **notes},
    )


def _is_edit(payload: msgspec.Raw) -> bool:
    try:
        return _kind_decoder.decode(payload).is_edit()
    except msgspec.DecodeError:
        return False  # not a JSON object: some other endpoint's payload


def _unique(request: Request, seen: set[str]) -> Request:
    ident = request.id
    suffix = 1
    while ident in seen:
        suffix += 1
        ident = f"{request.id}~{suffix}"
    seen.add(ident)
    if ident == request.id:
        return request
    return msgspec.structs.replace(request, id=ident)
