"""Merging files: the shard runs of one replay, or traces recorded by several proxies.

Both give one ordinary file with every per-request record kept exactly (statistics are computed
later from the raw samples, never merged from summaries) and every blob stored once. Each input
is read once: blobs are copied as they stream by, requests or outcomes are held until every
input has been read, then written in order.

The shard a run belongs to is a meaning both the replayer (which writes it) and this module
(which checks it) rely on, so its header form lives here: `shard_metadata` and `shard_of`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec

from ._errors import OutputExists, UsageError
from ._reader import TraceReader
from ._schema import Blob, Header, Outcome, Request, Response
from ._writer import TraceWriter

__all__ = ["MergeResult", "ShardInfo", "merge_files", "shard_metadata", "shard_of"]

SHARD_KEY = "shard"
R = TypeVar("R", Request, Outcome)
Progress = Callable[[int, int], None]


class ShardInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Which part of which replay a run file holds (the header metadata's `shard`)."""

    index: int
    count: int
    group: str

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"


def shard_metadata(index: int, count: int, group: str) -> dict[str, Any]:
    """The header metadata entry that marks a run as shard `index` of `count` in `group`."""
    return {SHARD_KEY: msgspec.to_builtins(ShardInfo(index=index, count=count, group=group))}


def shard_of(metadata: dict[str, Any]) -> ShardInfo | None:
    """The shard a run's metadata names, or None for a run of the whole schedule."""
    value = metadata.get(SHARD_KEY)
    if value is None:
        return None
    try:
        return msgspec.convert(value, ShardInfo)
    except msgspec.ValidationError:
        return None


@dataclass
class MergeResult:
    """What a merge wrote, for the summary and `--json`."""

    output: Path
    kind: str
    inputs: int
    records: int = 0
    blobs: int = 0
    shards: int = 0
    group: str | None = None
    renamed: int = 0
    """Request ids prefixed because another input already used them (traces only)."""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "kind": self.kind,
            "inputs": self.inputs,
            "records": self.records,
            "blobs": self.blobs,
            "shards": self.shards,
            "group": self.group,
            "renamed": self.renamed,
        }


def merge_files(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> MergeResult:
    """Merge the shard runs of one replay, or several traces, into `output`.

    Every input is checked before the output is created: all runs or all traces; runs must be
    the shards of one trace and one group, each shard present exactly once.
    """
    paths = [Path(path) for path in inputs]
    if len(paths) < 2:
        raise UsageError("merge needs at least two inputs (shard runs, or traces)")
    out = Path(output)
    for path in paths:
        if path.resolve() == out.resolve():
            raise UsageError(f"-o {out} is also an input: choose another output file")
    if out.exists() and not force:
        raise OutputExists(out, what="-o")
    readers: list[TraceReader] = []
    # Written aside and renamed at the end: a merge that fails leaves no partial output, and
    # an existing output (with --force) stays intact until the new one is complete.
    partial = out.with_name(f".{out.name}.partial")
    try:
        for path in paths:
            readers.append(TraceReader(path))
        kinds = {reader.kind for reader in readers}
        merge: _Merge | None = None
        if kinds == {"run"}:
            merge = _RunMerge(readers, partial, progress)
        elif kinds == {"trace"}:
            merge = _TraceMerge(readers, partial, progress)
        if merge is not None:
            result = merge.run()
            os.replace(partial, out)
            result.output = out
            return result
        run = next(r for r in readers if r.kind == "run")
        trace = next(r for r in readers if r.kind == "trace")
        raise UsageError(
            f"cannot merge a run with a trace: {run.path} is a run, {trace.path} a trace "
            "(merge takes the shard runs of one replay, or traces from several recorders)"
        )
    finally:
        for reader in readers:
            reader.close()
        partial.unlink(missing_ok=True)


class _Merge:
    def __init__(self, readers: list[TraceReader], out: Path, progress: Progress | None) -> None:
        self.readers = readers
        self.out = out
        self.progress = progress
        self.blobs = 0
        self.interrupted = False
        self.notes: list[str] = []

    def run(self) -> MergeResult:
        raise NotImplementedError

    def _copy(self, writer: TraceWriter, reader: TraceReader, keep: Callable[[Any], None]) -> None:
        for record in reader.records():
            if isinstance(record, Blob):
                if not writer.has_blob(record.digest):
                    writer.add_blob(record.data, record.media_type)
                    self.blobs += 1
            elif isinstance(record, Request | Outcome):
                keep(record)
        self.interrupted = self.interrupted or bool(reader.metadata().get("interrupted"))
        # Done with this input: its cache of decompressed frames (up to 64 MB) goes now.
        reader.close()

    def _report(self, done: int) -> None:
        if self.progress is not None:
            self.progress(done, len(self.readers))


class _RunMerge(_Merge):
    def run(self) -> MergeResult:
        shards = self._check_shards()
        first = self.readers[0]
        group = shards[0].group
        count = shards[0].count
        starts = [r.header.start_wall_ns for r in self.readers]
        known = [start for start in starts if start is not None]
        zero = min(known) if known else None
        options = {k: v for k, v in first.header.options.items() if k != SHARD_KEY}
        # The header's own metadata, not the notes: a shard's closing summary is not the merge's.
        metadata = {k: v for k, v in first.header.metadata.items() if k not in (SHARD_KEY, "clock")}
        planned = [r.header.metadata.get("planned") for r in self.readers]
        metadata.update(
            planned=sum(p for p in planned if isinstance(p, int)),
            merged={
                "group": group,
                "shards": count,
                "inputs": [str(r.path) for r in self.readers],
                "clocks": [r.header.metadata.get("clock") for r in self.readers],
            },
        )
        # The shards' header with what differs: every other field (the target, an interleaved
        # replay's group) is the same in every shard.
        header = msgspec.structs.replace(
            first.header,
            created_ns=0,
            tool_version="",
            options=options,
            start_wall_ns=zero,
            metadata=metadata,
        )
        # Held encoded (a few hundred bytes each) rather than as objects (about 2 KB with their
        # envelopes): 200,000 sends then fit in tens of MB.
        held = _Held(Outcome)
        with TraceWriter(self.out, header, force=True) as writer:
            for position, (reader, shard) in enumerate(zip(self.readers, shards, strict=True)):
                start = reader.header.start_wall_ns
                shift = 0 if start is None or zero is None else start - zero

                def keep(
                    record: Any,
                    shard: ShardInfo = shard,
                    path: Path = reader.path,
                    shift: int = shift,
                ) -> None:
                    if not isinstance(record, Outcome):
                        return
                    if record.seq % shard.count != shard.index:
                        raise UsageError(
                            f"{path}: send {record.seq} is not part of shard {shard.label}; "
                            "the file was not written by `replay --shard`"
                        )
                    held.add(record.seq, _shift_outcome(record, shift) if shift else record)

                before = len(held)
                self._copy(writer, reader, keep)
                self._note_short(reader, shard, len(held) - before)
                self._report(position + 1)
            seqs = held.order()
            _check_disjoint(seqs)
            for outcome in held.records():
                writer.write(outcome)
            writer.note(interrupted=self.interrupted, sent=len(seqs))
        return MergeResult(
            output=self.out,
            kind="run",
            inputs=len(self.readers),
            records=len(seqs),
            blobs=self.blobs,
            shards=count,
            group=group,
            notes=self.notes,
        )

    def _note_short(self, reader: TraceReader, shard: ShardInfo, recorded: int) -> None:
        """A shard that stopped early is merged as it is, and said so."""
        planned = reader.header.metadata.get("planned")
        if isinstance(planned, int) and recorded < planned:
            self.notes.append(
                f"{reader.path}: shard {shard.label} recorded {recorded} of its {planned} "
                "planned sends (interrupted or stopped early)"
            )

    def _check_shards(self) -> list[ShardInfo]:
        shards: list[ShardInfo] = []
        for reader in self.readers:
            shard = shard_of(reader.header.metadata)
            if shard is None:
                raise UsageError(
                    f"{reader.path}: not a shard run (its header names no shard); merge takes "
                    "the runs of one `replay --shard I/N`, or traces"
                )
            shards.append(shard)
        first, head = self.readers[0], shards[0]
        for reader, shard in zip(self.readers[1:], shards[1:], strict=True):
            if reader.header.trace_digest != first.header.trace_digest:
                raise UsageError(
                    f"{first.path} and {reader.path} replay different traces "
                    f"({(first.header.trace_digest or '?')[:12]}… vs "
                    f"{(reader.header.trace_digest or '?')[:12]}…)"
                )
            if shard.group != head.group:
                raise UsageError(
                    f"{first.path} is in group {head.group}, {reader.path} in group {shard.group}: "
                    "merge the shards of one replay (same --start-at, or the same --group)"
                )
            if shard.count != head.count:
                raise UsageError(
                    f"{first.path} is shard {head.label}, {reader.path} shard {shard.label}: "
                    "the shards of one replay share N"
                )
        seen: dict[int, Path] = {}
        for reader, shard in zip(self.readers, shards, strict=True):
            if shard.index in seen:
                raise UsageError(
                    f"shard {shard.label} is given twice: {seen[shard.index]} and {reader.path}"
                )
            seen[shard.index] = reader.path
        missing = [i for i in range(head.count) if i not in seen]
        if missing:
            named = ", ".join(f"{i}/{head.count}" for i in missing)
            have = ", ".join(f"{i}/{head.count}" for i in sorted(seen))
            raise UsageError(
                f"group {head.group} is incomplete: shard {named} missing (given {have})"
            )
        return shards


class _Held(Generic[R]):
    """Records kept encoded until every input is read, then given back in key order."""

    def __init__(self, kind: type[R]) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[R] = msgspec.msgpack.Decoder(kind)
        self._keys: list[Any] = []
        self._data: list[bytes] = []
        self._order: list[int] = []

    def add(self, key: Any, record: R) -> None:
        self._keys.append(key)
        self._data.append(self._encoder.encode(record))

    def order(self) -> list[Any]:
        """Sorts by key (stable: equal keys keep input order); returns the keys in order."""
        self._order = sorted(range(len(self._keys)), key=self._keys.__getitem__)
        return [self._keys[i] for i in self._order]

    def __len__(self) -> int:
        return len(self._keys)

    def records(self) -> Iterator[R]:
        for i in self._order:
            yield self._decoder.decode(self._data[i])


def _check_disjoint(seqs: list[int]) -> None:
    for before, after in zip(seqs, seqs[1:], strict=False):
        if before == after:
            raise UsageError(f"send {after} appears in two inputs: the shards overlap")


def _shift_outcome(outcome: Outcome, shift: int) -> Outcome:
    def moved(value: int | None) -> int | None:
        return None if value is None else value + shift

    return msgspec.structs.replace(
        outcome,
        intended_ns=outcome.intended_ns + shift,
        sent_ns=moved(outcome.sent_ns),
        upload_done_ns=moved(outcome.upload_done_ns),
        first_byte_ns=moved(outcome.first_byte_ns),
        done_ns=moved(outcome.done_ns),
    )


class _TraceMerge(_Merge):
    def run(self) -> MergeResult:
        digests: dict[str, Path] = {}
        for reader in self.readers:
            digest = reader.trace_digest()
            if digest in digests:
                raise UsageError(f"{digests[digest]} and {reader.path} are the same trace")
            digests[digest] = reader.path
        held = _Held(Request)  # keyed by (wall time, input)
        zeros: list[int | None] = []  # each input's time zero, as wall time
        starts = [r.header.start_wall_ns for r in self.readers]
        # Time zero of the merge: the earliest recorder's, when every header names one; else
        # the earliest file's first arrival (found while reading), and no start in the header.
        known_start = None if None in starts else min(s for s in starts if s is not None)
        header = Header(
            kind="trace",
            source="merge",
            start_wall_ns=known_start,
            metadata={"merged": {"inputs": [str(r.path) for r in self.readers]}},
        )
        result = MergeResult(output=self.out, kind="trace", inputs=len(self.readers))
        with TraceWriter(self.out, header, force=True) as writer:
            for position, reader in enumerate(self.readers):
                zeros.append(reader.header.start_wall_ns)
                self._copy(writer, reader, self._holder(position, zeros, held))
                self._report(position + 1)
            keys = held.order()
            if not keys:
                raise UsageError("nothing to merge: the traces hold no requests")
            merged_zero = (
                known_start if known_start is not None else min(z for z in zeros if z is not None)
            )
            used: set[str] = set()
            for (wall, position), request in zip(keys, held.records(), strict=True):
                request_id = request.id
                if request_id in used:
                    request_id = _unique(f"{self.readers[position].path.stem}/{request.id}", used)
                    result.renamed += 1
                used.add(request_id)
                zero = zeros[position]
                assert zero is not None  # set by the input's first request
                shift = zero - merged_zero
                writer.write(_moved_request(request, request_id, shift, wall))
            result.records = len(keys)
            result.blobs = self.blobs
        if result.renamed:
            result.notes.append(
                f"{result.renamed} request ids were used by more than one trace; the later ones "
                "were prefixed with their file's name (NAME/ID)"
            )
        return result

    def _holder(
        self, position: int, zeros: list[int | None], held: _Held[Request]
    ) -> Callable[[Any], None]:
        reader = self.readers[position]

        def keep(record: Any) -> None:
            if not isinstance(record, Request):
                return
            zero = zeros[position]
            if zero is None:
                if record.wall_ns is None:
                    raise UsageError(
                        f"{reader.path}: request {record.id} has no wall time and the trace "
                        "no start time, so it cannot be interleaved by wall time"
                    )
                zero = zeros[position] = record.wall_ns - record.offset_ns
            wall = record.wall_ns if record.wall_ns is not None else zero + record.offset_ns
            held.add((wall, position), record)

        return keep


def _unique(candidate: str, used: set[str]) -> str:
    name, number = candidate, 2
    while name in used:
        name, number = f"{candidate}~{number}", number + 1
    return name


def _moved_request(request: Request, request_id: str, shift: int, wall: int) -> Request:
    response = request.response
    if response is not None and shift:
        response = _shift_response(response, shift)
    return msgspec.structs.replace(
        request,
        id=request_id,
        offset_ns=request.offset_ns + shift,
        wall_ns=wall,
        response=response,
    )


def _shift_response(response: Response, shift: int) -> Response:
    def moved(value: int | None) -> int | None:
        return None if value is None else value + shift

    return msgspec.structs.replace(
        response,
        upload_done_ns=moved(response.upload_done_ns),
        first_byte_ns=moved(response.first_byte_ns),
        done_ns=moved(response.done_ns),
    )
