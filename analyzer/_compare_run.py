"""`imgtrace compare` from parsed arguments to printed tables, files and the exit code."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec

from ._compare import PairAnalysis, Settings, analyze_pair, apply_holm, apply_noise
from ._compare_tables import analysis_json, comparison_tables, noise_table
from ._load import Join, Rows, join_rows, load_rows
from ._render import fmt_ratio_ci, render_text
from ._report import health_line
from ._rules import Rules, violations
from ._table import Table

__all__ = ["compare_files", "run_compare"]


def _join(base: Rows, other: Rows, force: bool) -> Join:
    join = join_rows(base, other, force=force)
    if base.trace_digest and other.trace_digest and base.trace_digest != other.trace_digest:
        warnings.warn(
            f"{other.path} replays a different trace than {base.path}; paired "
            f"{join.pairs} requests by id (--force)",
            UserWarning,
            stacklevel=2,
        )
    return join


def compare_files(
    base_path: Path,
    cand_paths: list[Path],
    noise_path: Path | None,
    settings: Settings,
    *,
    trace: Path | None = None,
    force: bool = False,
    salvage: bool = False,
) -> tuple[list[PairAnalysis], PairAnalysis | None]:
    """Load, pair and analyze; the A/A comparison (if any) sets every noise band."""
    base = load_rows(base_path, trace=trace, salvage=salvage)
    cands = [load_rows(path, trace=trace, salvage=salvage) for path in cand_paths]
    noise = None
    if noise_path is not None:
        noise = analyze_pair(
            _join(base, load_rows(noise_path, trace=trace, salvage=salvage), force), settings
        )
        apply_holm([noise], settings)
    analyses = [analyze_pair(_join(base, cand, force), settings) for cand in cands]
    if noise is not None:
        for analysis in analyses:
            apply_noise(analysis, noise)
    apply_holm(analyses, settings)
    return analyses, noise


def summary_line(analysis: PairAnalysis) -> str:
    typical = analysis.all.typical
    change = fmt_ratio_ci(typical.estimate, typical.lo, typical.hi)
    return (
        f"{analysis.join.cand.path} vs {analysis.join.base.path}: {typical.verdict} "
        f"(typical per-request change {change}, {analysis.all.ok_pairs} pairs)"
    )


def _image_reports(
    args: argparse.Namespace, images: ModuleType, rules: Rules
) -> tuple[list[Any], list[str]]:
    thresholds = images.thresholds_from_args(args)
    assets = None
    if args.html is not None:
        assets = args.html.with_name(args.html.stem + "_files")
    reports, found = [], []
    for index, cand in enumerate(args.cands):
        # The HTML report draws the first candidate's images; the others' verdicts still count.
        report = images.compare_run_images(
            args.base,
            cand,
            args.noise,
            thresholds=thresholds,
            jobs=args.jobs,
            assets_dir=assets if index == 0 else None,
            force=args.force,
            salvage=args.salvage,
        )
        reports.append(report)
        for rule in rules.images:
            message = report.violation(rule)
            if message:
                found.append(f"{cand}: {message}")
    return reports, found


def run_compare(
    args: argparse.Namespace,
    settings: Settings,
    rules: Rules,
    images: ModuleType | None,
    html: Any,
) -> int:
    """Run the whole command; returns the exit code (1 when a rule is broken)."""
    from ._cli import _status, _write_json

    with _status("comparing"):
        analyses, noise = compare_files(
            args.base,
            list(args.cands),
            args.noise,
            settings,
            trace=args.trace,
            force=args.force,
            salvage=args.salvage,
        )
    tables: list[Table] = []
    for analysis in analyses:
        tables += comparison_tables(analysis, settings, noise=noise is not None)
    if noise is not None:
        tables.append(noise_table(noise))
    found = [line for analysis in analyses for line in violations(analysis, rules, settings)]
    image_reports: list[Any] = []
    if images is not None:
        # The image comparison draws its own progress bar.
        image_reports, image_found = _image_reports(args, images, rules)
        found += image_found
        for report in image_reports:
            tables += report.tables()
    runs = [analyses[0].join.base] + [a.join.cand for a in analyses]
    runs += [noise.join.cand] if noise is not None else []
    summary = [summary_line(analysis) for analysis in analyses]
    summary += [health_line(rows) for rows in runs]
    summary += [f"REGRESSION: {line}" for line in found]
    code = 1 if found else 0
    to_stdout = args.json == "-"
    out = sys.stderr if to_stdout else sys.stdout
    print("\n\n".join(render_text(table) for table in tables), file=out)
    print("\n" + "\n".join(summary), file=out)
    if args.json:
        _write_json(
            args.json,
            _document(analyses, noise, settings, rules, found, tables, image_reports, code),
        )
    if html is not None:
        from ._plots import comparison_plots

        with _status("drawing plots"):
            shifts = []
            for analysis in analyses:
                effects = list(analysis.all.quantiles.items())
                shifts.append(
                    (
                        analysis.join.cand.path.name,
                        [q for q, _ in effects],
                        _array([e.estimate for _, e in effects]),
                        _array([e.lo for _, e in effects]),
                        _array([e.hi for _, e in effects]),
                    )
                )
            plots = comparison_plots(runs, shifts)
        html.write_html_report(
            args.html,
            title=f"imgtrace compare: {args.base.name}",
            summary=summary,
            tables=tables,
            plots=plots,
            images=image_reports[0] if image_reports else None,
            force=args.force,
        )
    return code


def _array(values: list[float]) -> Any:
    import numpy as np

    # Unbounded CI sides are drawn as no error bar rather than an infinite one.
    array = np.array(values, dtype=np.float64)
    return np.where(np.isfinite(array), array, np.nan)


def _document(
    analyses: list[PairAnalysis],
    noise: PairAnalysis | None,
    settings: Settings,
    rules: Rules,
    found: list[str],
    tables: list[Table],
    image_reports: list[Any],
    code: int,
) -> dict[str, Any]:
    return {
        "command": "compare",
        "settings": {
            "alpha": settings.alpha,
            "confidence": settings.confidence,
            "min_effect": settings.min_effect,
            "resamples": settings.resamples,
            "seed": settings.seed,
        },
        "comparisons": [analysis_json(analysis) for analysis in analyses],
        "noise": analysis_json(noise) if noise is not None else None,
        "rules": {
            "latency": [rule.text for rule in rules.latency],
            "errors": [rule.text for rule in rules.errors],
            "images": [str(rule) for rule in rules.images],
        },
        "violations": found,
        "exit_code": code,
        "images": [report.to_json() for report in image_reports],
        "tables": msgspec.to_builtins(tables),
        "health": [health_line(a.join.cand) for a in analyses],
    }
