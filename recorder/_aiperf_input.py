"""AIPerf `single_turn` input files in, as AIPerf 0.13's `image_edit` endpoint sends them.

For each line AIPerf builds the payload `{prompt, model, response_format: b64_json, n: 1,
image | url}`, merges `--extra-inputs` and then the line's `extra` into it (a key already there
keeps its place; `prompt`, `image`, `url` and `mask` are refused), and sends it as multipart
fields in that order. This module does the same, step for step (docs/importing.md):

- the model is `aiperf --model` (`--model` here); a `model` on the line is ignored;
- only the first image of a line is sent, as part `image` named `image.<ext>`;
- an image *file* is decoded and re-encoded (PNG compress level 6, JPEG quality 85, 4:4:4), and
  only PNG and JPEG files are accepted; data URLs pass through unchanged;
- an http(s) image, which AIPerf sends as the field `url`, is refused (a trace holds its bytes);
- relative paths are looked up in the directory AIPerf runs in.

Where the trace cannot be what AIPerf sent, the import says so (`ImportStats.warnings`).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from traces import (
    BlobSink,
    FilePart,
    FormPart,
    MultipartBody,
    Request,
    TextField,
    UsageError,
)

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

__all__ = [
    "AIPERF_ACCEPT",
    "RESERVED_FIELDS",
    "aiperf_filename",
    "form_value",
    "import_aiperf_input",
]

# Fields AIPerf's image_edit endpoint sets itself and refuses from extras.
RESERVED_FIELDS = frozenset({"prompt", "image", "url", "mask"})
AIPERF_ACCEPT = ("accept", "application/json")
_FILE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg"}

_json_decoder = msgspec.json.Decoder()


def form_value(value: Any) -> list[str]:
    """A payload value as AIPerf's transport sends it: `str()` of it, booleans lower-cased,
    `None` left out (a list or object becomes its Python text, as AIPerf sends it)."""
    if value is None:
        return []
    if isinstance(value, bool):
        return ["true" if value else "false"]
    return [str(value)]


def aiperf_filename(media_type: str) -> str:
    """The file name AIPerf gives an uploaded image: `image.png`, `image.jpg`, ..."""
    subtype = media_type.split("/", 1)[1].split("+", 1)[0] if "/" in media_type else "png"
    return f"image.{'jpg' if subtype == 'jpeg' else subtype}"


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


@dataclass
class _Context:
    """What every line of one import shares, and what it found."""

    path: Path
    workdir: Path
    model: str | None
    extra_inputs: dict[str, str]
    as_written: bool
    stats: ImportStats
    found_beside: int = 0
    model_ignored: int = 0
    images_dropped: int = 0
    files_reencoded: int = 0


def _reencode(data: bytes, ref: str, context: _Context, line: int) -> tuple[bytes, str]:
    """The bytes AIPerf sends for an image file: decoded and saved again by Pillow."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(context.path, line, f"image file {ref} does not decode: {exc}") from None
    kind = image.format or "?"
    if kind not in _FILE_FORMATS:
        raise InputError(
            context.path,
            line,
            f"image file {ref} is {kind}: AIPerf accepts only PNG and JPEG files (it refuses "
            "to start on this file); convert it, or give it inline as a data URL",
        )
    out = io.BytesIO()
    if kind == "PNG":
        image.save(out, format="PNG", compress_level=6, optimize=False)
    else:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        rgb.save(out, format="JPEG", quality=85, subsampling=0)
    if out.getvalue() != data:
        context.files_reencoded += 1
    return out.getvalue(), _FILE_FORMATS[kind]


def _file_image(ref: str, context: _Context, line: int) -> tuple[bytes, str, str]:
    candidate = Path(ref).expanduser()
    if not candidate.is_absolute():
        in_workdir = context.workdir / candidate
        beside = context.path.parent / candidate
        if in_workdir.exists() or not beside.exists():
            candidate = in_workdir
        else:
            candidate = beside
            context.found_beside += 1
    try:
        data = candidate.read_bytes()
    except FileNotFoundError:
        raise InputError(
            context.path, line, f"image file {ref} not found (looked in {context.workdir})"
        ) from None
    except OSError as exc:
        raise InputError(context.path, line, f"image file {ref}: {exc.strerror}") from None
    media = check_image(data, context.path, line, f"image file {ref}")
    if context.as_written:
        return data, media, candidate.name
    return (*_reencode(data, ref, context, line), candidate.name)


def _reference(
    ref: str, context: _Context, line: int, add_blob: BlobSink, name: str = "image"
) -> FilePart:
    """The part AIPerf sends for a line's first image (an http URL, which AIPerf sends as the
    field `url`, is refused: the trace would not hold the image)."""
    if ref.lower().startswith(("http://", "https://")):
        raise InputError(
            context.path,
            line,
            f"image {ref!r} is an http URL: AIPerf would send it as the form field `url` for "
            "the server to fetch, but a trace must hold the bytes it replays; download it and "
            "give its local path",
        )
    if ref.startswith("data:"):
        try:
            declared, data = decode_data_url(ref)
        except ValueError as exc:
            raise InputError(context.path, line, f"image data URL: {exc}") from None
        media = check_image(data, context.path, line, "the image data URL")
        wire_type = declared if declared and declared.startswith("image/") else media
        filename = aiperf_filename(wire_type)
    else:
        data, media, filename = _file_image(ref, context, line)
        wire_type = media
        if not context.as_written:
            filename = aiperf_filename(wire_type)
    return FilePart(
        name=name,
        blob=add_blob(data, media),
        size=len(data),
        filename=filename,
        content_type=wire_type,
    )


def _turn_request(
    turn: Any, offset: int, line: JsonLine, add_blob: BlobSink, context: _Context
) -> Request | None:
    path = context.path
    if not isinstance(turn, dict):
        raise InputError(path, line.number, "a single_turn line must be a JSON object")
    prompt = _first_text(turn)
    refs = _image_refs(turn)
    if prompt is None or not refs:
        context.stats.skipped_not_edit += 1
        return None
    extra = turn.get("extra") or {}
    if not isinstance(extra, dict):
        raise InputError(path, line.number, "`extra` must be a JSON object")
    model = context.model
    if isinstance(turn.get("model"), str):
        if context.as_written:
            model = turn["model"]
        else:
            context.model_ignored += 1
    if context.as_written:
        name = "image" if len(refs) == 1 else "image[]"
        images = [_reference(ref, context, line.number, add_blob, name) for ref in refs]
    else:
        context.images_dropped += len(refs) - 1
        images = [_reference(refs[0], context, line.number, add_blob)]
    payload: dict[str, Any] = {"prompt": prompt, "model": model}
    payload.update(response_format="b64_json", n=1)
    payload["image"] = images  # reserved: no extra replaces it
    for key, value in [*context.extra_inputs.items(), *extra.items()]:
        if str(key) not in RESERVED_FIELDS:
            payload[str(key)] = value
    parts: list[FormPart] = []
    for key, value in payload.items():
        if key == "image":
            parts.extend(images)
            context.stats.images += len(images)
        else:
            parts.extend(TextField(name=key, value=text) for text in form_value(value))
    ident = f"turn-{line.number:06d}"
    boundary = stable_boundary(ident)
    return Request(
        id=ident,
        offset_ns=offset,
        path="/v1/images/edits",
        headers=(("content-type", f"multipart/form-data; boundary={boundary}"), AIPERF_ACCEPT),
        body=MultipartBody(parts=tuple(parts), boundary=boundary),
        notes={"aiperf_line": line.number},
    )


def _differences(context: _Context) -> list[str]:
    """Where the trace is not what AIPerf, run as described, would send."""
    notes: list[str] = []
    if context.as_written:
        return [
            "--as-written: the trace holds the file as written (every image, the files' own "
            "bytes and names, a line's `model`), which is not what AIPerf sends"
        ]
    if context.model is None:
        notes.append(
            "no --model: the requests carry no `model` field, while AIPerf always sends its "
            "--model; pass the same --model as to aiperf"
        )
    if context.model_ignored:
        notes.append(
            f"{context.model_ignored} lines name a `model`: AIPerf ignores it and sends its "
            "--model, and so does this import (put it in `extra` to send it)"
        )
    if context.images_dropped:
        notes.append(
            f"{context.images_dropped} images beyond the first of a line left out: AIPerf's "
            "image_edit sends only the first"
        )
    if context.found_beside:
        notes.append(
            f"{context.found_beside} image paths were found beside the input file, not in "
            f"{context.workdir}, where AIPerf looks: run AIPerf from {context.path.parent} or "
            "give --aiperf-dir"
        )
    if context.files_reencoded:
        notes.append(
            f"{context.files_reencoded} image files were re-encoded as AIPerf does, so their "
            "bytes differ from the files' (send images as data URLs to keep them)"
        )
    return notes


def import_aiperf_input(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    force: bool = False,
    skip_bad: bool = False,
    model: str | None = None,
    rate: float | None = None,
    extra_inputs: dict[str, str] | None = None,
    aiperf_dir: str | os.PathLike[str] | None = None,
    as_written: bool = False,
) -> ImportStats:
    """Turn an AIPerf `single_turn` JSONL input file into the trace AIPerf would send.

    `model` and `extra_inputs` are `aiperf --model` and `--extra-inputs`; `aiperf_dir` is the
    directory AIPerf runs in (default: the current one). `timestamp` (ms) places a line relative
    to the earliest timestamp, `delay` (ms) after the previous line; lines with neither follow
    the previous one after 1/`rate` s (or at once). Differences from what AIPerf sends are
    listed in `ImportStats.warnings` (the command prints them). `as_written` keeps the file as
    written instead (every image, the files' bytes and names, a line's `model`): the inverse of
    `export_aiperf_input`, not what AIPerf sends.
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
    context = _Context(
        path=path,
        workdir=Path(aiperf_dir) if aiperf_dir is not None else Path.cwd(),
        model=model,
        extra_inputs=extra_inputs or {},
        as_written=as_written,
        stats=stats,
    )
    header = import_header("aiperf-input", path, model=model)
    with import_output(output, force, header, stats, skip_bad) as out, open(path, "rb") as file:

        def line_request(offset: int, line: JsonLine) -> Request | None:
            try:
                turn = _json_decoder.decode(read_line(file, line))
            except msgspec.DecodeError as exc:
                raise InputError(path, line.number, decode_error(exc)) from None
            return _turn_request(turn, offset, line, out.writer.add_blob, context)

        for offset, line in _turn_offsets(lines, rate):
            out.add(line_request, offset, line)
        stats.warnings = _differences(context)
        if stats.warnings:
            out.writer.note(differs_from_aiperf=stats.warnings)
    return stats
