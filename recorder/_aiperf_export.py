"""Export a trace as an AIPerf `single_turn` JSONL input file with timestamps.

The result replays in AIPerf with `--custom-dataset-type single_turn --fixed-schedule`, and
imports back (`imgtrace import aiperf-input --as-written`) with the same prompts, images,
parameters and timing. Images go inline as data URLs by default: AIPerf sends those byte for
byte, while it decodes and re-encodes an image *file* (and refuses WebP and GIF files). The
recorded `model` is left out unless asked for, because a `model` in `extra` overrides
`aiperf --model`. See docs/importing.md.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from traces import FilePart, MultipartBody, Request, TextField, TraceReader, extension_for

from ._aiperf_input import RESERVED_FIELDS
from ._source_io import ImportStats, InputError, atomic_text

__all__ = ["export_aiperf_input"]

_json_encoder = msgspec.json.Encoder()


def _json_value(text: str) -> Any:
    """A form value as JSON: numbers and booleans when they print back to the same text."""
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if str(value) == text:
            return value
    return text


class _Counts:
    """What the export had to leave out or change, for its warnings."""

    def __init__(self) -> None:
        self.models = 0
        self.refused_files = 0  # WebP, GIF, ...: AIPerf accepts only PNG and JPEG files


def _export_line(
    request: Request,
    reader: TraceReader,
    images_dir: Path | None,
    relative_to: Path | None,
    stats: ImportStats,
    keep_model: bool,
    counts: _Counts,
) -> dict[str, Any] | None:
    body = request.body
    if not isinstance(body, MultipartBody):
        return None
    prompt: str | None = None
    images: list[str] = []
    extra: dict[str, Any] = {}
    for part in body.parts:
        if isinstance(part, TextField):
            if part.name == "prompt":
                prompt = part.value
            elif part.name == "model" and not keep_model:
                counts.models += 1
            elif part.name not in RESERVED_FIELDS:
                extra[part.name] = _json_value(part.value)
        elif part.name == "mask":
            stats.masks_dropped += 1
        elif part.name in ("image", "image[]"):
            images.append(_export_image(part, reader, images_dir, relative_to, counts))
    if prompt is None or not images:
        return None
    stats.images += len(images)
    line: dict[str, Any] = {"text": prompt}
    if len(images) == 1:
        line["image"] = images[0]
    else:
        line["images"] = images
    offset_ms = request.offset_ns / 1e6
    line["timestamp"] = request.offset_ns // 10**6 if request.offset_ns % 10**6 == 0 else offset_ms
    if extra:
        line["extra"] = extra
    return line


def _export_image(
    part: FilePart,
    reader: TraceReader,
    images_dir: Path | None,
    relative_to: Path | None,
    counts: _Counts,
) -> str:
    data = reader.blob(part.blob)
    media = reader.blob_media_type(part.blob)
    if images_dir is None:
        return f"data:{media};base64,{base64.b64encode(data).decode('ascii')}"
    if media not in ("image/png", "image/jpeg"):
        counts.refused_files += 1
    target = images_dir / f"{part.blob[:16]}.{extension_for(media)}"
    if not target.exists():
        temporary = target.with_name(f".{target.name}.part")
        temporary.write_bytes(data)
        os.replace(temporary, target)
    if relative_to is not None:
        try:
            return os.path.relpath(target, relative_to)
        except ValueError:
            pass
    return str(target.resolve())


def iter_export_lines(
    reader: TraceReader,
    images_dir: Path | None,
    relative_to: Path | None,
    stats: ImportStats,
    keep_model: bool = False,
    counts: _Counts | None = None,
) -> Iterator[dict[str, Any]]:
    """The single_turn lines of a trace in offset order, counting what cannot be exported."""
    counts = counts if counts is not None else _Counts()
    for request in reader.requests_by_arrival():
        line = _export_line(request, reader, images_dir, relative_to, stats, keep_model, counts)
        if line is None:
            stats.skipped_not_edit += 1
            continue
        stats.requests += 1
        yield line


def export_aiperf_input(
    trace: str | os.PathLike[str],
    output: str,
    *,
    force: bool = False,
    images_dir: str | os.PathLike[str] | None = None,
    absolute_paths: bool = False,
    keep_model: bool = False,
    salvage: bool = False,
) -> ImportStats:
    """Write a trace as an AIPerf `single_turn` JSONL input file with millisecond timestamps.

    Images go inline as data URLs (AIPerf sends them unchanged), or into `images_dir` (named by
    digest, written once) with paths relative to the output file unless `absolute_paths`; AIPerf
    re-encodes such files, which `ImportStats.warnings` says. The recorded `model` goes into
    `extra` only with `keep_model` (it would override `aiperf --model`). Masks cannot be
    expressed in single_turn and are dropped (counted); requests that are not image edits are
    skipped. `salvage` exports a damaged trace's requests up to the damage, with a warning.
    """
    stats = ImportStats(source=os.fspath(trace), output=output)
    counts = _Counts()
    folder: Path | None = None
    if images_dir is not None:
        folder = Path(images_dir)
        folder.mkdir(parents=True, exist_ok=True)
    relative_to = None if absolute_paths or output == "-" else Path(output).resolve().parent
    with TraceReader(trace, salvage=salvage) as reader, atomic_text(output, force) as file:
        for line in iter_export_lines(reader, folder, relative_to, stats, keep_model, counts):
            file.write(_json_encoder.encode(line).decode())
            file.write("\n")
        if stats.requests == 0:
            raise InputError(trace, None, "holds no image-edit requests to export")
    stats.models_left_out = counts.models
    stats.warnings = _warnings(folder is not None, counts)
    return stats


def _warnings(to_files: bool, counts: _Counts) -> list[str]:
    notes: list[str] = []
    if to_files:
        notes.append(
            "--images-dir: AIPerf decodes and re-encodes every image file it is given (PNG "
            "compress level 6, JPEG quality 85), so the server will not receive the trace's "
            "image bytes; leave out --images-dir to send them inline, byte for byte"
        )
    if counts.refused_files:
        notes.append(
            f"{counts.refused_files} images are neither PNG nor JPEG: AIPerf refuses such "
            "files (it will not start); leave out --images-dir, data URLs of any type pass"
        )
    return notes
