"""A whole comparison of runs: load, pair, analyze, and the document and plot data of it."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import msgspec

from ._compare import PairAnalysis, Settings, analyze_pair, apply_holm, apply_noise
from ._compare_tables import analysis_json
from ._interleaved import interleave_note
from ._load import Join, Rows, join_rows, load_rows
from ._provenance import interrupted_note, mixed_clients_note
from ._render import fmt_ratio_ci
from ._report import health_line
from ._rules import Rules
from ._table import Table

__all__ = [
    "compare_document",
    "compare_files",
    "interleave_notes",
    "mixed_clients",
    "provenance_notes",
    "shift_series",
    "summary_line",
]


def _join(base: Rows, other: Rows, force: bool) -> Join:
    join = join_rows(base, other, force=force)
    if base.trace_digest and other.trace_digest and base.trace_digest != other.trace_digest:
        warnings.warn(
            f"{other.path} replays a different trace than {base.path}; paired "
            f"{join.pairs} requests by id (--any-trace)",
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
        f"{analysis.join.cand.path} vs {analysis.join.base.path}: {typical.verdict_text} "
        f"(typical per-request change {change}, {analysis.all.ok_pairs} pairs)"
    )


def interleave_notes(analyses: list[PairAnalysis], noise: PairAnalysis | None) -> list[str]:
    """A note for each CAND (and the A/A run) not measured in one interleaved replay with BASE."""
    pairs = [(analysis.join, "CAND") for analysis in analyses]
    pairs += [(noise.join, "NOISE")] if noise is not None else []
    notes = (interleave_note(join.base, join.cand, role) for join, role in pairs)
    return [note for note in notes if note is not None]


def mixed_clients(analysis: PairAnalysis) -> bool:
    """Whether BASE and CAND were measured by different clients (`_provenance.client_of`)."""
    return analysis.join.base.client != analysis.join.cand.client


def provenance_notes(analyses: list[PairAnalysis], noise: PairAnalysis | None) -> list[str]:
    """Warnings first: pairs measured by different clients, then interrupted runs."""
    pairs = [(analysis.join, "CAND") for analysis in analyses]
    pairs += [(noise.join, "NOISE")] if noise is not None else []
    mixed = (mixed_clients_note(join.base, join.cand, role) for join, role in pairs)
    runs = [pairs[0][0].base] + [join.cand for join, _ in pairs] if pairs else []
    stopped = (interrupted_note(rows) for rows in runs)
    return [note for note in (*mixed, *stopped) if note is not None]


def shift_series(
    analyses: list[PairAnalysis],
) -> list[tuple[str, list[float], Any, Any, Any]]:
    """Per candidate: its name, the quantiles, and their ratio estimates with CI sides (plots)."""
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
    return shifts


def _array(values: list[float]) -> Any:
    import numpy as np

    # Unbounded CI sides are drawn as no error bar rather than an infinite one.
    array = np.array(values, dtype=np.float64)
    return np.where(np.isfinite(array), array, np.nan)


def compare_document(
    analyses: list[PairAnalysis],
    noise: PairAnalysis | None,
    settings: Settings,
    rules: Rules,
    found: list[str],
    tables: list[Table],
    image_reports: list[Any],
    code: int,
    *,
    allow_mixed_clients: bool = False,
) -> dict[str, Any]:
    """The `--json` document of a comparison: settings, effects, rules, verdicts, tables."""
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
        "notes": provenance_notes(analyses, noise) + interleave_notes(analyses, noise),
        "mixed_clients": [
            {
                "base": str(a.join.base.path),
                "base_client": a.join.base.client,
                "cand": str(a.join.cand.path),
                "cand_client": a.join.cand.client,
                "latency_gated": allow_mixed_clients,
            }
            for a in analyses
            if mixed_clients(a)
        ],
        "interrupted": [
            str(rows.path)
            for rows in [analyses[0].join.base, *(a.join.cand for a in analyses)]
            if rows.interrupted
        ],
    }
