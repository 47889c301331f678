"""What `imgtrace show`, `cat` and `extract` compute: summaries, JSON lines, image files."""

from __future__ import annotations

import bisect
import datetime as _dt
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import msgspec

from ._errors import OutputExists, UsageError
from ._inputs import input_images, input_masks
from ._media import extension_for, image_size
from ._reader import RecordKind, TraceReader
from ._repeats import Reproduction, failure_label, reproductions
from ._schema import Blob, FilePart, Header, MultipartBody, Note, Outcome, Record, Request
from ._view import ExchangeView, view_exchange

__all__ = ["TraceSummary", "cat_lines", "extract_images", "format_summary", "summarize"]

MIX_LABELS = {
    "num_inference_steps": "steps",
    "guidance_scale": "guidance",
    "output_format": "out format",
    "response_format": "response",
}
# Form fields whose values describe the workload mix; free text (prompt) and ids are left out.
MIX_FIELDS = (
    "model",
    "size",
    "n",
    "num_inference_steps",
    "guidance_scale",
    "output_format",
    "quality",
    "response_format",
)
_json_encoder = msgspec.json.Encoder()


class TraceSummary(msgspec.Struct, kw_only=True):
    path: str
    kind: str
    source: str
    format_version: int
    tool_version: str
    created: str
    closed_cleanly: bool
    damage: str | None
    file_bytes: int
    requests: int
    outcomes: int
    warmup: int
    span_s: float
    mean_rate: float
    peak_rate_1s: int
    blobs: int
    blob_bytes: int
    referenced_bytes: int
    dedup_ratio: float
    media_types: dict[str, int]
    input_sizes: dict[str, int]
    output_sizes: dict[str, int]
    paths: dict[str, int]
    mix: dict[str, dict[str, int]]
    images_per_request: dict[str, int]
    """Requests by their number of input images (`traces.input_images`: masks not counted)."""
    seeded: int
    statuses: dict[str, int]
    metadata: dict[str, Any]
    target: str | None = None
    trace_digest: str | None = None
    masks_per_request: dict[str, int] = {}
    repetitions: int = 0
    """Repetitions of a `replay --repeat` run (0 for other files)."""
    reproductions: list[Reproduction] = []


class _Tally:
    def __init__(self) -> None:
        self.blob_info: dict[str, tuple[str, str | None]] = {}
        self.stored = 0
        self.blob_sizes: dict[str, int] = {}
        self.request_offsets: list[int] = []
        self.outcome_offsets: list[int] = []
        self.paths: Counter[str] = Counter()
        self.mix: dict[str, Counter[str]] = {name: Counter() for name in MIX_FIELDS}
        self.images_per_request: Counter[str] = Counter()
        self.masks_per_request: Counter[str] = Counter()
        self.input_refs: Counter[str] = Counter()
        self.output_refs: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.referenced = 0
        self.requests = 0
        self.outcomes = 0
        self.warmup = 0
        self.seeded = 0
        self.metadata: dict[str, Any] = {}
        self.failed: list[Outcome] = []  # kept only for the reproduction counts

    def add(self, record: Record) -> None:
        if isinstance(record, Blob):
            size = image_size(record.data)
            label = f"{size[0]}x{size[1]}" if size else None
            self.blob_info[record.digest] = (record.media_type, label)
            self.blob_sizes[record.digest] = len(record.data)
            self.stored += len(record.data)
        elif isinstance(record, Request | Outcome):
            if isinstance(record, Request):
                self._add_request(record)
            else:
                self.outcomes += 1
                self.warmup += record.warmup
                self.outcome_offsets.append(record.intended_ns)
                if failure_label(record.status, record.error):
                    self.failed.append(record)
            exchange = view_exchange(record)
            if exchange is not None:
                self._add_exchange(exchange)
        elif isinstance(record, Note):
            self.metadata.update(record.metadata)

    def _add_exchange(self, exchange: ExchangeView) -> None:
        self.statuses[_status_label(exchange.status, exchange.error)] += 1
        self.output_refs.update(exchange.images)
        self.referenced += sum(self.blob_sizes.get(digest, 0) for digest in exchange.images)

    def _add_request(self, request: Request) -> None:
        self.requests += 1
        self.paths[f"{request.method} {request.path}"] += 1
        body = request.body
        if isinstance(body, MultipartBody):
            for part in body.parts:
                if isinstance(part, FilePart):
                    self.referenced += part.size
                elif part.name in self.mix:
                    self.mix[part.name][part.value] += 1
                if part.name == "seed":
                    self.seeded += 1
            images = input_images(body)
            self.input_refs.update(part.blob for part in images)
            self.images_per_request[str(len(images))] += 1
            self.masks_per_request[str(len(input_masks(body)))] += 1
        self.request_offsets.append(request.offset_ns)


def _status_label(status: int | None, error: Any) -> str:
    if error is not None:
        return f"error:{error.kind}"
    return str(status) if status is not None else "none"


def _peak_rate(offsets: list[int]) -> int:
    ordered = sorted(offsets)
    best = 0
    for index, start in enumerate(ordered):
        best = max(best, bisect.bisect_left(ordered, start + 1_000_000_000) - index)
    return best


def summarize(reader: TraceReader) -> TraceSummary:
    """Read the whole file once (streaming) and describe it."""
    tally = _Tally()
    header: Header = reader.header
    for record in reader.records():
        tally.add(record)
    offsets = tally.outcome_offsets if header.kind == "run" else tally.request_offsets
    span = (max(offsets) - min(offsets)) / 1e9 if len(offsets) > 1 else 0.0
    stored = tally.stored
    metadata = {**header.metadata, **tally.metadata}
    # Each repetition's own summary is in the note; `show` prints the counts instead.
    metadata.pop("repetitions", None)
    repeat = int(header.options.get("repeat", 0) or 0) if header.kind == "run" else 0
    # An interrupted run holds fewer repetitions than asked for.
    repeat = int(metadata.get("completed_repetitions", repeat) or 0) if repeat else 0
    return TraceSummary(
        path=str(reader.path),
        kind=header.kind,
        source=header.source,
        format_version=header.format_version,
        tool_version=header.tool_version,
        created=_iso(header.created_ns),
        closed_cleanly=reader.closed_cleanly,
        damage=reader.damage.describe(str(reader.path)) if reader.damage else None,
        file_bytes=reader.size,
        requests=tally.requests,
        outcomes=tally.outcomes,
        warmup=tally.warmup,
        span_s=span,
        mean_rate=(len(offsets) - 1) / span if span > 0 else 0.0,
        peak_rate_1s=_peak_rate(offsets),
        blobs=len(tally.blob_info),
        blob_bytes=stored,
        referenced_bytes=tally.referenced,
        dedup_ratio=tally.referenced / stored if stored else 1.0,
        media_types=dict(Counter(media for media, _ in tally.blob_info.values()).most_common()),
        input_sizes=_sizes(tally.input_refs, tally.blob_info),
        output_sizes=_sizes(tally.output_refs, tally.blob_info),
        paths=dict(tally.paths.most_common()),
        mix={name: dict(counts.most_common(8)) for name, counts in tally.mix.items() if counts},
        images_per_request=dict(sorted(tally.images_per_request.items())),
        masks_per_request=dict(sorted(tally.masks_per_request.items())),
        seeded=tally.seeded,
        statuses=dict(tally.statuses.most_common()),
        metadata=metadata,
        target=header.target,
        trace_digest=header.trace_digest,
        repetitions=repeat,
        reproductions=reproductions(tally.failed, total=repeat) if repeat else [],
    )


def _sizes(refs: Counter[str], info: dict[str, tuple[str, str | None]]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for digest, count in refs.items():
        media, size = info.get(digest, ("missing", None))
        counts[f"{size or '?'} {extension_for(media)}"] += count
    return dict(counts.most_common(10))


def _iso(ns: int) -> str:
    if not ns:
        return "unknown"
    moment = _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} ×{value}" for key, value in counts.items()) or "-"


def format_summary(summary: TraceSummary) -> list[str]:
    """The human-readable `imgtrace show` text, one string per line."""
    s = summary
    lines = [
        f"{s.path}",
        f"  kind        {s.kind} (format v{s.format_version}, written by imgtrace "
        f"{s.tool_version or '?'})",
        f"  source      {s.source}, created {s.created}",
    ]
    if s.kind == "run":
        lines.append(f"  target      {s.target or '?'}  trace {(s.trace_digest or '?')[:16]}")
    if not s.closed_cleanly:
        lines.append("  state       not closed cleanly (the writer stopped early)")
    if s.damage:
        lines.append(f"  damage      {s.damage}")
    counted = s.outcomes if s.kind == "run" else s.requests
    lines += [
        f"  requests    {s.requests}"
        + (f", outcomes {s.outcomes}" if s.outcomes else "")
        + (f" ({s.warmup} warmup)" if s.warmup else ""),
        f"  time span   {s.span_s:.3f} s, mean rate {s.mean_rate:.2f} req/s, "
        f"peak {s.peak_rate_1s} in 1 s"
        if counted
        else "  time span   -",
        f"  file        {_human_bytes(s.file_bytes)}; {s.blobs} blobs, "
        f"{_human_bytes(s.blob_bytes)} stored",
        f"  dedup       {_human_bytes(s.referenced_bytes)} of images and bodies stored as "
        f"{_human_bytes(s.blob_bytes)} (x{s.dedup_ratio:.2f})",
        f"  paths       {_counts(s.paths)}",
        f"  inputs      {_counts(s.input_sizes)}",
        f"  images/req  {_counts(s.images_per_request)}",
    ]
    if any(count != "0" for count in s.masks_per_request):
        lines.append(f"  masks/req   {_counts(s.masks_per_request)}")
    if s.output_sizes:
        lines.append(f"  outputs     {_counts(s.output_sizes)}")
    for name, counts in s.mix.items():
        lines.append(f"  {MIX_LABELS.get(name, name):<11} {_counts(counts)}")
    if s.requests:
        lines.append(f"  seed        sent by {s.seeded} of {s.requests} requests")
    if s.statuses:
        lines.append(f"  statuses    {_counts(s.statuses)}")
    if s.repetitions:
        found = [r.line() for r in s.reproductions] or ["no failures"]
        lines.append(f"  repeated    {s.repetitions} times; " + found[0])
        lines.extend(f"              {line}" for line in found[1:])
    lines.extend(f"  {line}" for line in _metadata_lines(s.metadata))
    return lines


def _intended_line(synth: dict[str, Any]) -> str:
    """What a synthetic trace was asked to be, beside what `show` measured in it."""
    if synth.get("schedule") and len(synth["schedule"]) > 1:
        rate = "schedule " + ",".join(f"{start:g}:{value:g}" for start, value in synth["schedule"])
    else:
        rate = f"{synth.get('rate', '?')} req/s"
    arrival = synth.get("arrival", "?")
    if synth.get("burstiness") is not None:
        arrival += f" (burstiness {synth['burstiness']})"
    images = synth.get("images") or {}
    parts = [f"{arrival} at {rate}, seed {synth.get('seed', '?')}"]
    if images:
        parts.append(
            f"images {images.get('size', '?')} {images.get('format', '?')}, "
            f"{images.get('per_request', '?')} per request, reuse {images.get('reuse', 0)}, "
            f"mask {images.get('mask', 0)}"
        )
    if synth.get("prompts"):
        parts.append(f"prompts {synth['prompts']}")
    return "; ".join(parts)


def _metadata_lines(metadata: dict[str, Any]) -> list[str]:
    lines = []
    synth = metadata.get("synth")
    if isinstance(synth, dict):
        lines.append(f"intended    {_intended_line(synth)}")
        metadata = {key: value for key, value in metadata.items() if key != "synth"}
    for key, value in sorted(metadata.items()):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        lines.append(f"meta.{key:<6} {text}")
    return lines


def cat_lines(reader: TraceReader, kinds: frozenset[str] | None = None) -> Iterator[bytes]:
    """Every record as one JSON line; blobs as digest, size and media type, never their bytes."""
    wanted = None if kinds is None else cast("frozenset[RecordKind]", kinds)
    for record in reader.records(kinds=wanted):
        if isinstance(record, Blob):
            builtin: Any = {
                "type": "blob",
                "digest": record.digest,
                "media_type": record.media_type,
                "size": len(record.data),
            }
        else:
            builtin = msgspec.to_builtins(record)
        yield _json_encoder.encode(builtin)


def extract_images(
    reader: TraceReader, directory: Path, *, inputs: bool, outputs: bool, force: bool
) -> tuple[int, int]:
    """Write each image once as DIGEST.EXT (extension from its content) plus manifest.jsonl.

    Returns (files written, manifest rows).
    """
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a directory")
    if directory.exists() and any(directory.iterdir()) and not force:
        raise OutputExists(directory, what="folder", state="is not empty")
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    rows = 0
    with open(directory / "manifest.jsonl", "wb") as manifest:
        for request_id, role, name, digest in _image_refs(reader, inputs, outputs):
            if digest not in written:
                data = reader.blob(digest)
                media = reader.blob_media_type(digest)
                filename = f"{digest[:16]}.{extension_for(media)}"
                (directory / filename).write_bytes(data)
                written[digest] = filename
            row = {"request": request_id, "role": role, "name": name, "file": written[digest]}
            manifest.write(_json_encoder.encode(row) + b"\n")
            rows += 1
    return len(written), rows


def _image_refs(
    reader: TraceReader, inputs: bool, outputs: bool
) -> Iterator[tuple[str, str, str, str]]:
    # Blobs are fetched by digest as they are needed: the pass itself decodes none of them.
    for record in reader.records(kinds=("request", "outcome")):
        if not isinstance(record, Request | Outcome):
            continue
        if inputs and isinstance(record, Request) and isinstance(record.body, MultipartBody):
            for part in record.body.parts:
                if not isinstance(part, FilePart):
                    continue
                if reader.blob_media_type(part.blob).startswith("image/"):
                    yield record.id, "input", part.name, part.blob
        exchange = view_exchange(record) if outputs else None
        if exchange is not None:
            for index, digest in enumerate(exchange.images):
                yield exchange.request_id, "output", f"data[{index}]", digest
