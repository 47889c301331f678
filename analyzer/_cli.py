"""Subcommands contributed by the analyzer package: `report` and `compare`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["register"]

REPORT_DESCRIPTION = """\
Summarize one run file (or a trace with recorded responses, such as a proxy recording or an
AIPerf import): per request class and overall, the request count, errors by class, achieved
throughput, latency p50/p90/p99/max from the intended send time with distribution-free 95%
CIs, service latency, the phase breakdown (upload, server, download), and whether sends left
on time. Warmup requests are counted and excluded."""

COMPARE_DESCRIPTION = """\
Compare CAND runs against BASE, request by request (paired by request id and loop): the
typical per-request change (Hodges-Lehmann with a Wilcoxon-inverted CI), Wilcoxon signed-rank
and sign tests, McNemar for errors, p50/p90/p99 ratios with moving-block bootstrap CIs, a
decile shift function, and benchstat-style unpaired medians with Mann-Whitney U. p-values are
Holm-corrected across classes and candidates. Verdicts: faster, slower, ~ (no change beyond
the noise band) or inconclusive. Output images are compared too unless --no-images."""

FAIL_ON_HELP = """\
comma-separated regression rules, e.g. 'p99:+10%%,median:+5%%,errors:+1%%,images:changed>5%%';
exit code 1 when a rule's regression is significant (see docs/analyzing.md)"""


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", metavar="FILE", help="write the results as JSON to FILE ('-' for stdout)"
    )
    parser.add_argument(
        "--html", type=Path, metavar="FILE", help="write a self-contained HTML report with plots"
    )
    parser.add_argument(
        "--trace",
        type=Path,
        metavar="TRACE",
        help="the trace the runs replayed, for request classes (default: the requests in the "
        "file, else the trace named in the run header if it is still there)",
    )
    parser.add_argument(
        "--salvage",
        action="store_true",
        help="read damaged files up to the damage instead of refusing them",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `report` and `compare` to `imgtrace`."""
    report = subparsers.add_parser(
        "report",
        help="latency report of one run: percentiles with CIs, errors, throughput, lag health",
        description=REPORT_DESCRIPTION,
    )
    report.add_argument("run", type=Path, metavar="RUN", help="run file or trace with responses")
    _add_common(report)
    report.add_argument(
        "--hgrm", type=Path, metavar="FILE", help="write the latency percentiles as .hgrm text"
    )
    report.add_argument("--force", action="store_true", help="overwrite existing output files")
    report.set_defaults(handler=_report)

    compare = subparsers.add_parser(
        "compare",
        help="paired A/B comparison of runs with verdicts and a --fail-on gate",
        description=COMPARE_DESCRIPTION,
    )
    compare.add_argument("base", type=Path, metavar="BASE", help="baseline run or trace")
    compare.add_argument("cands", type=Path, nargs="+", metavar="CAND", help="candidate runs")
    compare.add_argument(
        "--noise",
        type=Path,
        metavar="BASE2",
        help="a second replay of BASE's configuration: its difference from BASE is the A/A "
        "noise band that a change must exceed",
    )
    _add_common(compare)
    compare.add_argument("--fail-on", metavar="RULES", help=FAIL_ON_HELP)
    compare.add_argument(
        "--min-effect",
        default="2%",
        metavar="PCT",
        help="smallest change that counts as faster/slower, and the ~ band (default 2%%)",
    )
    compare.add_argument(
        "--alpha", type=float, default=0.05, help="significance level (default 0.05)"
    )
    compare.add_argument(
        "--resamples",
        type=int,
        default=2000,
        help="bootstrap resamples for quantile ratios (default 2000)",
    )
    compare.add_argument(
        "--seed", type=int, default=1, help="bootstrap random seed (default 1; results repeat)"
    )
    compare.add_argument(
        "--force",
        action="store_true",
        help="pair runs of different traces on the request ids they share, and overwrite "
        "existing output files",
    )
    from ._imageoptions import add_image_arguments

    add_image_arguments(compare)
    # The image flags may already define these; the latency side needs them either way.
    if "--no-images" not in compare._option_string_actions:
        compare.add_argument("--no-images", action="store_true", help="skip the image comparison")
    if "--jobs" not in compare._option_string_actions:
        compare.add_argument(
            "--jobs",
            type=int,
            default=os.cpu_count() or 1,
            help="worker processes for the image comparison (default: all cores)",
        )
    compare.set_defaults(handler=_compare)


def _check_outputs(args: argparse.Namespace, *names: str) -> None:
    from traces import UsageError

    for name in names:
        value = getattr(args, name, None)
        if value is None or str(value) == "-":
            continue
        path = Path(value)
        if path.is_dir():
            raise UsageError(f"--{name} {path} is a directory: give a file name")
        if path.exists() and not args.force:
            raise UsageError(f"{path} already exists: choose another --{name} file or pass --force")


def _write_json(target: str, document: dict[str, Any]) -> None:
    import msgspec

    def numpy_scalars(value: Any) -> Any:
        # numpy scalars that slipped into the document encode as their Python value.
        if hasattr(value, "item"):
            return value.item()
        raise NotImplementedError(f"cannot encode {type(value).__name__} as JSON")

    encoded = msgspec.json.encode(document, enc_hook=numpy_scalars)
    data = msgspec.json.format(encoded, indent=2) + b"\n"
    if target == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(target).write_bytes(data)


def _html_module() -> ModuleType:
    # Imported only when a report is asked for: it pulls in the image and plotting code.
    return importlib.import_module("analyzer._html")


def _status(message: str) -> Any:
    """A spinner on stderr while a step runs (silent when stderr is not a terminal)."""
    import contextlib

    if not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


def _report(args: argparse.Namespace) -> int:
    from ._load import load_rows
    from ._render import render_text
    from ._report import report_json, report_tables

    _check_outputs(args, "json", "html", "hgrm")
    html = _html_module() if args.html else None
    with _status(f"reading {args.run}"):
        rows = load_rows(args.run, trace=args.trace, salvage=args.salvage)
        tables = report_tables(rows)
    to_stdout = args.json == "-"
    out = sys.stderr if to_stdout else sys.stdout
    if not to_stdout:
        print("\n\n".join(render_text(table) for table in tables), file=out)
    if args.json:
        _write_json(args.json, report_json(rows, tables))
    if args.hgrm:
        from ._hgrm import hgrm_text

        measured = rows.ok & ~rows.warmup
        args.hgrm.write_text(hgrm_text(rows.latency[measured]))
    if html is not None:
        from ._plots import run_plots
        from ._report import health_line

        with _status("drawing plots"):
            plots = run_plots(rows)
        html.write_html_report(
            args.html,
            title=f"imgtrace report: {args.run.name}",
            summary=[health_line(rows)],
            tables=tables,
            plots=plots,
            images=None,
            force=args.force,
        )
    return 0


def _parse_min_effect(text: str) -> float:
    from traces import UsageError

    value = text.strip().rstrip("%")
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"--min-effect {text!r}: give a percentage such as 2%") from None
    if not 0 <= number < 100:
        raise UsageError(f"--min-effect {text!r}: give a percentage from 0 to 100")
    return number / 100.0


def _compare(args: argparse.Namespace) -> int:
    from traces import UsageError

    from ._compare import Settings
    from ._rules import parse_rules

    rules = parse_rules(args.fail_on)
    if not 0.0 < args.alpha < 0.5:
        raise UsageError("--alpha must be between 0 and 0.5, e.g. 0.05")
    if args.resamples < 100:
        raise UsageError("--resamples must be at least 100 (2000 is the default)")
    settings = Settings(
        alpha=args.alpha,
        confidence=1.0 - args.alpha,
        min_effect=_parse_min_effect(args.min_effect),
        resamples=args.resamples,
        seed=args.seed,
        extra_quantiles=rules.quantiles(),
    )
    _check_outputs(args, "json", "html")
    if rules.images and args.no_images:
        raise UsageError("--fail-on has image rules, but --no-images turns the comparison off")
    images = None if args.no_images else importlib.import_module("analyzer._images")
    html = _html_module() if args.html else None
    from ._compare_run import run_compare

    return run_compare(args, settings, rules, images, html)
