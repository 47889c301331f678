"""The replay plan: which requests are sent, in what order, and when each is meant to go.

Every intended time is an absolute offset from the replay's start (`t0`), computed from the
trace, never a gap after the previous send, so that lateness never accumulates.

A plan is streamed from the trace in two passes: `survey()` reads the selection once (counts,
time span, blob checks) before anything is sent, and `slots()` streams it again for sending.
"""

from __future__ import annotations

import fnmatch
import math
import warnings
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from traces import (
    ArrivalKind,
    ArrivalProcess,
    JsonBody,
    MultipartBody,
    RawBody,
    Request,
    TextField,
    TraceReader,
    UsageError,
    body_blobs,
    input_images,
)

from ._errors import ReplayError
from ._shaping import Shaper, file_part_conflict, redaction_hints

__all__ = [
    "DryRun",
    "Filter",
    "Plan",
    "Selection",
    "Slot",
    "Survey",
    "Timing",
    "parse_arrival",
    "parse_filter",
    "parse_window",
]

NS = 1_000_000_000
# Fields shown in the dry run's request mix, when present.
MIX_FIELDS = ("model", "size", "n", "num_inference_steps", "output_format")


@dataclass(frozen=True)
class Timing:
    """When requests go: the trace's own offsets (divided by `speed`), a re-timed arrival
    process at `rate` per second, or a closed loop of `concurrency` requests in flight."""

    mode: str = "original"  # original | rate | closed
    speed: float = 1.0
    rate: float = 0.0
    arrival: str = "constant"  # constant | poisson | gamma
    shape: float = 1.0
    """Gamma shape (smoothness): < 1 is burstier than Poisson, > 1 smoother."""
    arrival_seed: int = 0
    concurrency: int = 0
    max_inflight: int | None = None

    def __post_init__(self) -> None:
        if self.mode == "original":
            check_positive(self.speed, "--speed")
        elif self.mode == "rate":
            check_positive(self.rate, "--rate")
            if self.arrival not in ("constant", "poisson", "gamma"):
                raise UsageError(
                    f"--arrival {self.arrival!r}: expected constant, poisson or gamma:B"
                )
            check_positive(self.shape, "gamma shape B")
        elif self.mode == "closed":
            check_positive(self.concurrency, "--concurrency", integer=True)
            if self.max_inflight is not None:
                raise UsageError(
                    "--max-inflight caps open-loop modes; --concurrency is already a cap"
                )
        else:
            raise UsageError(f"timing mode {self.mode!r}: expected original, rate or closed")
        check_positive(self.max_inflight, "--max-inflight", integer=True)

    @property
    def closed(self) -> bool:
        return self.mode == "closed"

    def describe(self) -> str:
        if self.mode == "original":
            return "original timing" + (f" at {self.speed:g}x" if self.speed != 1 else "")
        if self.mode == "rate":
            arrival = self.arrival + (f":{self.shape:g}" if self.arrival == "gamma" else "")
            return f"{self.rate:g} req/s, {arrival} arrivals (seed {self.arrival_seed})"
        return f"closed loop, {self.concurrency} in flight"

    def options(self) -> dict[str, object]:
        out: dict[str, object] = {"timing": self.mode}
        if self.mode == "original":
            out["speed"] = self.speed
        elif self.mode == "rate":
            out.update(rate=self.rate, arrival=self.arrival, arrival_seed=self.arrival_seed)
            if self.arrival == "gamma":
                out["gamma_shape"] = self.shape
        else:
            out["concurrency"] = self.concurrency
        if self.max_inflight is not None:
            out["max_inflight"] = self.max_inflight
        return out


def parse_arrival(text: str) -> tuple[str, float]:
    """`constant`, `poisson` or `gamma:B` → (process, gamma shape)."""
    name, _, shape = text.partition(":")
    if name in ("constant", "poisson") and not shape:
        return name, 1.0
    if name == "gamma":
        try:
            value = float(shape)
        except ValueError:
            value = -1.0
        if value > 0 and math.isfinite(value):
            return name, value
    raise UsageError(
        f"--arrival {text!r}: expected constant, poisson or gamma:B with B > 0 "
        "(B < 1 burstier than Poisson, B > 1 smoother)"
    )


def parse_window(text: str) -> tuple[float | None, float | None]:
    """`START:END` in seconds of trace time; either side may be empty."""
    start_text, sep, end_text = text.partition(":")
    try:
        if not sep:
            raise ValueError
        start = float(start_text) if start_text.strip() else None
        end = float(end_text) if end_text.strip() else None
    except ValueError:
        raise UsageError(
            f"--window {text!r}: expected START:END in seconds of trace time, e.g. 60:120, "
            ":30 or 300:"
        ) from None
    if start is not None and end is not None and end <= start:
        raise UsageError(f"--window {text!r}: END must be after START")
    return start, end


@dataclass(frozen=True)
class Filter:
    """`KEY=GLOB`: `path` and `method` match the request line, any other key a form field."""

    key: str
    pattern: str

    def matches(self, request: Request) -> bool:
        if self.key == "path":
            return fnmatch.fnmatchcase(request.path, self.pattern)
        if self.key == "method":
            return request.method.upper() == self.pattern.upper()
        value = field_value(request, self.key)
        return value is not None and fnmatch.fnmatchcase(value, self.pattern)


def parse_filter(text: str) -> Filter:
    key, sep, pattern = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(
            f"--filter {text!r}: expected KEY=PATTERN, e.g. path=/v1/images/edits or size=512x512"
        )
    return Filter(key.strip(), pattern)


def field_value(request: Request, name: str) -> str | None:
    """A text field's value as sent (JSON values as their text), or None."""
    body = request.body
    if isinstance(body, MultipartBody):
        for part in body.parts:
            if isinstance(part, TextField) and part.name == name:
                return part.value
    elif isinstance(body, JsonBody) and isinstance(body.value, dict) and name in body.value:
        return str(body.value[name])
    return None


@dataclass(frozen=True)
class Selection:
    """Which requests of the trace are sent: window and filters first, then `limit`; the result
    is sent `loop` times; the first `warmup` sends are flagged."""

    window: tuple[float | None, float | None] = (None, None)
    limit: int | None = None
    loop: int = 1
    warmup: int = 0
    filters: tuple[Filter, ...] = ()

    def __post_init__(self) -> None:
        check_positive(self.limit, "--limit", integer=True)
        check_positive(self.loop, "--loop", integer=True)
        if self.warmup < 0:
            raise UsageError("--warmup and --drain cannot be negative")

    def options(self) -> dict[str, object]:
        out: dict[str, object] = {"loop": self.loop, "warmup": self.warmup}
        if self.window != (None, None):
            out["window"] = list(self.window)
        if self.limit is not None:
            out["limit"] = self.limit
        if self.filters:
            out["filter"] = [f"{f.key}={f.pattern}" for f in self.filters]
        return out


@dataclass(frozen=True)
class Slot:
    """One send: the request, which pass over the trace, and when it is meant to go."""

    seq: int
    request: Request
    loop: int
    intended_ns: int | None
    """Offset from the replay's start; None in a closed loop (the send goes when a slot frees)."""
    warmup: bool


@dataclass
class Survey:
    """What the first pass learned about one pass of the selection."""

    count: int = 0
    first_ns: int = 0
    last_ns: int = 0
    raw_bodies: int = 0

    @property
    def span_ns(self) -> int:
        return self.last_ns - self.first_ns

    @property
    def period_ns(self) -> int:
        """Distance between the starts of two passes: the span plus one mean gap."""
        if self.count > 1:
            return self.span_ns + self.span_ns // (self.count - 1)
        return NS


@dataclass
class DryRun:
    """The schedule's shape, computed without building or sending any body."""

    mix: dict[str, Counter[str]]
    """How often each value of a field is sent, by field; "endpoint" counts method and path."""
    sends: int = 0
    warmup: int = 0
    duration_s: float = 0.0
    mean_rate: float = 0.0
    peak_rate: float = 0.0


class Plan:
    """The replay schedule of a trace, streamed."""

    def __init__(
        self, reader: TraceReader, selection: Selection, timing: Timing, shaper: Shaper
    ) -> None:
        self.reader = reader
        self.selection = selection
        self.timing = timing
        self.shaper = shaper
        self.survey = Survey()

    @property
    def total(self) -> int:
        return self.survey.count * self.selection.loop

    def selected(self) -> Iterator[Request]:
        """One pass over the selected requests, in arrival order (`requests_by_arrival`)."""
        start, end = self.selection.window
        start_ns = None if start is None else int(start * NS)
        end_ns = None if end is None else int(end * NS)
        count = 0
        for request in self.reader.requests_by_arrival():
            if self.selection.limit is not None and count >= self.selection.limit:
                return
            if start_ns is not None and request.offset_ns < start_ns:
                continue
            if end_ns is not None and request.offset_ns >= end_ns:
                return
            if all(f.matches(request) for f in self.selection.filters):
                count += 1
                yield request

    def run_survey(self) -> Survey:
        """Read the selection once: counts and span, and every referenced blob is present."""
        survey = Survey()
        needed: dict[str, str] = {}
        names = [name for name, _ in self.shaper.sets]
        redacted: Counter[str] = Counter()
        for request in self.selected():
            if survey.count == 0:
                survey.first_ns = request.offset_ns
            survey.count += 1
            survey.last_ns = max(survey.last_ns, request.offset_ns)
            for digest in body_blobs(request.body):
                needed.setdefault(digest, request.id)
            if isinstance(request.body, RawBody):
                survey.raw_bodies += 1
            redacted.update(self.shaper.unsupplied_secrets(request))
            conflict = file_part_conflict(request, names)
            if conflict is not None:
                raise UsageError(
                    f"--set {conflict}=...: '{conflict}' is a file part in request {request.id}; "
                    "--set changes text fields only"
                )
        for digest, request_id in needed.items():
            if not self.reader.has_blob(digest):
                raise ReplayError(
                    f"{self.reader.path}: request {request_id} refers to blob {digest[:16]}…, "
                    "which the file does not hold; re-record the trace, or leave the request "
                    "out with --window, --limit or --filter"
                )
        if survey.count == 0:
            raise ReplayError(
                f"{self.reader.path}: no request to replay (the trace is empty, or --window, "
                "--filter or --limit selected nothing)"
            )
        for line in redaction_hints(redacted, survey.count):
            warnings.warn(line, stacklevel=2)
        self.survey = survey
        return survey

    def slots(self) -> Iterator[Slot]:
        """Every send of the replay, in send order, with its intended offset."""
        survey = self.survey
        timing = self.timing
        arrivals = self._arrivals() if timing.mode == "rate" else iter(())
        seq = 0
        for loop in range(self.selection.loop):
            base = loop * survey.period_ns
            for request in self.selected():
                intended: int | None
                if timing.mode == "original":
                    relative = base + request.offset_ns - survey.first_ns
                    intended = max(0, round(relative / timing.speed))
                elif timing.mode == "rate":
                    intended = round(next(arrivals) * NS)
                else:
                    intended = None
                yield Slot(seq, request, loop, intended, seq < self.selection.warmup)
                seq += 1

    def _arrivals(self) -> Iterator[float]:
        """Send times in seconds under --rate: the arrival process `synth` uses, seeded."""
        timing = self.timing
        process = ArrivalProcess.steady(
            cast(ArrivalKind, timing.arrival), timing.rate, burstiness=timing.shape
        )
        if process.kind == "constant":
            return process.arrivals(None)
        import numpy as np

        return process.arrivals(np.random.default_rng(timing.arrival_seed))

    def dry_run(self) -> DryRun:
        """Duration, mean and peak (busiest second) rate and the request mix of the schedule."""
        result = DryRun(mix={"endpoint": Counter()})
        window: deque[int] = deque()
        first = last = None
        for slot in self.slots():
            result.sends += 1
            result.warmup += slot.warmup
            request = slot.request
            result.mix["endpoint"][f"{request.method} {request.path}"] += 1
            body = self.shaper.body(request, slot.loop)
            shaped = Request(id=request.id, offset_ns=0, path=request.path, body=body)
            for name in MIX_FIELDS:
                value = field_value(shaped, name)
                if value is not None:
                    result.mix.setdefault(name, Counter())[value] += 1
            images = len(input_images(shaped.body))
            result.mix.setdefault("input images", Counter())[str(images)] += 1
            if slot.intended_ns is None:
                continue
            first = slot.intended_ns if first is None else first
            last = slot.intended_ns
            window.append(slot.intended_ns)
            while window[0] <= slot.intended_ns - NS:
                window.popleft()
            result.peak_rate = max(result.peak_rate, float(len(window)))
        if first is not None and last is not None:
            result.duration_s = (last - first) / NS
            if result.duration_s > 0:
                # n sends over the span between the first and the last: n - 1 gaps.
                result.mean_rate = (result.sends - 1) / result.duration_s
        return result


def check_positive(value: float | None, flag: str, *, integer: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value <= 0 or (integer and value != int(value)):
        kind = "a positive integer" if integer else "a positive number"
        raise UsageError(f"{flag} {value:g}: expected {kind}")
