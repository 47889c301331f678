"""Turn run files and traces with recorded responses into per-request numpy rows, and join them.

One adapter serves both kinds: a run's `Outcome` records and a recorded trace's
`Request.response` are one `traces.ExchangeView` and become the same columns (times in ns from
the file's time zero), so a production recording can be the BASE of a comparison with a replay.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from traces import (
    ExchangeView,
    Header,
    Note,
    Outcome,
    Request,
    TraceReader,
    request_classes,
    view_exchange,
)

from ._error_detail import error_detail
from ._errors import AnalysisError
from ._provenance import client_of, interrupted, interrupted_note

__all__ = ["FileContents", "Join", "Rows", "join_rows", "load_rows", "read_contents"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]

_NAN = math.nan


@dataclass
class Rows:
    """One file's requests as parallel arrays, in file order.

    Times are float ns offsets from the file's time zero (NaN when missing). `error` is "" for
    a success, else an error class ("HTTP 503", "timeout", "incomplete", ...).
    """

    path: Path
    kind: str
    source: str
    trace_digest: str | None
    request_id: ObjArray
    loop: IntArray
    seq: IntArray
    intended: FloatArray
    sent: FloatArray
    upload_done: FloatArray
    first_byte: FloatArray
    done: FloatArray
    status: IntArray
    error: ObjArray
    warmup: BoolArray
    bytes_up: IntArray
    bytes_down: IntArray
    stratum: ObjArray
    repeat: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Repetition of each send (`replay --repeat`); zeros for other files."""
    no_response: int = 0
    """Requests of a recorded trace that have no recorded response (not in the rows)."""
    duplicates: int = 0
    classes: bool = False
    """True when request classes are known (from the file's requests or its trace)."""
    notes: list[str] = field(default_factory=list)
    group: str | None = None
    """The interleaved replay this run was measured in (its header's group id), if any."""
    client: str = ""
    """What measured the latencies (`_provenance.client_of`): runs of two clients differ."""
    interrupted: bool = False
    """The run or recording was stopped before its end (its `interrupted` metadata)."""
    error_details: dict[tuple[str, int, int], str] = field(default_factory=dict)
    """Per failed (request id, loop, repeat): the server's or transport's one-line reason."""

    def __post_init__(self) -> None:
        if len(self.repeat) != len(self.request_id):
            # Built without repetitions (a single replay): every send is repetition 0.
            self.repeat = np.zeros(len(self.request_id), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.request_id)

    @property
    def ok(self) -> BoolArray:
        result: BoolArray = self.error == ""
        return result

    @property
    def latency(self) -> FloatArray:
        """Completion minus intended send: the primary, coordinated-omission-free latency."""
        return self.done - self.intended

    @property
    def service(self) -> FloatArray:
        """Completion minus actual send."""
        return self.done - self.sent

    @property
    def lag(self) -> FloatArray:
        """Actual minus intended send: how late the replayer was."""
        return self.sent - self.intended

    def select(self, mask: BoolArray | IntArray) -> Rows:
        """The rows picked by a boolean mask or an index array."""
        columns = {
            name: getattr(self, name)[mask]
            for name in (
                "request_id",
                "loop",
                "seq",
                "intended",
                "sent",
                "upload_done",
                "first_byte",
                "done",
                "status",
                "error",
                "warmup",
                "bytes_up",
                "bytes_down",
                "stratum",
                "repeat",
            )
        }
        return dataclasses.replace(self, **columns)


def _opt(value: int | None) -> float:
    return _NAN if value is None else float(value)


def _error_class(status: int | None, error_kind: str | None, done: int | None) -> str:
    if error_kind:
        return error_kind
    if status is None:
        return "no status"
    if status >= 400 or status < 100:
        return f"HTTP {status}"
    if done is None:
        return "incomplete"
    return ""


class _Columns:
    """Growing Python lists, turned into numpy arrays once at the end."""

    def __init__(self) -> None:
        self.request_id: list[str] = []
        self.loop: list[int] = []
        self.repeat: list[int] = []
        self.seq: list[int] = []
        self.intended: list[float] = []
        self.sent: list[float] = []
        self.upload_done: list[float] = []
        self.first_byte: list[float] = []
        self.done: list[float] = []
        self.status: list[int] = []
        self.error: list[str] = []
        self.warmup: list[bool] = []
        self.bytes_up: list[int] = []
        self.bytes_down: list[int] = []
        self.error_details: dict[tuple[str, int, int], str] = {}

    def add(self, exchange: ExchangeView) -> None:
        self.request_id.append(exchange.request_id)
        self.loop.append(exchange.loop)
        self.repeat.append(exchange.repeat)
        self.seq.append(exchange.seq)
        self.intended.append(float(exchange.intended_ns))
        self.sent.append(_opt(exchange.sent_ns))
        self.upload_done.append(_opt(exchange.upload_done_ns))
        self.first_byte.append(_opt(exchange.first_byte_ns))
        self.done.append(_opt(exchange.done_ns))
        self.status.append(exchange.status or 0)
        self.error.append(_error_class(exchange.status, exchange.error_kind, exchange.done_ns))
        if self.error[-1]:
            detail = error_detail(exchange.envelope, exchange.error)
            if detail:
                self.error_details[(exchange.request_id, exchange.loop, exchange.repeat)] = detail
        self.warmup.append(exchange.warmup)
        self.bytes_up.append(exchange.bytes_up)
        self.bytes_down.append(exchange.bytes_down)

    def arrays(self) -> dict[str, Any]:
        ids = np.empty(len(self.request_id), dtype=object)
        ids[:] = self.request_id
        errors = np.empty(len(self.error), dtype=object)
        errors[:] = self.error
        return {
            "request_id": ids,
            "loop": np.array(self.loop, dtype=np.int64),
            "repeat": np.array(self.repeat, dtype=np.int64),
            "seq": np.array(self.seq, dtype=np.int64),
            "intended": np.array(self.intended, dtype=np.float64),
            "sent": np.array(self.sent, dtype=np.float64),
            "upload_done": np.array(self.upload_done, dtype=np.float64),
            "first_byte": np.array(self.first_byte, dtype=np.float64),
            "done": np.array(self.done, dtype=np.float64),
            "status": np.array(self.status, dtype=np.int64),
            "error": errors,
            "error_details": self.error_details,
            "warmup": np.array(self.warmup, dtype=np.bool_),
            "bytes_up": np.array(self.bytes_up, dtype=np.int64),
            "bytes_down": np.array(self.bytes_down, dtype=np.int64),
        }


@dataclass(frozen=True)
class FileContents:
    """What the analysis needs from one file: its header, requests and outcomes (no blobs)."""

    path: Path
    header: Header
    requests: tuple[Request, ...]
    outcomes: tuple[Outcome, ...]
    trace_digest: str | None
    """A run's: the digest of the trace it replayed; a trace's: its own."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """The header's metadata with every later note applied (e.g. `interrupted`)."""

    @property
    def kind(self) -> str:
        return self.header.kind

    def exchanges(self) -> list[ExchangeView]:
        """Outcomes of a run, or the recorded responses of a trace, in file order."""
        if self.kind == "run":
            return [view for o in self.outcomes if (view := view_exchange(o)) is not None]
        recorded = (view_exchange(r, seq) for seq, r in enumerate(self._answered()))
        return [view for view in recorded if view is not None]

    def _answered(self) -> list[Request]:
        return [request for request in self.requests if request.response is not None]


_FileKey = tuple[Path, int, int, int, int, bool]
_contents_cache: OrderedDict[_FileKey, FileContents] = OrderedDict()
_CACHED_FILES = 8


def read_contents(path: str | os.PathLike[str], *, salvage: bool = False) -> FileContents:
    """Read a file's requests and outcomes in one pass, image blobs left undecoded.

    A command that needs the same file twice (`compare`: the latency analysis, the image
    comparison, the request classes of the trace) reads it once: the contents are kept for
    the few files last read, keyed by path, inode, size and change times.
    """
    path = Path(path)
    key: _FileKey | None = None
    try:
        stat = path.stat()
    except OSError:
        pass  # TraceReader names the problem
    else:
        key = (
            path.resolve(),
            stat.st_ino,
            stat.st_mtime_ns,
            stat.st_ctime_ns,
            stat.st_size,
            salvage,
        )
    if key is not None and key in _contents_cache:
        _contents_cache.move_to_end(key)
        return _contents_cache[key]
    requests: list[Request] = []
    outcomes: list[Outcome] = []
    with TraceReader(path, salvage=salvage) as reader:
        metadata = dict(reader.header.metadata)
        for record in reader.records(kinds=("request", "outcome", "note")):
            if isinstance(record, Outcome):
                outcomes.append(record)
            elif isinstance(record, Request):
                requests.append(record)
            elif isinstance(record, Note):
                metadata.update(record.metadata)
        header = reader.header
        digest = header.trace_digest if header.kind == "run" else reader.trace_digest()
    contents = FileContents(path, header, tuple(requests), tuple(outcomes), digest, metadata)
    if key is not None:
        _contents_cache[key] = contents
        while len(_contents_cache) > _CACHED_FILES:
            _contents_cache.popitem(last=False)
    return contents


def _trace_labels(path: Path, digest: str | None, salvage: bool) -> dict[str, str]:
    """Class labels from the trace a run replayed, if that trace is at hand and matches."""
    contents = read_contents(path, salvage=salvage)
    if contents.kind != "trace":
        raise AnalysisError(f"{path} is a {contents.kind} file, not the trace of the run")
    if digest is not None and contents.trace_digest != digest:
        raise AnalysisError(
            f"{path} is not the trace this run replayed (its digest differs): "
            "give the trace file the run was made from"
        )
    return request_classes(contents.requests)


def load_rows(
    path: str | os.PathLike[str], *, trace: Path | None = None, salvage: bool = False
) -> Rows:
    """Read a run file, or a trace with recorded responses, into rows.

    Request classes (`traces.request_classes`) come from Request records in the file itself,
    else from `trace` (the trace the run replayed), else from the trace named in the run's
    header when that file exists and matches; without any of them every request is in "all".
    """
    path = Path(path)
    contents = read_contents(path, salvage=salvage)
    header = contents.header
    columns = _Columns()
    for exchange in contents.exchanges():
        columns.add(exchange)
    notes: list[str] = []
    labels = request_classes(contents.requests)
    if not contents.requests and header.kind == "run":
        named = trace or (Path(header.trace_path) if header.trace_path else None)
        if named is not None and (trace is not None or named.is_file()):
            try:
                labels = _trace_labels(named, contents.trace_digest, salvage)
            except AnalysisError:
                if trace is not None:
                    raise
                notes.append(f"{named} (named in the run header) no longer matches the run")
    arrays = columns.arrays()
    stratum = np.empty(len(arrays["request_id"]), dtype=object)
    stratum[:] = [labels.get(request_id, "all") for request_id in columns.request_id]
    answered = len(arrays["request_id"]) if header.kind == "trace" else 0
    rows = Rows(
        path=path,
        kind=header.kind,
        source=header.source,
        trace_digest=contents.trace_digest,
        stratum=stratum,
        no_response=len(contents.requests) - answered if header.kind == "trace" else 0,
        classes=bool(labels),
        notes=notes,
        group=header.interleave.group if header.interleave is not None else None,
        client=client_of(header),
        interrupted=interrupted(contents.metadata),
        **arrays,
    )
    note = interrupted_note(rows)
    if note is not None:
        rows.notes.append(note)
    _check_usable(rows)
    return rows


def _check_usable(rows: Rows) -> None:
    path = rows.path
    if len(rows) == 0:
        if rows.kind == "trace":
            raise AnalysisError(
                f"{path} is a trace without recorded responses: replay it "
                "(imgtrace replay TRACE --target URL -o RUN) and analyze the run file"
            )
        raise AnalysisError(
            f"{path} holds no requests: the replay ended before its first send; replay again"
        )
    measured = ~rows.warmup
    if not measured.any():
        raise AnalysisError(
            f"{path}: all {len(rows)} requests are warmup; replay with fewer warmup requests"
        )
    if not (rows.ok & measured).any():
        errors = Counter(rows.error[measured].tolist()).most_common(3)
        summary = ", ".join(f"{kind}: {count}" for kind, count in errors)
        reasons = Counter(rows.error_details.values()).most_common(1)
        said = f'; the server said "{reasons[0][0]}"' if reasons else ""
        raise AnalysisError(
            f"{path}: every one of its {int(measured.sum())} requests failed ({summary}{said}); "
            "there is no latency to analyze: check the target and replay again"
        )


@dataclass
class Join:
    """Requests of BASE and CAND paired by (request id, loop, repetition), and the rest."""

    base: Rows
    cand: Rows
    base_index: IntArray
    """Row indices into base of each pair, in base send order."""
    cand_index: IntArray
    pairs: int
    warmup_base: int
    warmup_cand: int
    only_base: int
    only_cand: int
    duplicates: int

    @property
    def both_ok(self) -> BoolArray:
        result: BoolArray = self.base.ok[self.base_index] & self.cand.ok[self.cand_index]
        return result


def _keyed(rows: Rows) -> tuple[dict[tuple[str, int, int], int], int]:
    keys: dict[tuple[str, int, int], int] = {}
    duplicates = 0
    columns = (rows.request_id, rows.loop, rows.repeat, rows.warmup)
    for index, (request_id, loop, repeat, warm) in enumerate(
        zip(*(column.tolist() for column in columns), strict=True)
    ):
        if warm:
            continue
        key = (request_id, loop, repeat)
        if key in keys:
            duplicates += 1
        else:
            keys[key] = index
    return keys, duplicates


def join_rows(base: Rows, cand: Rows, *, force: bool = False) -> Join:
    """Pair requests by (id, loop, repetition); warmup and one-sided ones are counted."""
    first, second = base.trace_digest or "", cand.trace_digest or ""
    if first and second and first != second and not force:
        raise AnalysisError(
            f"{base.path} and {cand.path} come from different traces (digests {first[:12]} "
            f"and {second[:12]}): compare replays of the same trace, or pass --any-trace to pair "
            "the request ids they share"
        )
    base_keys, base_dups = _keyed(base)
    cand_keys, cand_dups = _keyed(cand)
    shared = [(base_keys[key], cand_keys[key]) for key in base_keys if key in cand_keys]
    if not shared:
        raise AnalysisError(
            f"{base.path} and {cand.path} share no request ids: they are not replays of one trace"
        )
    pairs = np.array(shared, dtype=np.int64)
    # Send order of the base side, for the block bootstrap.
    order = np.lexsort((base.seq[pairs[:, 0]], base.intended[pairs[:, 0]]))
    pairs = pairs[order]
    return Join(
        base=base,
        cand=cand,
        base_index=pairs[:, 0],
        cand_index=pairs[:, 1],
        pairs=len(pairs),
        warmup_base=int(base.warmup.sum()),
        warmup_cand=int(cand.warmup.sum()),
        only_base=len(base_keys) - len(pairs),
        only_cand=len(cand_keys) - len(pairs),
        duplicates=base_dups + cand_dups,
    )
