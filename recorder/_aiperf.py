"""AIPerf interchange: raw profile exports and `single_turn` input files in, `single_turn` out.

- `import_aiperf_raw`: `profile_export_raw.jsonl` (`--export-level raw`) of an `image_edit` run
  becomes a trace with the original send times and the recorded responses.
- `import_aiperf_input`: a `single_turn` JSONL input file (`text`, `image`, `timestamp`/`delay`,
  `extra`) becomes a trace, as AIPerf would send it.
- the exporter (`_aiperf_export.py`) writes the same `single_turn` shape back.

See docs/importing.md for the field mapping.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from pathlib import Path
from typing import IO, Any

import msgspec

from traces import (
    BlobSink,
    ErrorInfo,
    FilePart,
    FormPart,
    Header,
    MultipartBody,
    Request,
    Response,
    TextField,
    TraceWriter,
    UsageError,
    extension_for,
    strip_images,
)

from ._source_io import (
    ImportStats,
    InputError,
    JsonLine,
    atomic_path,
    check_image,
    decode_data_url,
    decode_error,
    empty_reason,
    finish_import,
    open_trace_output,
    read_line,
    scan_jsonl,
    stable_boundary,
)

__all__ = ["RESERVED_FIELDS", "form_value", "import_aiperf_input", "import_aiperf_raw"]

# Fields AIPerf's image_edit endpoint sets itself and refuses from extras.
RESERVED_FIELDS = frozenset({"prompt", "image", "url", "mask"})
_DROPPED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding"})


class _Meta(msgspec.Struct):
    request_start_ns: int | None = None
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

    metadata: _Meta = msgspec.field(default_factory=_Meta)
    payload: msgspec.Raw = msgspec.Raw(b"null")


class _RawResponse(msgspec.Struct):
    perf_ns: int | None = None
    text: str | None = None


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
_json_encoder = msgspec.json.Encoder()


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    """Headers from a dict or a list of pairs, without the ones a re-encoded body changes."""
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
        if str(name).lower() not in _DROPPED_HEADERS:
            pairs.append((str(name), str(item)))
    return tuple(pairs)


def form_value(value: Any) -> list[str]:
    """A payload value as form field values, the way AIPerf's transport sends them."""
    if value is None:
        return []
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, list):
        return [item for entry in value for item in form_value(entry)]
    if isinstance(value, dict):
        return [_json_encoder.encode(value).decode()]
    return [str(value)]


def _image_part(
    value: Any, name: str, add_blob: BlobSink, path: Path, line: int, index: int
) -> FilePart:
    """A file part for an AIPerf image payload: {b64_data, filename, content_type} or a data URL."""
    declared: str | None = None
    filename: str | None = None
    try:
        if isinstance(value, dict) and isinstance(value.get("b64_data"), str):
            data = base64.b64decode(value["b64_data"], validate=True)
            declared = value.get("content_type") or None
            filename = value.get("filename") or None
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
        if key == "image":
            images = value if isinstance(value, list) else [value]
            for index, image in enumerate(images):
                parts.append(_image_part(image, key, add_blob, path, line, index))
        else:
            parts.extend(TextField(name=str(key), value=text) for text in form_value(value))
    return MultipartBody(parts=tuple(parts), boundary=boundary)


def _error_kind(error: _RawError | None, cancelled: bool) -> str:
    if cancelled:
        return "aborted"
    name = f"{error.type if error else ''} {error.message if error else ''}".lower()
    if "timeout" in name:
        return "timeout"
    if "connect" in name:
        return "connect"
    return "upstream"


def _raw_response(
    record: _RawRecord, zero: int, add_blob: BlobSink, stats: ImportStats
) -> Response | None:
    meta = record.metadata
    status = record.status
    if status is None and record.error is not None and record.error.code:
        status = record.error.code if 100 <= record.error.code <= 599 else None
    text = "".join(r.text for r in record.responses if r.text is not None)
    if status is None and not text and record.error is None:
        return None
    done = meta.request_end_ns - zero if meta.request_end_ns is not None else None
    headers = _headers(record.response_headers)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
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
    stats.images += len(images)
    return Response(
        status=status,
        headers=headers,
        done_ns=done,
        error=error,
        bytes_down=len(text.encode()),
        content_type=content_type,
        envelope=envelope,
        images=images,
        body_blob=body_blob,
    )


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
            start = first.metadata.request_start_ns
            if start is None:
                raise InputError(
                    path, line.number, "no metadata.request_start_ns: not a raw record"
                )
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
            stats.skip_or_raise(error, skip_bad)
            continue
        timed.append((start, line))
    if not timed:
        raise InputError(path, None, empty_reason(stats, "raw records"))
    timed.sort(key=lambda item: (item[0], item[1].number))
    zero = timed[0][0]
    header = Header(
        source="import:aiperf-raw",
        created_ns=time.time_ns(),
        start_wall_ns=zero,
        metadata={"import": {"format": "aiperf-raw", "file": path.name}},
    )
    seen: set[str] = set()
    with (
        atomic_path(output, force) as temporary,
        open_trace_output(temporary, header) as writer,
        open(path, "rb") as file,
    ):
        for start, line in timed:
            try:
                request = _raw_request(file, line, start, zero, path, writer, stats)
            except InputError as error:
                stats.skip_or_raise(error, skip_bad)
                continue
            if request is not None:
                request = _unique(request, seen)
                writer.write(request)
                stats.requests += 1
        finish_import(writer, stats, path)
    return stats


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
    return Request(
        id=ident,
        offset_ns=start - zero,
        path="/v1/images/edits",
        headers=headers,
        body=body,
        wall_ns=start,
        response=_raw_response(record, zero, writer.add_blob, stats),
        notes={"aiperf_line": line.number},
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


# -- single_turn input files ------------------------------------------------------------------


class _TurnTiming(msgspec.Struct):
    timestamp: float | None = None
    delay: float | None = None


_turn_timing_decoder = msgspec.json.Decoder(_TurnTiming)


def _turn_offsets(
    lines: list[tuple[JsonLine, _TurnTiming]], rate: float | None
) -> list[tuple[int, JsonLine]]:
    """Offsets in ns: timestamps relative to the earliest; delays after the previous line."""
    stamps = [t.timestamp for _, t in lines if t.timestamp is not None]
    zero = min(stamps) if stamps else 0.0
    step = 1e9 / rate if rate else 0.0
    previous: int | None = None
    out: list[tuple[int, JsonLine]] = []
    for line, timing in lines:
        if timing.timestamp is not None:
            offset = round((timing.timestamp - zero) * 1e6)
        elif previous is None:
            offset = 0
        elif timing.delay is not None:
            offset = previous + round(timing.delay * 1e6)
        else:
            offset = previous + round(step)
        out.append((offset, line))
        previous = offset
    out.sort(key=lambda item: (item[0], item[1].number))
    return out


def _first_text(turn: dict[str, Any]) -> str | None:
    if isinstance(turn.get("text"), str):
        text: str = turn["text"]
        return text
    texts = turn.get("texts")
    if isinstance(texts, list) and texts:
        first = texts[0]
        if isinstance(first, dict):
            contents = first.get("contents")
            first = contents[0] if isinstance(contents, list) and contents else None
        return first if isinstance(first, str) else None
    return None


def _image_refs(turn: dict[str, Any]) -> list[str]:
    refs: list[Any] = []
    if turn.get("image") is not None:
        refs.append(turn["image"])
    images = turn.get("images")
    if isinstance(images, list):
        for item in images:
            if isinstance(item, dict):
                refs.extend(item.get("contents") or [])
            else:
                refs.append(item)
    return [ref for ref in refs if isinstance(ref, str) and ref]


def load_image_ref(ref: str, base: Path, path: Path, line: int) -> tuple[bytes, str, str]:
    """(bytes, media type, filename) for a single_turn image: a file path or a data URL."""
    lowered = ref.lower()
    if lowered.startswith(("http://", "https://")):
        raise InputError(
            path,
            line,
            f"image {ref!r} is an http URL: imgtrace does not download images (a trace must "
            "hold the bytes it replays); download it and give its local path",
        )
    if lowered.startswith("data:"):
        try:
            _, data = decode_data_url(ref)
        except ValueError as exc:
            raise InputError(path, line, f"image data URL: {exc}") from None
        media = check_image(data, path, line, "the image data URL")
        return data, media, f"image.{extension_for(media)}"
    candidate = Path(ref).expanduser()
    if not candidate.is_absolute():
        beside = base / candidate
        candidate = beside if beside.exists() or not candidate.exists() else candidate
    try:
        data = candidate.read_bytes()
    except FileNotFoundError:
        raise InputError(path, line, f"image file {ref} not found (looked in {base})") from None
    except OSError as exc:
        raise InputError(path, line, f"image file {ref}: {exc.strerror}") from None
    media = check_image(data, path, line, f"image file {ref}")
    return data, media, candidate.name


def _turn_request(
    turn: Any,
    offset: int,
    line: JsonLine,
    path: Path,
    add_blob: BlobSink,
    model: str | None,
    extra_inputs: dict[str, str],
    stats: ImportStats,
) -> Request | None:
    if not isinstance(turn, dict):
        raise InputError(path, line.number, "a single_turn line must be a JSON object")
    prompt = _first_text(turn)
    refs = _image_refs(turn)
    if prompt is None or not refs:
        stats.skipped_not_edit += 1
        return None
    extra = turn.get("extra") or {}
    if not isinstance(extra, dict):
        raise InputError(path, line.number, "`extra` must be a JSON object")
    fields: dict[str, list[str]] = {}
    line_model = turn.get("model") if isinstance(turn.get("model"), str) else model
    if line_model:
        fields["model"] = [line_model]
    for key, value in {**extra_inputs, **extra}.items():
        if key not in RESERVED_FIELDS:
            fields[str(key)] = form_value(value)
    fields.setdefault("response_format", ["b64_json"])
    fields.setdefault("n", ["1"])
    field = "image" if len(refs) == 1 else "image[]"
    images: list[FormPart] = []
    for ref in refs:
        data, media, filename = load_image_ref(ref, path.parent, path, line.number)
        images.append(
            FilePart(
                name=field,
                blob=add_blob(data, media),
                size=len(data),
                filename=filename,
                content_type=media,
            )
        )
    parts: list[FormPart] = [TextField(name="model", value=v) for v in fields.pop("model", [])]
    parts.append(TextField(name="prompt", value=prompt))
    parts.extend(images)
    parts.extend(TextField(name=k, value=v) for k, values in fields.items() for v in values)
    ident = f"turn-{line.number:06d}"
    boundary = stable_boundary(ident)
    return Request(
        id=ident,
        offset_ns=offset,
        path="/v1/images/edits",
        headers=(("content-type", f"multipart/form-data; boundary={boundary}"),),
        body=MultipartBody(parts=tuple(parts), boundary=boundary),
        notes={"aiperf_line": line.number},
    )


def import_aiperf_input(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    force: bool = False,
    skip_bad: bool = False,
    model: str | None = None,
    rate: float | None = None,
    extra_inputs: dict[str, str] | None = None,
) -> ImportStats:
    """Turn an AIPerf `single_turn` JSONL input file into a trace, as AIPerf would send it.

    `timestamp` (ms) places a line relative to the earliest timestamp, `delay` (ms) after the
    previous line; lines with neither follow the previous one after 1/`rate` s (or at once).
    """
    if rate is not None and not rate > 0:
        raise UsageError("--rate must be positive")
    path = Path(source)
    stats = ImportStats(source=str(path), output=os.fspath(output))
    lines: list[tuple[JsonLine, _TurnTiming]] = []
    for line, data in scan_jsonl(path):
        try:
            lines.append((line, _turn_timing_decoder.decode(data)))
        except msgspec.DecodeError as exc:
            stats.skip_or_raise(InputError(path, line.number, decode_error(exc)), skip_bad)
    if not lines:
        raise InputError(path, None, empty_reason(stats, "single_turn lines"))
    header = Header(
        source="import:aiperf-input",
        created_ns=time.time_ns(),
        metadata={"import": {"format": "aiperf-input", "file": path.name}},
    )
    with (
        atomic_path(output, force) as temporary,
        open_trace_output(temporary, header) as writer,
        open(path, "rb") as file,
    ):
        for offset, line in _turn_offsets(lines, rate):
            try:
                turn = _json_decoder.decode(read_line(file, line))
                request = _turn_request(
                    turn, offset, line, path, writer.add_blob, model, extra_inputs or {}, stats
                )
            except InputError as error:
                stats.skip_or_raise(error, skip_bad)
                continue
            if request is not None:
                writer.write(request)
                stats.requests += 1
        finish_import(writer, stats, path)
    return stats
