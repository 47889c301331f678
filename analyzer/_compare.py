"""Paired A/B analysis of two runs of one trace: effects, tests, noise band and verdicts.

Every latency effect is a log-ratio ln(CAND / BASE), so +0.0488 reads as "5% slower"; the
error effect is a difference in failure rate. Strata are request classes plus "all".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import _stats
from ._bootstrap import BootstrapResult, quantile_ratios_by_group
from ._dependence import block_length, dependence
from ._effect import DECILES, REPORTED, Effect, Settings, quantile_name
from ._load import BoolArray, FloatArray, Join, ObjArray, Rows
from ._stats import Interval, TestResult

IntpArray = npt.NDArray[np.intp]

__all__ = [
    "DECILES",
    "Effect",
    "ErrorCounts",
    "PairAnalysis",
    "Settings",
    "Stratum",
    "analyze_pair",
    "apply_holm",
    "apply_noise",
    "geomean",
    "quantile_name",
]

MIN_PAIRS = 6  # the fewest pairs whose Wilcoxon-inverted 95% CI is bounded


@dataclass(frozen=True)
class ErrorCounts:
    """The paired success/failure table of one stratum."""

    pairs: int
    base_failed: int
    cand_failed: int
    only_base_failed: int
    only_cand_failed: int


@dataclass
class Unpaired:
    """Benchstat-style summary: medians with CIs from all successes, and Mann–Whitney U."""

    base_median: Interval
    cand_median: Interval
    base_n: int
    cand_n: int
    test: TestResult
    p_holm: float = math.nan


@dataclass
class Stratum:
    """Everything computed for one request class (or "all")."""

    name: str
    pairs: int
    ok_pairs: int
    typical: Effect
    wilcoxon: TestResult
    sign: TestResult
    quantiles: dict[float, Effect]
    errors: Effect
    error_counts: ErrorCounts
    unpaired: Unpaired
    base_quantiles: dict[float, Interval]
    cand_quantiles: dict[float, Interval]
    block: int

    def effects(self) -> list[Effect]:
        return [self.typical, *self.quantiles.values(), self.errors]


@dataclass
class PairAnalysis:
    """BASE vs one CAND (or vs the A/A noise replay)."""

    join: Join
    strata: list[Stratum]
    excluded_nonpositive: int = 0

    @property
    def all(self) -> Stratum:
        return self.strata[0]

    def effects(self) -> list[Effect]:
        return [effect for stratum in self.strata for effect in stratum.effects()]


def _stratum_labels(join: Join) -> tuple[ObjArray, ObjArray]:
    """Class labels for every base and cand row, taken from whichever side knows the classes."""
    base, cand = join.base, join.cand
    if base.classes and cand.classes:
        return base.stratum, cand.stratum
    source = base if base.classes else cand
    mapping = dict(zip(source.request_id.tolist(), source.stratum.tolist(), strict=True))

    def relabel(rows: Rows) -> ObjArray:
        labels = np.empty(len(rows), dtype=object)
        labels[:] = [mapping.get(request_id, "?") for request_id in rows.request_id.tolist()]
        return labels

    return (base.stratum if base.classes else relabel(base)), (
        cand.stratum if cand.classes else relabel(cand)
    )


def _typical(name: str, ratios: FloatArray, settings: Settings) -> tuple[Effect, TestResult]:
    """The typical per-request change, with tests widened for correlation in send order."""
    n = len(ratios)
    # The rank scores drive both the test and the interval, so their dependence sets the widening.
    serial = dependence(_stats.signed_ranks(ratios))
    inflation, df = serial.factor, serial.df
    wilcoxon = _stats.wilcoxon(ratios, inflation, df)
    if n == 0:
        effect = Effect(name, "typical", 0, math.nan, -math.inf, math.inf, math.nan, "none")
        effect.warnings.append("no request succeeded in both runs")
        return effect, wilcoxon
    interval = _stats.hodges_lehmann(ratios, settings.confidence, inflation, df)
    effect = Effect(
        name,
        "typical",
        n,
        interval.estimate,
        interval.lo,
        interval.hi,
        wilcoxon.p,
        f"Hodges-Lehmann, Wilcoxon signed-rank ({wilcoxon.method})",
        variance_factor=inflation,
    )

    def interval_at(confidence: float) -> tuple[float, float]:
        other = _stats.hodges_lehmann(ratios, confidence, inflation, df)
        return other.lo, other.hi

    effect.interval_at = interval_at
    if n < MIN_PAIRS:
        effect.warnings.append(f"need >= {MIN_PAIRS} paired successes for a confidence interval")
    return effect, wilcoxon


def _tail_effects(
    name: str, n: int, result: BootstrapResult | None, settings: Settings
) -> dict[float, Effect]:
    """Quantile-ratio effects of one stratum from its share of the run's bootstrap."""
    effects: dict[float, Effect] = {}
    for index, q in enumerate(settings.quantiles):
        label = quantile_name(q)
        if result is None or n == 0:
            effects[q] = Effect(name, label, 0, math.nan, -math.inf, math.inf, math.nan, "none")
            continue
        need = _stats.min_n_for_quantile_ci(q, settings.confidence)
        estimate = float(result.log_ratio[index])
        method = f"moving-block bootstrap (block {result.block}, {result.resamples} resamples)"
        if n < need or not math.isfinite(float(result.lo[index])):
            effect = Effect(name, label, n, estimate, -math.inf, math.inf, math.nan, method)
            effect.warnings.append(f"need >= {need} requests for a {label} CI")
        else:
            lo, hi, p = (float(result.lo[index]), float(result.hi[index]), float(result.p[index]))
            effect = Effect(name, label, n, estimate, lo, hi, p, method)
            effect.interval_at = result.interval_at(index)
        effects[q] = effect
    return effects


def _sign(ratios: FloatArray) -> TestResult:
    serial = dependence(np.sign(ratios[ratios != 0.0]))
    return _stats.sign_test(ratios, serial.factor, serial.df)


def _errors(name: str, base_ok: BoolArray, cand_ok: BoolArray) -> tuple[Effect, ErrorCounts]:
    n = len(base_ok)
    only_base = int((~base_ok & cand_ok).sum())
    only_cand = int((base_ok & ~cand_ok).sum())
    counts = ErrorCounts(n, int((~base_ok).sum()), int((~cand_ok).sum()), only_base, only_cand)
    test = _stats.mcnemar(only_base, only_cand)
    if n == 0:
        return Effect(
            name,
            "errors",
            0,
            math.nan,
            -math.inf,
            math.inf,
            math.nan,
            "none",
            kind="rate_difference",
        ), counts
    difference = (only_cand - only_base) / n
    # Failures come in bursts (a restart, a full queue): widen for their correlation in send order.
    serial = dependence((base_ok & ~cand_ok).astype(np.float64) - (~base_ok & cand_ok))
    # Wald interval for a paired difference of proportions.
    spread = math.sqrt(max(0.0, only_base + only_cand - (only_cand - only_base) ** 2 / n)) / n
    spread *= math.sqrt(serial.factor)
    z = _stats.t_quantile(0.975, serial.df)
    method = "McNemar (exact)"
    p = test.p
    if serial.factor > 1.0 and spread > 0:
        p = _stats.t_two_sided(difference / spread, serial.df)
        method = f"McNemar (serial correlation: variance x{serial.factor:.2f}, t({serial.df}))"
    effect = Effect(
        name,
        "errors",
        n,
        difference,
        difference - z * spread,
        difference + z * spread,
        p,
        method,
        kind="rate_difference",
        variance_factor=serial.factor,
    )
    return effect, counts


def _quantile_cis(latency: FloatArray, confidence: float) -> dict[float, Interval]:
    ordered = np.sort(latency)
    return {q: _stats.quantile_ci(ordered, q, confidence) for q in REPORTED}


def _measured_ok(rows: Rows, labels: ObjArray, name: str) -> FloatArray:
    mask = rows.ok & ~rows.warmup
    if name != "all":
        mask &= labels == name
    latency = rows.latency[mask]
    result: FloatArray = latency[latency > 0]
    return result


def _block(base_lat: FloatArray, cand_lat: FloatArray) -> int:
    """Block length from the stronger serial correlation: the pairs' or the base run's own."""
    ratios, base = np.log(cand_lat / base_lat), np.log(base_lat)
    rho = max(dependence(ratios).rho, dependence(base).rho)
    return block_length(len(base_lat), rho)


def _bootstrap(
    base_lat: FloatArray,
    cand_lat: FloatArray,
    members: dict[str, IntpArray | None],
    settings: Settings,
) -> dict[str, BootstrapResult]:
    """One moving-block bootstrap of the whole run; every stratum reads its share of it."""
    n = len(base_lat)
    if n == 0:
        return {}
    everyone = np.arange(n, dtype=np.intp)
    groups = {name: everyone if index is None else index for name, index in members.items()}
    groups = {name: index for name, index in groups.items() if len(index)}
    results = quantile_ratios_by_group(
        base_lat,
        cand_lat,
        list(groups.values()),
        settings.quantiles,
        block=_block(base_lat, cand_lat),
        resamples=settings.resamples,
        rng=np.random.default_rng(settings.seed),
        confidence=settings.confidence,
    )
    return dict(zip(groups, results, strict=True))


def _set_deltas(
    typical: Effect, quantiles: dict[float, Effect], base_lat: FloatArray, cand_lat: FloatArray
) -> None:
    """The absolute change beside each ratio, so +197% also reads as +15.4ms."""
    if not len(base_lat):
        return
    typical.delta_ns = float(np.median(cand_lat - base_lat))
    base_sorted, cand_sorted = np.sort(base_lat), np.sort(cand_lat)
    for q, effect in quantiles.items():
        effect.delta_ns = _stats.quantile(cand_sorted, q) - _stats.quantile(base_sorted, q)


def analyze_pair(join: Join, settings: Settings) -> PairAnalysis:
    """All statistics of CAND against BASE, stratum by stratum ("all" first)."""
    base_labels, cand_labels = _stratum_labels(join)
    pair_labels = base_labels[join.base_index]
    base_lat_all = join.base.latency[join.base_index]
    cand_lat_all = join.cand.latency[join.cand_index]
    base_ok = join.base.ok[join.base_index]
    cand_ok = join.cand.ok[join.cand_index]
    positive = (base_lat_all > 0) & (cand_lat_all > 0)
    both = base_ok & cand_ok
    excluded = int((both & ~positive).sum())
    names = ["all"]
    classes = sorted({label for label in pair_labels.tolist() if label != "?"})
    if len(classes) > 1:
        names += classes
    usable_all = both & positive
    members = {
        name: np.flatnonzero(pair_labels[usable_all] == name) if name != "all" else None
        for name in names
    }
    results = _bootstrap(base_lat_all[usable_all], cand_lat_all[usable_all], members, settings)
    strata = []
    for name in names:
        in_stratum = np.ones(join.pairs, bool) if name == "all" else pair_labels == name
        usable = in_stratum & usable_all
        base_lat, cand_lat = base_lat_all[usable], cand_lat_all[usable]
        ratios = np.log(cand_lat / base_lat)
        typical, wilcoxon = _typical(name, ratios, settings)
        result = results.get(name)
        quantiles = _tail_effects(name, len(ratios), result, settings)
        _set_deltas(typical, quantiles, base_lat, cand_lat)
        errors, counts = _errors(name, base_ok[in_stratum], cand_ok[in_stratum])
        base_unpaired = _measured_ok(join.base, base_labels, name)
        cand_unpaired = _measured_ok(join.cand, cand_labels, name)
        unpaired = Unpaired(
            _stats.quantile_ci(np.sort(base_unpaired), 0.5, settings.confidence),
            _stats.quantile_ci(np.sort(cand_unpaired), 0.5, settings.confidence),
            len(base_unpaired),
            len(cand_unpaired),
            _stats.mann_whitney(base_unpaired, cand_unpaired),
        )
        strata.append(
            Stratum(
                name=name,
                pairs=int(in_stratum.sum()),
                ok_pairs=int(usable.sum()),
                typical=typical,
                wilcoxon=wilcoxon,
                sign=_sign(ratios),
                quantiles=quantiles,
                errors=errors,
                error_counts=counts,
                unpaired=unpaired,
                base_quantiles=_quantile_cis(base_unpaired, settings.confidence),
                cand_quantiles=_quantile_cis(cand_unpaired, settings.confidence),
                block=result.block if result is not None else 0,
            )
        )
    return PairAnalysis(join, strata, excluded)


def apply_holm(analyses: list[PairAnalysis], settings: Settings) -> None:
    """Holm-correct each statistic across all strata and candidates, then decide verdicts."""
    families: dict[str, list[Effect]] = {}
    for analysis in analyses:
        for effect in analysis.effects():
            families.setdefault(effect.statistic, []).append(effect)
    for effects in families.values():
        ps = [effect.p for effect in effects]
        adjusted, levels = _stats.holm(ps), _stats.holm_levels(ps, settings.alpha)
        for effect, p, level in zip(effects, adjusted, levels, strict=True):
            effect.p_holm, effect.holm_alpha = p, level
    unpaired = [stratum.unpaired for analysis in analyses for stratum in analysis.strata]
    for summary, p in zip(unpaired, _stats.holm([u.test.p for u in unpaired]), strict=True):
        summary.p_holm = p
    for analysis in analyses:
        for effect in analysis.effects():
            effect.decide(settings)


def apply_noise(analysis: PairAnalysis, noise: PairAnalysis) -> None:
    """Set each effect's noise band from the same statistic of the A/A comparison."""
    bands: dict[tuple[str, str], Effect] = {
        (effect.stratum, effect.statistic): effect for effect in noise.effects()
    }
    for effect in analysis.effects():
        reference = bands.get((effect.stratum, effect.statistic))
        if reference is None or not reference.bounded:
            effect.warnings.append("the A/A replay gives no noise band for this statistic")
            continue
        effect.noise_band = max(abs(reference.estimate), abs(reference.lo), abs(reference.hi))


def geomean(analysis: PairAnalysis) -> tuple[float, list[str]]:
    """Geometric mean of the per-class typical ratios (benchstat semantics), as a log-ratio."""
    classes = analysis.strata[1:] or analysis.strata[:1]
    values = [s.typical.estimate for s in classes if math.isfinite(s.typical.estimate)]
    warnings = []
    if len(values) < len(classes):
        warnings.append("some classes have no paired successes; the geomean leaves them out")
    if not values:
        return math.nan, warnings
    return float(np.mean(values)), warnings
