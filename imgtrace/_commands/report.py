"""`imgtrace report`: the latency report of one run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._analysis import add_common_arguments, refuse_outputs
from ._shared import EXIT_OK, Command, add_force_flag, add_path, progress, write_json

__all__ = ["register"]

REPORT_DESCRIPTION = """\
Summarize one run file (or a trace with recorded responses, such as a proxy recording or an
AIPerf import): per request class and overall, the request count, errors by class, achieved
throughput, latency p50/p90/p99/max from the intended send time with distribution-free 95%
CIs, service latency, the phase breakdown (upload, server, download), and whether sends left
on time. Warmup requests are counted and excluded."""


def add_arguments(report: argparse.ArgumentParser) -> None:
    """The flags of `report`."""
    report.add_argument("run", type=Path, metavar="RUN", help="run file or trace with responses")
    add_common_arguments(report)
    add_path(report, "--hgrm", "FILE", "write the latency percentiles as .hgrm text")
    add_force_flag(report)


def _report(args: argparse.Namespace) -> int:
    from analyzer import load_rows, report_tables
    from analyzer._render import render_text
    from analyzer._report import report_json

    refuse_outputs(args, "json", "html", "hgrm")
    with progress(f"reading {args.run}"):
        rows = load_rows(args.run, trace=args.trace, salvage=args.salvage)
        tables = report_tables(rows)
    to_stdout = args.json == "-"
    out = sys.stderr if to_stdout else sys.stdout
    if not to_stdout:
        print("\n\n".join(render_text(table) for table in tables), file=out)
    warnings = [note for note in rows.notes if note.startswith("WARNING")]
    for note in warnings:
        print(note, file=out)
    if args.json:
        write_json(args.json, report_json(rows, tables))
    if args.hgrm:
        from analyzer._hgrm import hgrm_text

        measured = rows.ok & ~rows.warmup
        args.hgrm.write_text(hgrm_text(rows.latency[measured]))
    if args.html is not None:
        import analyzer
        from analyzer._plots import run_plots
        from analyzer._report import health_line

        with progress("drawing plots"):
            plots = run_plots(rows)
        analyzer.write_html_report(
            args.html,
            title=f"imgtrace report: {args.run.name}",
            summary=[*warnings, health_line(rows)],
            tables=tables,
            plots=plots,
            images=None,
            force=args.force,
        )
    return EXIT_OK


register = Command(
    "report",
    "latency report of one run: percentiles with CIs, errors, throughput, lag health",
    REPORT_DESCRIPTION,
    add_arguments,
    _report,
)
