"""Known truth: simulated runs with planted shifts (none, 5% everywhere, 20% in the tail)."""

from __future__ import annotations

import math

import numpy as np
from analyzer_runs import rows_from, simulate_pairs

from analyzer._compare import PairAnalysis, Settings, analyze_pair, apply_holm
from analyzer._load import join_rows

ALPHA = 0.05
# Over 150 seeds the binomial standard error of a 5% rate is 1.8 points; allow about 2.5 of them.
TOLERANCE = 0.045


def analyze(base: np.ndarray, cand: np.ndarray, resamples: int = 300) -> PairAnalysis:
    settings = Settings(resamples=resamples)
    analysis = analyze_pair(join_rows(rows_from(base, "a"), rows_from(cand, "b")), settings)
    apply_holm([analysis], settings)
    return analysis


def test_aa_false_positive_rate_stays_within_alpha() -> None:
    seeds = 150
    typical = p50 = p99 = verdicts = 0
    for seed in range(seeds):
        base, cand = simulate_pairs(400, seed)
        strat = analyze(base, cand).all
        typical += strat.typical.significant
        p50 += strat.quantiles[0.5].significant
        p99 += strat.quantiles[0.99].significant
        verdicts += strat.typical.verdict in ("slower", "faster")
    assert typical / seeds <= ALPHA + TOLERANCE
    assert p50 / seeds <= ALPHA + TOLERANCE
    assert p99 / seeds <= ALPHA + TOLERANCE
    assert verdicts / seeds <= ALPHA
    # Not vacuous: the paired test does reject sometimes under the null.
    assert typical > 0


def test_five_percent_shift_at_the_median_is_found() -> None:
    seeds = 20
    found = covered = 0
    for seed in range(seeds):
        base, cand = simulate_pairs(400, 1000 + seed, shift=0.05)
        strat = analyze(base, cand).all
        found += strat.typical.verdict == "slower" and strat.quantiles[0.5].significant
        covered += strat.typical.lo <= math.log(1.05) <= strat.typical.hi
    assert found >= 0.9 * seeds
    assert covered >= 0.85 * seeds


def test_twenty_percent_only_in_the_tail_is_found_in_the_tail_only() -> None:
    seeds = 8
    tail_found = body_flagged = 0
    for seed in range(seeds):
        base, cand = simulate_pairs(1500, 2000 + seed, tail_shift=0.20, tail_share=0.1)
        strat = analyze(base, cand).all
        p99 = strat.quantiles[0.99]
        tail_found += p99.significant and p99.lo > 0 and abs(math.expm1(p99.estimate) - 0.2) < 0.1
        body_flagged += any(strat.quantiles[q].significant for q in (0.1, 0.2, 0.3, 0.4, 0.5))
        # Most requests did not change, so the typical per-request change stays small.
        assert abs(math.expm1(strat.typical.estimate)) < 0.05
    assert tail_found >= seeds - 1
    assert body_flagged <= 1
