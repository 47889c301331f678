"""Tables and JSON for `imgtrace compare` (the statistics live in `_compare`)."""

from __future__ import annotations

import math

from ._compare import (
    Effect,
    PairAnalysis,
    Settings,
    Stratum,
    geomean,
    quantile_name,
)
from ._render import (
    Footnotes,
    fmt_count,
    fmt_delta,
    fmt_duration,
    fmt_p,
    fmt_percent,
    fmt_ratio_ci,
)
from ._stats import Interval
from ._table import Table

__all__ = ["analysis_json", "comparison_tables", "noise_table"]

ROW_CLASS = {"slower": "slower", "faster": "faster", "~": "same", "inconclusive": "inconclusive"}


def _spread(interval: Interval, notes: Footnotes, q: float) -> str:
    """benchstat's "52.3ms ±3%": the estimate and the CI's larger relative half-width."""
    if math.isnan(interval.estimate):
        return "—"
    if not interval.bounded:
        from ._stats import min_n_for_quantile_ci

        need = min_n_for_quantile_ci(q)
        return f"{fmt_duration(interval.estimate)} ±∞" + notes.mark(
            f"need >= {need} requests for a {quantile_name(q)} CI"
        )
    half = max(interval.hi - interval.estimate, interval.estimate - interval.lo)
    return f"{fmt_duration(interval.estimate)} ±{half / interval.estimate * 100:.0f}%"


def _marks(effect: Effect, notes: Footnotes) -> str:
    return "".join(notes.mark(warning) for warning in effect.warnings)


def _effect_cell(effect: Effect, notes: Footnotes, *, verdict: bool = True) -> str:
    cell = fmt_ratio_ci(effect.estimate, effect.lo, effect.hi) + _marks(effect, notes)
    if not math.isnan(effect.delta_ns):
        cell += f" ({fmt_delta(effect.delta_ns)})"
    return f"{cell} {effect.verdict_text}" if verdict else cell


def typical_factor(analysis: PairAnalysis) -> str:
    """The widening of the "all" row's typical change, as people read it: "x1.00"."""
    return f"x{analysis.all.typical.variance_factor:.2f}"


def _main_table(analysis: PairAnalysis, settings: Settings, noise: bool) -> Table:
    notes = Footnotes()
    base, cand = analysis.join.base.path, analysis.join.cand.path
    # BASE → CAND in one cell per quantile: two columns fewer, so the table fits 80 columns.
    columns = ["class", "p50 base → cand", "p99 base → cand", "typical change [95% CI]"]
    columns += ["noise band"] if noise else []
    columns += ["verdict", "p (Holm)", "pairs"]
    rows, classes = [], []
    for stratum in analysis.strata:
        typical = stratum.typical
        row = [
            stratum.name,
            *(
                f"{_spread(stratum.base_quantiles[q], notes, q)} → "
                f"{_spread(stratum.cand_quantiles[q], notes, q)}"
                for q in (0.5, 0.99)
            ),
            _effect_cell(typical, notes, verdict=False),
        ]
        if noise:
            row.append("±" + fmt_percent(math.expm1(typical.noise_band), signed=False))
        row += [typical.verdict_text, fmt_p(typical.p_holm), fmt_count(stratum.ok_pairs)]
        rows.append(row)
        classes.append(ROW_CLASS[typical.verdict])
    mean, warnings = geomean(analysis)
    geo = ["geomean", "", "", fmt_percent(math.expm1(mean))]
    geo += [""] if noise else []
    geo += ["", "", ""]
    geo[0] += "".join(notes.mark(w) for w in warnings)
    rows.append(geo)
    classes.append("geomean")
    footnotes = notes.lines(
        "typical change: Hodges-Lehmann estimate of the per-request change CAND/BASE over "
        "requests that succeeded in both runs, with the median paired difference CAND - BASE "
        "in time; p: Wilcoxon signed-rank, Holm-corrected",
        f"verdict: faster/slower when the Holm-level CI excludes 0, p < {settings.alpha:g} and the "
        f"change exceeds {fmt_percent(settings.min_effect, signed=False)}"
        + (" and the A/A noise band" if noise else "")
        + "; ~ when the CI lies inside that band"
        + f" and the band is no wider than {fmt_percent(settings.min_effect, signed=False)}"
        + "; otherwise inconclusive, with the reason: (noise ±X%) means the A/A replays "
        "differ by more than the change that matters, so this setup cannot tell",
        "CIs and tests allow for serial correlation between neighbouring requests "
        f"(variance factor {typical_factor(analysis)})",
    )
    if not noise:
        footnotes.append("no A/A noise band: replay BASE twice and pass the second with --noise")
    return Table(
        title=f"Latency: {cand} vs {base}",
        columns=columns,
        rows=rows,
        footnotes=footnotes,
        row_classes=classes,
    )


def _tail_table(analysis: PairAnalysis) -> Table:
    notes = Footnotes()
    rows = []
    for stratum in analysis.strata:
        cells = [_effect_cell(stratum.quantiles[q], notes) for q in (0.5, 0.9, 0.99)]
        rows.append([stratum.name, *cells, str(stratum.block)])
    return Table(
        title="Tail ratios CAND/BASE (paired moving-block bootstrap in send order, 95% CI)",
        columns=["class", "Δp50", "Δp90", "Δp99", "block"],
        rows=rows,
        footnotes=notes.lines("(±X) beside a ratio: the quantile's change in time, CAND - BASE"),
    )


def _shift_table(stratum: Stratum, settings: Settings) -> Table:
    notes = Footnotes()
    rows = []
    for q, effect in stratum.quantiles.items():
        rows.append(
            [quantile_name(q), _effect_cell(effect, notes, verdict=False), effect.verdict_text]
        )
    return Table(
        title=f"Shift function [{stratum.name}]: change of each quantile CAND/BASE",
        columns=["quantile", "change [95% CI]", "verdict"],
        rows=rows,
        footnotes=notes.lines(
            "read top to bottom: a change only in the upper rows is a tail effect"
        ),
    )


def _unpaired_table(analysis: PairAnalysis, settings: Settings) -> Table:
    notes = Footnotes()
    rows = []
    for stratum in analysis.strata:
        summary = stratum.unpaired
        base_m, cand_m = summary.base_median, summary.cand_median
        p = summary.p_holm
        if math.isnan(p) or p >= settings.alpha:
            delta = "~"
        else:
            delta = fmt_percent(cand_m.estimate / base_m.estimate - 1.0)
            delta += f" ({fmt_delta(cand_m.estimate - base_m.estimate)})"
        rows.append(
            [
                stratum.name,
                _spread(base_m, notes, 0.5),
                _spread(cand_m, notes, 0.5),
                delta,
                f"(p={fmt_p(p)} n={summary.base_n}+{summary.cand_n})",
            ]
        )
    return Table(
        title="Unpaired medians (benchstat-style; Mann-Whitney U, Holm-corrected)",
        columns=["class", "base median", "cand median", "vs base", "test"],
        rows=rows,
        footnotes=notes.lines(),
    )


def _errors_table(analysis: PairAnalysis) -> Table:
    rows = []
    for stratum in analysis.strata:
        counts, effect = stratum.error_counts, stratum.errors
        rows.append(
            [
                stratum.name,
                fmt_count(counts.pairs),
                fmt_count(counts.base_failed),
                fmt_count(counts.cand_failed),
                fmt_count(counts.only_base_failed),
                fmt_count(counts.only_cand_failed),
                fmt_percent(effect.estimate),
                fmt_p(effect.p_holm),
                effect.verdict_text,
            ]
        )
    return Table(
        title="Errors over paired requests (exact McNemar, Holm-corrected)",
        columns=[
            "class",
            "pairs",
            "base failed",
            "cand failed",
            "only base",
            "only cand",
            "change",
            "p",
            "verdict",
        ],
        rows=rows,
    )


def _tests_table(analysis: PairAnalysis) -> Table:
    rows = []
    for stratum in analysis.strata:
        rows.append(
            [
                stratum.name,
                fmt_count(stratum.ok_pairs),
                fmt_p(stratum.wilcoxon.p),
                stratum.wilcoxon.method,
                fmt_p(stratum.sign.p),
                fmt_p(stratum.typical.p_holm),
            ]
        )
    return Table(
        title="Paired tests on per-request log-ratios",
        columns=["class", "pairs", "Wilcoxon p", "method", "sign test p", "Wilcoxon p (Holm)"],
        rows=rows,
    )


def _join_table(analysis: PairAnalysis) -> Table:
    join = analysis.join
    rows = [
        ["paired requests", fmt_count(join.pairs)],
        ["succeeded in both", fmt_count(analysis.all.ok_pairs)],
        ["warmup (excluded) in base / cand", f"{join.warmup_base} / {join.warmup_cand}"],
        ["only in base", fmt_count(join.only_base)],
        ["only in cand", fmt_count(join.only_cand)],
    ]
    if join.duplicates:
        rows.append(["repeated (id, loop), first kept", fmt_count(join.duplicates)])
    if analysis.excluded_nonpositive:
        rows.append(["non-positive latency, excluded", fmt_count(analysis.excluded_nonpositive)])
    for rows_ in (join.base, join.cand):
        if rows_.no_response:
            rows.append([f"no recorded response in {rows_.path}", fmt_count(rows_.no_response)])
    return Table(title="Pairing by request id and loop", columns=["", "count"], rows=rows)


def comparison_tables(analysis: PairAnalysis, settings: Settings, *, noise: bool) -> list[Table]:
    """Every table of one BASE-vs-CAND comparison, the verdict table first."""
    return [
        _main_table(analysis, settings, noise),
        _tail_table(analysis),
        _shift_table(analysis.all, settings),
        _unpaired_table(analysis, settings),
        _errors_table(analysis),
        _tests_table(analysis),
        _join_table(analysis),
    ]


def noise_table(noise: PairAnalysis) -> Table:
    """The A/A comparison itself: its effects are the noise band; a verdict here is a warning."""
    notes = Footnotes()
    rows = [
        [
            s.name,
            _effect_cell(s.typical, notes, verdict=False),
            _effect_cell(s.quantiles[0.99], notes, verdict=False),
            s.typical.verdict_text,
        ]
        for s in noise.strata
    ]
    footnotes = notes.lines()
    if any(s.typical.verdict in ("slower", "faster") for s in noise.strata):
        footnotes.append(
            "the A/A replays differ significantly: the setup itself is noisy or drifting; "
            "treat every verdict with care"
        )
    return Table(
        title=f"A/A noise: {noise.join.cand.path} vs {noise.join.base.path}",
        columns=["class", "typical change", "Δp99", "verdict"],
        rows=rows,
        footnotes=footnotes,
    )


def analysis_json(analysis: PairAnalysis) -> dict[str, object]:
    join = analysis.join
    return {
        "base": str(join.base.path),
        "cand": str(join.cand.path),
        "join": {
            "pairs": join.pairs,
            "succeeded_in_both": analysis.all.ok_pairs,
            "warmup_base": join.warmup_base,
            "warmup_cand": join.warmup_cand,
            "only_base": join.only_base,
            "only_cand": join.only_cand,
            "duplicates": join.duplicates,
            "nonpositive_excluded": analysis.excluded_nonpositive,
        },
        "geomean": _geomean_json(analysis),
        "effects": [effect.to_json() for effect in analysis.effects()],
        "unpaired": [
            {
                "stratum": s.name,
                "base_median_ns": s.unpaired.base_median.estimate,
                "cand_median_ns": s.unpaired.cand_median.estimate,
                "base_n": s.unpaired.base_n,
                "cand_n": s.unpaired.cand_n,
                "p": s.unpaired.test.p,
                "p_holm": s.unpaired.p_holm,
                "method": f"Mann-Whitney U ({s.unpaired.test.method})",
            }
            for s in analysis.strata
        ],
    }


def _geomean_json(analysis: PairAnalysis) -> float | None:
    mean, _ = geomean(analysis)
    return math.expm1(mean) if math.isfinite(mean) else None
