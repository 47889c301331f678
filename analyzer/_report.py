"""`imgtrace report`: one run (or a trace with recorded responses) summarized in Tables."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from traces import count_reproductions, lag_advice, lag_matters, lag_rule_text

from . import _stats
from ._load import FloatArray, Rows
from ._render import Footnotes, fmt_count, fmt_duration, fmt_percent
from ._table import Table

__all__ = ["health_line", "report_json", "report_tables", "run_summary"]

QUANTILES = (0.5, 0.9, 0.99)
SATURATED = 0.9
"""Successes per second under 90% of the offered rate: the server fell behind the load."""


@dataclass(frozen=True)
class RunSummary:
    """Whole-run figures: counts, time span, rates and send lag."""

    requests: int
    warmup: int
    measured: int
    ok: int
    duration_s: float
    offered_rate: float
    throughput: float
    lag_p50: float
    lag_p99: float
    median_latency: float
    healthy: bool
    saturated: bool = False
    """The server completed (well or not) under 90% of the offered rate: requests queued."""


def _measured(rows: Rows) -> Rows:
    return rows.select(~rows.warmup)


def run_summary(rows: Rows) -> RunSummary:
    measured = _measured(rows)
    ok = measured.ok
    intended = measured.intended
    done = measured.done[ok]
    start = float(np.nanmin(intended))
    end = float(np.nanmax(done)) if len(done) else float(np.nanmax(intended))
    duration = max((end - start) / 1e9, 1e-9)
    send_span = float(np.nanmax(intended) - start) / 1e9
    lag = np.sort(measured.lag[np.isfinite(measured.lag)])
    latency = np.sort(measured.latency[ok])
    lag_p99 = _stats.quantile(lag, 0.99) if len(lag) else math.nan
    median = _stats.quantile(latency, 0.5)
    healthy = not lag_matters(lag_p99, median)
    offered = (len(measured) - 1) / send_span if send_span > 0 else math.nan
    service = measured.service[ok]
    # The run ends one latency after the last send; the fastest request (one that did not
    # queue) is taken off, so a short run that kept up is not called saturated.
    busy = duration - (float(np.nanmin(service)) / 1e9 if len(service) else 0.0)
    completed = int(np.isfinite(measured.done).sum())
    saturated = bool(completed > 1 and busy > 0 and completed / busy < SATURATED * offered)
    return RunSummary(
        requests=len(rows),
        warmup=int(rows.warmup.sum()),
        measured=len(measured),
        ok=int(ok.sum()),
        duration_s=duration,
        offered_rate=offered,
        throughput=int(ok.sum()) / duration,
        lag_p50=_stats.quantile(lag, 0.5) if len(lag) else math.nan,
        lag_p99=lag_p99,
        median_latency=median,
        healthy=healthy,
        saturated=saturated,
    )


def health_line(rows: Rows, summary: RunSummary | None = None) -> str:
    """One line on whether sends left on time (open loop) or the replayer fell behind."""
    summary = summary or run_summary(rows)
    if rows.kind == "trace":
        return f"{rows.path}: recorded traffic (no send lag to check)"
    lag = f"send lag p50 {fmt_duration(summary.lag_p50)}, p99 {fmt_duration(summary.lag_p99)}"
    if summary.healthy:
        return f"{rows.path}: {lag}: sends left on time"
    return (
        f"{rows.path}: {lag}: WARNING sends were late ({lag_rule_text()}): the replayer or its "
        f"concurrency cap, not only the server, shaped latency; {lag_advice()}"
    )


def _ci_cell(values: FloatArray, q: float, notes: Footnotes) -> str:
    interval = _stats.quantile_ci(values, q)
    if not interval.bounded:
        need = _stats.min_n_for_quantile_ci(q)
        return fmt_duration(interval.estimate) + notes.mark(
            f"need >= {need} requests for a p{q * 100:g} CI"
        )
    low, high = fmt_duration(interval.lo), fmt_duration(interval.hi)
    return f"{fmt_duration(interval.estimate)} [{low}, {high}]"


def _strata(rows: Rows) -> list[tuple[str, Rows]]:
    names = sorted(set(rows.stratum.tolist()))
    groups = [("all", rows)]
    if len(names) > 1:
        groups += [(name, rows.select(rows.stratum == name)) for name in names]
    return groups


def _phase(values: FloatArray) -> str:
    values = np.sort(values[np.isfinite(values)])
    if not len(values):
        return "—"
    median, p99 = _stats.quantile(values, 0.5), _stats.quantile(values, 0.99)
    return f"{fmt_duration(median)} / {fmt_duration(p99)}"


def report_tables(rows: Rows) -> list[Table]:
    """Latency, phases, errors and run health of one file."""
    measured = _measured(rows)
    summary = run_summary(rows)
    notes = Footnotes()
    latency_rows, phase_rows = [], []
    for name, group in _strata(measured):
        ok = group.ok
        latency = np.sort(group.latency[ok])
        latency_rows.append(
            [
                name,
                fmt_count(len(group)),
                fmt_count(int((~ok).sum())),
                *(_ci_cell(latency, q, notes) for q in QUANTILES),
                fmt_duration(float(latency[-1])) if len(latency) else "—",
            ]
        )
        okg = group.select(ok)
        phase_rows.append(
            [
                name,
                _phase(okg.service),
                _phase(okg.upload_done - okg.sent),
                _phase(okg.first_byte - okg.upload_done),
                _phase(okg.done - okg.first_byte),
                _phase(okg.first_byte - okg.sent),
            ]
        )
    tables = [
        Table(
            title=f"Latency from intended send, {rows.path} (95% CIs from order statistics)",
            columns=["class", "requests", "errors", "p50", "p90", "p99", "max"],
            rows=latency_rows,
            footnotes=notes.lines(),
        ),
        Table(
            title="Service latency and phases (successful requests; p50 / p99)",
            columns=["class", "service", "upload", "server", "download", "ttfb"],
            rows=phase_rows,
            footnotes=[
                "service = done - actual send; upload = until the request was fully sent; "
                "server = upload done to first byte; download = first byte to done; "
                "ttfb = actual send to first byte"
            ],
        ),
    ]
    error_table = _errors_table(measured)
    if error_table is not None:
        tables.append(error_table)
    reproduced = _reproduction_table(measured)
    if reproduced is not None:
        tables.append(reproduced)
    tables.append(_run_table(rows, summary))
    return tables


def _reproduction_table(rows: Rows) -> Table | None:
    """How often each failure reproduced, for a run of `replay --repeat K`."""
    if not len(rows) or int(rows.repeat.max()) == 0:
        return None
    total = int(rows.repeat.max()) + 1
    failures = [
        (f"status {status}" if error.startswith("HTTP ") else error, repeat, request_id)
        for request_id, repeat, status, error in zip(
            rows.request_id.tolist(),
            rows.repeat.tolist(),
            rows.status.tolist(),
            rows.error.tolist(),
            strict=True,
        )
        if error
    ]
    found = count_reproductions(failures, total)
    lines = [[r.line()] for r in found] or [[f"no failures in {total} repetitions"]]
    return Table(title=f"Reproduced across {total} repetitions", columns=["failure"], rows=lines)


def error_groups(measured: Rows) -> dict[tuple[str, str], Counter[str]]:
    """Per (class, error) the distinct one-line reasons and how often each came."""
    groups: dict[tuple[str, str], Counter[str]] = {}
    keys = zip(
        measured.stratum.tolist(),
        measured.error.tolist(),
        measured.request_id.tolist(),
        measured.loop.tolist(),
        measured.repeat.tolist(),
        strict=True,
    )
    for name, kind, request_id, loop, repeat in keys:
        if kind:
            detail = measured.error_details.get((request_id, loop, repeat), "")
            groups.setdefault((name, kind), Counter())[detail] += 1
    return groups


def _errors_table(measured: Rows) -> Table | None:
    groups = error_groups(measured)
    if not groups:
        return None
    rows = []
    for (name, kind), details in sorted(groups.items()):
        count = sum(details.values())
        common, _ = details.most_common(1)[0]
        message = common or "(no message recorded)"
        if len(details) > 1:
            message += f" (+{len(details) - 1} more)"
        share = fmt_percent(count / len(measured), signed=False)
        rows.append([name, kind, fmt_count(count), share, fmt_count(len(details)), message])
    return Table(
        title="Errors",
        columns=["class", "error", "count", "share", "distinct", "most common message"],
        rows=rows,
        footnotes=[
            "distinct: how many different messages (error type and first line) came with the "
            "error; --json lists them all"
        ],
    )


def _run_table(rows: Rows, summary: RunSummary) -> Table:
    items = [
        ["file", f"{rows.path} ({rows.kind}, source {rows.source})"],
        [
            "requests",
            f"{fmt_count(summary.requests)} ({fmt_count(summary.warmup)} warmup excluded)",
        ],
        ["succeeded", f"{fmt_count(summary.ok)} of {fmt_count(summary.measured)}"],
        ["duration", f"{summary.duration_s:.2f}s"],
        ["sent rate (offered)", f"{summary.offered_rate:.2f} req/s"],
        ["server throughput", _throughput(summary)],
        [
            "send lag p50 / p99",
            f"{fmt_duration(summary.lag_p50)} / {fmt_duration(summary.lag_p99)}",
        ],
        ["health", health_line(rows, summary).split(": ", 1)[-1]],
    ]
    if rows.no_response:
        items.append(["no recorded response", fmt_count(rows.no_response)])
    items += [["note", note] for note in rows.notes]
    return Table(title="Run", columns=["", ""], rows=items)


def _throughput(summary: RunSummary) -> str:
    text = f"{summary.throughput:.2f} req/s succeeded"
    if summary.saturated:
        text += " - below the sent rate: the server was saturated and requests queued"
    return text


def report_json(rows: Rows, tables: list[Table]) -> dict[str, object]:
    """Machine-readable report: figures per class with raw numbers (ns), plus the tables."""
    import msgspec

    measured = _measured(rows)
    summary = run_summary(rows)
    classes = []
    for name, group in _strata(measured):
        latency = np.sort(group.latency[group.ok])
        quantiles = {}
        for q in QUANTILES:
            interval = _stats.quantile_ci(latency, q)
            quantiles[f"p{q * 100:g}"] = {
                "ns": interval.estimate,
                "ci_ns": [v if math.isfinite(v) else None for v in (interval.lo, interval.hi)],
            }
        errors = Counter(kind for kind in group.error.tolist() if kind)
        classes.append(
            {
                "class": name,
                "requests": len(group),
                "ok": int(group.ok.sum()),
                "errors": dict(errors),
                "latency": quantiles,
                "max_ns": float(latency[-1]) if len(latency) else None,
            }
        )
    return {
        "command": "report",
        "file": str(rows.path),
        "kind": rows.kind,
        "client": rows.client,
        "interrupted": rows.interrupted,
        "notes": rows.notes,
        "summary": msgspec.to_builtins(summary.__dict__),
        "classes": classes,
        "error_messages": [
            {"class": name, "error": kind, "message": detail or None, "count": count}
            for (name, kind), details in sorted(error_groups(measured).items())
            for detail, count in details.most_common()
        ],
        "tables": msgspec.to_builtins(tables),
    }
