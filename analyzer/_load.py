"""Turn run files and traces with recorded responses into per-request numpy rows, and join them.

One adapter serves both kinds: a run's `Outcome` records and a recorded trace's
`Request.response` become the same columns (times in ns from the file's time zero), so a
production recording can be the BASE of a comparison with a replay.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from traces import JsonBody, MultipartBody, Outcome, Request, TextField, TraceReader

from ._errors import AnalysisError

__all__ = ["Join", "Rows", "join_rows", "load_rows"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]

# Request features that define a request class, when the trace varies them.
CLASS_FIELDS = ("path", "size", "quality", "n", "num_inference_steps", "images")
MAX_CLASSES = 24
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
        return Rows(
            path=self.path,
            kind=self.kind,
            source=self.source,
            trace_digest=self.trace_digest,
            no_response=self.no_response,
            duplicates=self.duplicates,
            classes=self.classes,
            notes=self.notes,
            group=self.group,
            **columns,
        )


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


def request_features(request: Request) -> dict[str, str]:
    """The request-class features of one request (see CLASS_FIELDS)."""
    features = {"path": request.path}
    body = request.body
    if isinstance(body, MultipartBody):
        images = 0
        for part in body.parts:
            if isinstance(part, TextField):
                if part.name in CLASS_FIELDS:
                    features[part.name] = part.value
            elif part.name.startswith("image"):
                images += 1
        features["images"] = str(images)
    elif isinstance(body, JsonBody) and isinstance(body.value, dict):
        for name in CLASS_FIELDS:
            if name in body.value and name != "path":
                features[name] = str(body.value[name])
    return features


def class_labels(features: dict[str, dict[str, str]]) -> dict[str, str]:
    """A short label per request id, naming only the features that vary across the trace."""
    if not features:
        return {}
    combos = {
        request_id: tuple(feature.get(name, "-") for name in CLASS_FIELDS)
        for request_id, feature in features.items()
    }
    # Decide on the distinct combinations only: a trace has few, however many requests.
    distinct = set(combos.values())
    values = [{combo[i] for combo in distinct} for i in range(len(CLASS_FIELDS))]
    varying = [i for i in range(len(CLASS_FIELDS)) if len(values[i]) > 1]
    # Too many classes would leave each too small to test; drop the most varied features.
    while varying and len({tuple(c[i] for i in varying) for c in distinct}) > MAX_CLASSES:
        varying.remove(max(varying, key=lambda i: len(values[i])))
    if not varying:
        return dict.fromkeys(features, "all")
    names = {
        combo: " ".join(f"{CLASS_FIELDS[i]}={combo[i]}" for i in varying) for combo in distinct
    }
    return {request_id: names[combo] for request_id, combo in combos.items()}


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

    def add_outcome(self, outcome: Outcome) -> None:
        self.request_id.append(outcome.request_id)
        self.loop.append(outcome.loop)
        self.repeat.append(outcome.repeat)
        self.seq.append(outcome.seq)
        self.intended.append(float(outcome.intended_ns))
        self.sent.append(_opt(outcome.sent_ns))
        self.upload_done.append(_opt(outcome.upload_done_ns))
        self.first_byte.append(_opt(outcome.first_byte_ns))
        self.done.append(_opt(outcome.done_ns))
        self.status.append(outcome.status or 0)
        kind = outcome.error.kind if outcome.error is not None else None
        self.error.append(_error_class(outcome.status, kind, outcome.done_ns))
        self.warmup.append(outcome.warmup)
        self.bytes_up.append(outcome.bytes_up)
        self.bytes_down.append(outcome.bytes_down)

    def add_response(self, request: Request) -> None:
        response = request.response
        assert response is not None
        self.request_id.append(request.id)
        self.loop.append(0)
        self.repeat.append(0)
        self.seq.append(len(self.seq))
        arrival = float(request.offset_ns)
        self.intended.append(arrival)
        # A recording sees the request when the client sent it: intended and actual coincide.
        self.sent.append(arrival)
        self.upload_done.append(_opt(response.upload_done_ns))
        self.first_byte.append(_opt(response.first_byte_ns))
        self.done.append(_opt(response.done_ns))
        self.status.append(response.status or 0)
        kind = response.error.kind if response.error is not None else None
        self.error.append(_error_class(response.status, kind, response.done_ns))
        self.warmup.append(False)
        self.bytes_up.append(0)
        self.bytes_down.append(response.bytes_down)

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
            "warmup": np.array(self.warmup, dtype=np.bool_),
            "bytes_up": np.array(self.bytes_up, dtype=np.int64),
            "bytes_down": np.array(self.bytes_down, dtype=np.int64),
        }


# Runs of one trace share it: read its request features once per process.
_labels_cache: dict[tuple[Path, str | None], dict[str, str]] = {}


def _trace_labels(path: Path, digest: str | None, salvage: bool) -> dict[str, str]:
    """Class labels from the trace a run replayed, if that trace is at hand and matches."""
    key = (path.resolve(), digest)
    if key not in _labels_cache:
        _labels_cache[key] = class_labels(_read_trace_features(path, digest, salvage))
    return _labels_cache[key]


def _read_trace_features(
    path: Path, digest: str | None, salvage: bool
) -> dict[str, dict[str, str]]:
    with TraceReader(path, salvage=salvage) as reader:
        if reader.kind != "trace":
            raise AnalysisError(f"{path} is a {reader.kind} file, not the trace of the run")
        if digest is not None and reader.trace_digest() != digest:
            raise AnalysisError(
                f"{path} is not the trace this run replayed (its digest differs): "
                "give the trace file the run was made from"
            )
        return {request.id: request_features(request) for request in reader.requests()}


def load_rows(
    path: str | os.PathLike[str], *, trace: Path | None = None, salvage: bool = False
) -> Rows:
    """Read a run file, or a trace with recorded responses, into rows.

    Request classes come from Request records in the file itself, else from `trace` (the
    trace the run replayed), else from the trace named in the run's header when that file
    exists and matches; without any of them every request is in the class "all".
    """
    path = Path(path)
    columns = _Columns()
    features: dict[str, dict[str, str]] = {}
    no_response = 0
    notes: list[str] = []
    with TraceReader(path, salvage=salvage) as reader:
        header = reader.header
        for record in reader.records():
            if isinstance(record, Outcome):
                columns.add_outcome(record)
            elif isinstance(record, Request):
                features[record.id] = request_features(record)
                if header.kind == "trace":
                    if record.response is None:
                        no_response += 1
                    else:
                        columns.add_response(record)
        digest = header.trace_digest if header.kind == "run" else reader.trace_digest()
    labels = class_labels(features)
    if not features and header.kind == "run":
        named = trace or (Path(header.trace_path) if header.trace_path else None)
        if named is not None and (trace is not None or named.is_file()):
            try:
                labels = _trace_labels(named, digest, salvage)
            except AnalysisError:
                if trace is not None:
                    raise
                notes.append(f"{named} (named in the run header) no longer matches the run")
    arrays = columns.arrays()
    stratum = np.empty(len(arrays["request_id"]), dtype=object)
    stratum[:] = [labels.get(request_id, "all") for request_id in columns.request_id]
    rows = Rows(
        path=path,
        kind=header.kind,
        source=header.source,
        trace_digest=digest,
        stratum=stratum,
        no_response=no_response,
        classes=bool(labels),
        notes=notes,
        group=header.interleave.group if header.interleave is not None else None,
        **arrays,
    )
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
        raise AnalysisError(
            f"{path}: every one of its {int(measured.sum())} requests failed ({summary}); "
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
            f"and {second[:12]}): compare replays of the same trace, or pass --force to pair "
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
