"""HAR 1.2 import: the image-edit requests of a browser or mitmproxy capture become a trace.

A request body comes from `postData.text` (base64 when the exporter marks it so) or, when the
text is absent, from `postData.params` (with `fileName` for uploads). Timing comes from
`startedDateTime` (offsets from the earliest entry) and `time`/`timings`; a response is kept with
its JSON envelope when its content is present. See docs/importing.md.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from traces import (
    BlobSink,
    ErrorInfo,
    FilePart,
    FormPartData,
    MultipartBody,
    MultipartError,
    Request,
    Response,
    body_from_parts,
    boundary_of,
    parse_multipart,
    sniff_media_type,
    strip_images,
)

from ._source_io import (
    ImportStats,
    InputError,
    check_image,
    decode_data_url,
    import_header,
    import_output,
    open_input,
    stable_boundary,
)

__all__ = ["import_har", "parse_har_time"]


class _NameValue(msgspec.Struct):
    name: str
    value: str = ""


class _Param(msgspec.Struct):
    name: str
    value: str | None = None
    fileName: str | None = None  # HAR field names are camelCase
    contentType: str | None = None
    encoding: str | None = None


class _PostData(msgspec.Struct):
    mimeType: str = ""
    text: str | None = None
    params: list[_Param] = []
    encoding: str | None = None
    alt_encoding: str | None = msgspec.field(default=None, name="_encoding")


class _HarRequest(msgspec.Struct):
    method: str
    url: str
    headers: list[_NameValue] = []
    postData: _PostData | None = None


class _Content(msgspec.Struct):
    size: int = -1
    mimeType: str | None = None
    text: str | None = None
    encoding: str | None = None


class _HarResponse(msgspec.Struct):
    status: int = 0
    headers: list[_NameValue] = []
    content: _Content = msgspec.field(default_factory=_Content)


class _Timings(msgspec.Struct):
    blocked: float = -1
    dns: float = -1
    connect: float = -1
    send: float = -1
    wait: float = -1
    receive: float = -1


class _Entry(msgspec.Struct):
    startedDateTime: str
    request: _HarRequest
    time: float = -1
    response: _HarResponse | None = None
    timings: _Timings | None = None


class _Log(msgspec.Struct):
    entries: list[msgspec.Raw]


class _Har(msgspec.Struct):
    log: _Log


_har_decoder = msgspec.json.Decoder(_Har)
_entry_decoder = msgspec.json.Decoder(_Entry)
_json_decoder = msgspec.json.Decoder()
_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?\s*(Z|[+-]\d\d(?::?\d\d)?)?$"
)
_DROPPED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding"})
_NO_BODY = (
    "has no request body: the HAR was saved without content. Export it with bodies (browser "
    'devtools: "Save all as HAR with content"; mitmproxy: savehar keeps them)'
)


def parse_har_time(text: str) -> int:
    """An ISO 8601 `startedDateTime` as ns since the epoch (a missing zone means UTC)."""
    match = _TIME.match(text.strip())
    if match is None:
        raise ValueError(f"startedDateTime {text!r} is not an ISO 8601 time")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    fraction = (match.group(7) or "")[:9].ljust(9, "0")
    zone = match.group(8)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) > 2 else 0)
        seconds -= sign * offset
    return seconds * 10**9 + int(fraction)


def _line_of(data: bytes, exc: msgspec.DecodeError) -> int | None:
    match = re.search(r"\(byte (\d+)\)", str(exc))
    return data.count(b"\n", 0, int(match.group(1))) + 1 if match else None


def _load_entries(path: Path) -> list[msgspec.Raw]:
    with open_input(path, "a HAR file") as file:
        data = file.read()
    if not data.strip():
        raise InputError(path, None, "the file is empty: a HAR file is one JSON object with a log")
    try:
        har = _har_decoder.decode(data)
    except msgspec.DecodeError as exc:
        line = _line_of(data, exc)
        problem = str(exc)
        if problem.startswith("Object missing required field"):
            problem = f"not a HAR file ({problem}; expected {{'log': {{'entries': [...]}}}})"
        raise InputError(path, line, problem) from None
    return har.log.entries


def _bytes_of(value: str, encoding: str | None) -> bytes:
    if (encoding or "").lower() == "base64":
        return base64.b64decode(value, validate=True)
    if value.startswith("data:"):
        return decode_data_url(value)[1]
    try:
        # Exporters that write binary bytes as text map each byte to one code point.
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _check_uploads(parts: list[FormPartData], path: Path, where: str) -> None:
    for part in parts:
        if part.filename is not None:
            if not part.data:
                raise InputError(
                    path, where, f"upload {part.name!r} is empty: the HAR holds no file contents"
                )
            check_image(part.data, path, where, f"upload {part.name!r} ({part.filename})")


def _parts_from_text(post: _PostData, path: Path, where: str) -> list[FormPartData]:
    assert post.text is not None
    encoding = post.encoding or post.alt_encoding
    candidates: list[bytes] = []
    try:
        if (encoding or "").lower() == "base64":
            candidates.append(base64.b64decode(post.text, validate=True))
        else:
            candidates.append(post.text.encode("utf-8"))
            try:
                candidates.append(post.text.encode("latin-1"))
            except UnicodeEncodeError:
                pass
    except (binascii.Error, ValueError):
        raise InputError(
            path, where, "postData.text is marked base64 but does not decode"
        ) from None
    error: InputError | None = None
    for body in candidates:
        try:
            parts = parse_multipart(body, post.mimeType)
            _check_uploads(parts, path, where)
            return parts
        except MultipartError as exc:
            error = InputError(path, where, f"postData.text: {exc}")
        except InputError as exc:
            error = exc
    assert error is not None
    raise error


def _parts_from_params(post: _PostData, path: Path, where: str) -> list[FormPartData]:
    parts: list[FormPartData] = []
    for param in post.params:
        value = param.value or ""
        if param.fileName is None:
            parts.append(FormPartData(param.name, value.encode("utf-8")))
            continue
        try:
            data = _bytes_of(value, param.encoding)
        except (binascii.Error, ValueError):
            raise InputError(path, where, f"upload {param.name!r} does not decode") from None
        content_type = param.contentType or sniff_media_type(data)
        parts.append(FormPartData(param.name, data, param.fileName, content_type))
    _check_uploads(parts, path, where)
    return parts


def _request_body(entry: _Entry, path: Path, where: str, add_blob: BlobSink) -> MultipartBody:
    post = entry.request.postData
    if post is None or (not post.text and not post.params):
        raise InputError(path, where, _NO_BODY)
    if not post.mimeType.lower().startswith("multipart/form-data"):
        raise InputError(
            path, where, f"the body is {post.mimeType or 'untyped'}, not multipart/form-data"
        )
    if post.text:
        parts = _parts_from_text(post, path, where)
        boundary = boundary_of(post.mimeType) or ""
    else:
        parts = _parts_from_params(post, path, where)
        boundary = stable_boundary(f"{entry.startedDateTime} {entry.request.url}")
    if not any(part.filename is not None for part in parts):
        raise InputError(path, where, "the form has no image upload")
    return body_from_parts(parts, boundary, add_blob)


def _response(
    entry: _Entry, offset: int, add_blob: BlobSink, stats: ImportStats
) -> Response | None:
    har = entry.response
    if har is None:
        return None
    headers = tuple((h.name, h.value) for h in har.headers if not h.name.startswith(":"))
    timings = entry.timings
    upload = first_byte = None
    if timings is not None:
        before = sum(max(0.0, v) for v in (timings.blocked, timings.dns, timings.connect))
        upload_ms = before + max(0.0, timings.send)
        upload = offset + round(upload_ms * 1e6)
        first_byte = offset + round((upload_ms + max(0.0, timings.wait)) * 1e6)
    done = offset + round(entry.time * 1e6) if entry.time >= 0 else None
    if har.status == 0:
        # HAR writes status 0 for a request that never got a response.
        error = ErrorInfo(kind="aborted", message="no response in the HAR (status 0)")
        return Response(status=None, headers=headers, done_ns=done, error=error)
    content = har.content
    envelope: Any = None
    images: tuple[str, ...] = ()
    body_blob: str | None = None
    size = max(0, content.size)
    if content.text:
        try:
            raw = _bytes_of(content.text, content.encoding) if content.encoding else None
        except (binascii.Error, ValueError):
            raw = None
        data = raw if raw is not None else content.text.encode("utf-8")
        size = len(data)
        try:
            envelope, images = strip_images(_json_decoder.decode(data), add_blob)
        except msgspec.DecodeError:
            body_blob = add_blob(data, content.mimeType)
    stats.responses += 1
    stats.output_images += len(images)
    return Response(
        status=har.status,
        headers=headers,
        upload_done_ns=upload,
        first_byte_ns=first_byte,
        done_ns=done,
        bytes_down=size,
        content_type=content.mimeType,
        envelope=envelope,
        images=images,
        body_blob=body_blob,
    )


def import_har(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    force: bool = False,
    skip_bad: bool = False,
    path_suffix: str = "/images/edits",
) -> ImportStats:
    """Turn the image-edit entries (POST to a path ending in `path_suffix`) of a HAR file into a
    trace; other entries are skipped and counted. Raises InputError naming the entry, unless
    `skip_bad`."""
    path = Path(source)
    stats = ImportStats(source=str(path), output=os.fspath(output))
    entries: list[tuple[int, int, _Entry]] = []
    for number, raw in enumerate(_load_entries(path), start=1):
        where = f"entry {number}"
        try:
            entry = _entry_decoder.decode(raw)
            started = parse_har_time(entry.startedDateTime)
        except (msgspec.DecodeError, ValueError) as exc:
            stats.skip_or_raise(InputError(path, where, str(exc)), skip_bad)
            continue
        url = urlsplit(entry.request.url)
        if entry.request.method.upper() != "POST" or not url.path.endswith(path_suffix):
            stats.skipped_not_edit += 1
            continue
        entries.append((started, number, entry))
    if not entries:
        if stats.skipped_not_edit or stats.skipped_bad:
            raise InputError(path, None, "no image-edit entries: " + stats.counts())
        raise InputError(path, None, "the HAR holds no entries")
    entries.sort(key=lambda item: (item[0], item[1]))
    zero = entries[0][0]
    header = import_header("har", path, zero)
    with import_output(output, force, header, stats, skip_bad) as out:
        for started, number, entry in entries:
            offset = started - zero
            out.add(
                _entry_request, entry, number, offset, started, path, out.writer.add_blob, stats
            )
    return stats


def _entry_request(
    entry: _Entry,
    number: int,
    offset: int,
    started: int,
    path: Path,
    add_blob: BlobSink,
    stats: ImportStats,
) -> Request:
    where = f"entry {number}"
    body = _request_body(entry, path, where, add_blob)
    url = urlsplit(entry.request.url)
    headers = [
        (h.name, h.value)
        for h in entry.request.headers
        if not h.name.startswith(":") and h.name.lower() not in _DROPPED_HEADERS
    ]
    headers.insert(0, ("content-type", f"multipart/form-data; boundary={body.boundary}"))
    stats.images += sum(isinstance(part, FilePart) for part in body.parts)
    return Request(
        id=f"har-{number:06d}",
        offset_ns=offset,
        path=url.path,
        query=url.query,
        headers=tuple(headers),
        body=body,
        wall_ns=started,
        response=_response(entry, offset, add_blob, stats),
        notes={"har_entry": number},
    )
