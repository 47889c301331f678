"""Run files for analyzer tests, written with TraceWriter from simulated latencies.

A module of its own (not conftest) so that its name cannot clash with other test folders'
conftest modules when tests import helpers from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from analyzer._load import Rows
from traces import (
    ErrorInfo,
    Header,
    MultipartBody,
    Outcome,
    Request,
    Response,
    TextField,
    TraceWriter,
)

WriteRun = Callable[..., Path]
Run = Callable[..., tuple[int, str, str]]
"""The `run` fixture: `run("report", path)` -> (exit code, stdout, stderr)."""


def simulate_pairs(
    n: int,
    seed: int,
    *,
    shift: float = 0.0,
    tail_shift: float = 0.0,
    tail_share: float = 0.1,
    noise: float = 0.05,
    rho: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Paired latencies (ns) for BASE and CAND in send order.

    Each request has its own cost (lognormal, as image sizes and step counts make it); each
    run multiplies it by autocorrelated noise (AR(1), as queueing does). CAND is slower by
    `shift` everywhere and by `tail_shift` more on the costliest `tail_share` of requests.
    """
    rng = np.random.default_rng(seed)
    cost = rng.lognormal(np.log(200e6), 0.6, n)

    def run_noise() -> np.ndarray:
        innovations = rng.normal(0.0, noise * np.sqrt(1 - rho**2), n)
        series = np.empty(n)
        series[0] = rng.normal(0.0, noise)
        for i in range(1, n):
            series[i] = rho * series[i - 1] + innovations[i]
        return np.exp(series)

    base = cost * run_noise()
    cand = cost * run_noise() * (1.0 + shift)
    if tail_shift:
        cutoff = np.quantile(cost, 1.0 - tail_share)
        cand = np.where(cost >= cutoff, cand * (1.0 + tail_shift), cand)
    return base, cand


def edit_request(index: int, size: str) -> Request:
    body = MultipartBody(
        parts=(TextField(name="prompt", value="make it blue"), TextField(name="size", value=size))
    )
    return Request(
        id=f"r{index:06d}", offset_ns=index * 100_000_000, path="/v1/images/edits", body=body
    )


def write_run_file(
    path: Path,
    latencies_ns: Sequence[float] | Any,
    *,
    statuses: Sequence[int] | None = None,
    warmup: int = 0,
    interval_ns: int = 100_000_000,
    trace_digest: str = "d" * 64,
    sizes: Sequence[str] | None = None,
    lag_ns: int = 1_000_000,
    source: str = "replay",
    tool_version: str = "",
    interrupted: bool = False,
) -> Path:
    """A run file whose i-th outcome is request r{i} with the given latency."""
    header = Header(
        kind="run",
        source=source,
        tool_version=tool_version,
        trace_digest=trace_digest,
        target="http://x",
    )
    with TraceWriter(path, header, force=True) as writer:
        if interrupted:
            writer.note(interrupted=True)
        if sizes is not None:
            for index, size in enumerate(sizes):
                writer.write(edit_request(index, size))
        for index, latency in enumerate(latencies_ns):
            intended = index * interval_ns
            status = 200 if statuses is None else statuses[index]
            error = ErrorInfo(kind="timeout") if status == 0 else None
            sent = intended + lag_ns
            done = None if error else intended + int(latency)
            writer.write(
                Outcome(
                    request_id=f"r{index:06d}",
                    seq=index,
                    intended_ns=intended,
                    sent_ns=sent,
                    upload_done_ns=sent + 1_000_000 if done else None,
                    first_byte_ns=(done - 2_000_000) if done else None,
                    done_ns=done,
                    status=status or None,
                    error=error,
                    warmup=index < warmup,
                )
            )
    return path


def write_recorded_trace(path: Path, latencies_ns: Sequence[float] | Any) -> Path:
    """A proxy-style trace whose requests carry recorded responses."""
    header = Header(kind="trace", source="proxy")
    with TraceWriter(path, header, force=True) as writer:
        for index, latency in enumerate(latencies_ns):
            request = edit_request(index, "1024x1024")
            offset = request.offset_ns
            response = Response(
                status=200,
                upload_done_ns=offset + 1_000_000,
                first_byte_ns=offset + int(latency) - 1_000_000,
                done_ns=offset + int(latency),
            )
            writer.write(msgspec.structs.replace(request, response=response))
    return path


def rows_from(latencies: np.ndarray, name: str) -> Rows:
    """The rows of a clean run: one request every 0.1 s taking `latencies` ns, all 200."""
    n = len(latencies)
    intended = np.arange(n, dtype=np.float64) * 1e8
    ids = np.empty(n, dtype=object)
    ids[:] = [f"r{i}" for i in range(n)]
    errors = np.empty(n, dtype=object)
    errors[:] = [""] * n
    stratum = np.empty(n, dtype=object)
    stratum[:] = ["all"] * n
    return Rows(
        path=Path(name),
        kind="run",
        source="replay",
        trace_digest="t",
        request_id=ids,
        loop=np.zeros(n, np.int64),
        seq=np.arange(n, dtype=np.int64),
        intended=intended,
        sent=intended,
        upload_done=intended,
        first_byte=intended + latencies,
        done=intended + latencies,
        status=np.full(n, 200, np.int64),
        error=errors,
        warmup=np.zeros(n, bool),
        bytes_up=np.zeros(n, np.int64),
        bytes_down=np.zeros(n, np.int64),
        stratum=stratum,
    )
