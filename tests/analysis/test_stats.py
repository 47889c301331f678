"""Every statistic of the analyzer cross-checked against scipy (a test-only oracle)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp

from analyzer import _stats
from analyzer._bootstrap import (
    _resample_weights,
    _SortedSide,
    quantile_ratios,
    quantile_ratios_by_group,
)
from analyzer._dependence import block_length, dependence


@pytest.mark.parametrize("n", [1, 5, 6, 20, 100, 367, 368, 1000, 5000])
@pytest.mark.parametrize("q", [0.1, 0.5, 0.9, 0.99])
def test_quantile_ci_ranks_match_scipy_binomial(n: int, q: float) -> None:
    values = np.arange(1.0, n + 1.0)  # the value is its own 1-based rank
    interval = _stats.quantile_ci(values, q)
    cdf = sp.binom.cdf(np.arange(n + 1), n, q)
    lower = int(np.searchsorted(cdf, 0.025, side="right"))
    upper = int(np.searchsorted(cdf, 0.975, side="left")) + 1
    assert interval.lo == (lower if lower >= 1 else -math.inf)
    assert interval.hi == (upper if upper <= n else math.inf)
    assert interval.estimate == np.quantile(values, q, method="inverted_cdf")
    if interval.bounded:
        coverage = sp.binom.cdf(upper - 1, n, q) - sp.binom.cdf(lower - 1, n, q)
        assert coverage >= 0.95 - 1e-9


def test_min_n_for_quantile_ci() -> None:
    assert _stats.min_n_for_quantile_ci(0.5) == 6
    assert _stats.min_n_for_quantile_ci(0.99) == 368
    for q in (0.5, 0.9, 0.99):
        need = _stats.min_n_for_quantile_ci(q)
        assert _stats.quantile_ci(np.arange(float(need)), q).bounded
        assert not _stats.quantile_ci(np.arange(float(need - 1)), q).bounded


@given(st.lists(st.integers(-5, 5), min_size=1, max_size=40))
@settings(max_examples=50, deadline=None)
def test_rankdata_matches_scipy(values: list[int]) -> None:
    array = np.array(values, dtype=np.float64)
    ranks, ties = _stats.rankdata(array)
    np.testing.assert_allclose(ranks, sp.rankdata(array))
    assert ties.sum() == len(values)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [8, 30, 50])
def test_wilcoxon_exact_matches_scipy(seed: int, n: int) -> None:
    d = np.random.default_rng(seed).normal(0.3, 1.0, n)
    result = _stats.wilcoxon(d)
    assert result.method == "exact"
    expected = sp.wilcoxon(d, method="exact")
    assert result.p == pytest.approx(expected.pvalue, rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_wilcoxon_normal_with_ties_and_zeros_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = np.round(rng.normal(0.2, 1.0, 300), 1)  # rounding makes ties and zeros
    assert (d == 0).any()
    result = _stats.wilcoxon(d)
    expected = sp.wilcoxon(d, zero_method="wilcox", correction=False, method="approx")
    assert result.method == "normal"
    assert result.p == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.statistic == pytest.approx(((d[d != 0] > 0) * sp.rankdata(abs(d[d != 0]))).sum())


def _walsh(d: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(len(d))
    return np.sort((d[i] + d[j]) / 2.0)


@pytest.mark.parametrize("n", [6, 7, 25, 50, 51, 200])
def test_hodges_lehmann_is_the_median_of_walsh_averages(n: int) -> None:
    d = np.random.default_rng(n).standard_t(3, n)
    interval = _stats.hodges_lehmann(d)
    walsh = _walsh(d)
    assert interval.estimate == pytest.approx(np.median(walsh), abs=1e-12)
    assert interval.lo in walsh and interval.hi in walsh


@pytest.mark.parametrize("n", [10, 30, 50])
def test_hodges_lehmann_ci_inverts_scipy_wilcoxon(n: int) -> None:
    """Shifts just inside the CI are not rejected by scipy's exact test; just outside are."""
    d = np.random.default_rng(100 + n).normal(0.5, 1.0, n)
    interval = _stats.hodges_lehmann(d)
    walsh = np.unique(_walsh(d))
    for bound, step in ((interval.lo, -1), (interval.hi, 1)):
        position = int(np.searchsorted(walsh, bound))
        outside = (bound + walsh[position + step]) / 2.0
        inside = (bound + walsh[position - step]) / 2.0
        assert sp.wilcoxon(d - inside, method="exact").pvalue > 0.05
        assert sp.wilcoxon(d - outside, method="exact").pvalue <= 0.05


def test_hodges_lehmann_needs_six_values() -> None:
    assert not _stats.hodges_lehmann(np.array([1.0, 2.0, 3.0, 4.0, 5.0])).bounded
    assert _stats.hodges_lehmann(np.arange(1.0, 7.0)).bounded


@pytest.mark.parametrize(("positive", "negative"), [(0, 0), (3, 9), (10, 10), (40, 60), (0, 7)])
def test_sign_test_and_mcnemar_match_scipy_binomtest(positive: int, negative: int) -> None:
    d = np.array([1.0] * positive + [-1.0] * negative + [0.0] * 3)
    expected = (
        1.0 if positive + negative == 0 else sp.binomtest(positive, positive + negative).pvalue
    )
    assert _stats.sign_test(d).p == pytest.approx(expected, rel=1e-9)
    assert _stats.mcnemar(positive, negative).p == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("n1", "n2"), [(3, 4), (10, 12), (30, 50)])
def test_mann_whitney_exact_matches_scipy(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 * n2)
    x, y = rng.lognormal(0, 1, n1), rng.lognormal(0.4, 1, n2)
    result = _stats.mann_whitney(x, y)
    expected = sp.mannwhitneyu(y, x, method="exact")
    assert result.method == "exact"
    assert result.statistic == expected.statistic
    assert result.p == pytest.approx(expected.pvalue, rel=1e-9)


def test_mann_whitney_normal_with_ties_matches_scipy() -> None:
    rng = np.random.default_rng(7)
    x, y = np.round(rng.normal(0, 1, 400), 1), np.round(rng.normal(0.1, 1, 300), 1)
    result = _stats.mann_whitney(x, y)
    expected = sp.mannwhitneyu(y, x, method="asymptotic", use_continuity=True)
    assert result.method == "normal"
    assert result.p == pytest.approx(expected.pvalue, rel=1e-9)


def test_holm_adjustment() -> None:
    p = [0.01, 0.04, 0.03, 0.005, math.nan]
    adjusted = _stats.holm(p)
    # Sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.06, 0.04)=0.06
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted[4])


def test_student_t_matches_scipy() -> None:
    for df in (1, 3, 19, 200):
        for t in (0.1, 1.0, 2.5, 6.0):
            assert _stats.t_two_sided(t, df) == pytest.approx(2 * sp.t.sf(t, df), rel=1e-9)
        assert _stats.t_quantile(0.975, df) == pytest.approx(sp.t.ppf(0.975, df), rel=1e-9)
    assert _stats.t_quantile(0.975, 0) == pytest.approx(sp.norm.ppf(0.975), rel=1e-9)


def test_variance_inflation_sees_correlation() -> None:
    rng = np.random.default_rng(3)
    independent = rng.normal(size=4000)
    correlated = np.repeat(rng.normal(size=400), 10)  # runs of ten equal values
    assert dependence(independent).factor < 1.5
    assert dependence(correlated).factor > 5
    # Runs of ten make the long-run variance ten times the plain one; AR(1) errs high (safe).
    assert dependence(correlated).factor < 25
    assert dependence(correlated).df < 400


def test_dependence_matches_the_ar1_variance_factor() -> None:
    rng = np.random.default_rng(9)
    for rho in (0.5, 0.8):
        factors = []
        for _ in range(40):
            series = np.empty(3000)
            series[0] = rng.normal()
            shocks = rng.normal(0, math.sqrt(1 - rho * rho), 3000)
            for i in range(1, 3000):
                series[i] = rho * series[i - 1] + shocks[i]
            factors.append(dependence(series).factor)
        # AR(1): the variance of a long sum is (1 + rho) / (1 - rho) times the plain one.
        assert float(np.mean(factors)) == pytest.approx((1 + rho) / (1 - rho), rel=0.1)


def test_block_length_follows_the_autocorrelation() -> None:
    assert block_length(300, 0.0) == math.ceil(300 ** (1 / 3))
    assert block_length(300, 0.5) > block_length(300, 0.0)
    assert block_length(300, 0.8) > block_length(300, 0.5)
    assert block_length(300, 0.95) == 15  # at least 20 blocks


def test_weighted_quantiles_match_numpy_on_repeated_values() -> None:
    rng = np.random.default_rng(11)
    values = rng.lognormal(0, 1, 700)
    weights = np.zeros((5, 701), dtype=np.int32)
    weights[:, :700] = rng.integers(0, 4, size=(5, 700))
    qs = np.array([0.1, 0.5, 0.9, 0.99])
    side = _SortedSide(values, np.arange(700), 700)
    for row in range(5):
        got = side.quantiles(np.ascontiguousarray(weights[row : row + 1].T), qs)[0]
        expanded = np.repeat(values, weights[row, :700])
        np.testing.assert_array_equal(got, np.quantile(expanded, qs, method="inverted_cdf"))


def test_bootstrap_estimate_and_interval() -> None:
    rng = np.random.default_rng(5)
    base = rng.lognormal(0, 0.5, 3000)
    cand = base * 1.1 * rng.lognormal(0, 0.02, 3000)
    result = quantile_ratios(base, cand, (0.5, 0.9), block=20, resamples=400, rng=rng)
    for index, q in enumerate((0.5, 0.9)):
        expected = np.log(
            np.quantile(cand, q, method="inverted_cdf")
            / np.quantile(base, q, method="inverted_cdf")
        )
        assert result.log_ratio[index] == pytest.approx(expected)
        assert result.lo[index] < math.log(1.1) < result.hi[index]
        assert result.p[index] < 0.01


def test_bootstrap_groups_read_their_share_of_each_resample() -> None:
    rng = np.random.default_rng(8)
    base = rng.lognormal(0, 0.5, 2000)
    cand = base * np.where(np.arange(2000) % 2, 1.2, 1.0)  # odd requests 20% slower
    odd, even = np.arange(1, 2000, 2), np.arange(0, 2000, 2)
    results = quantile_ratios_by_group(
        base, cand, [odd, even], (0.5,), block=10, resamples=300, rng=rng
    )
    assert results[0].log_ratio[0] == pytest.approx(math.log(1.2))
    assert results[0].lo[0] == pytest.approx(math.log(1.2))  # every resample sees exactly +20%
    assert results[1].log_ratio[0] == 0.0 and results[1].hi[0] == 0.0


@pytest.mark.parametrize(("n", "block"), [(50, 1), (50, 7), (101, 10), (30, 30)])
def test_resample_weights_count_circular_blocks(n: int, block: int) -> None:
    blocks = max(1, round(n / block))
    weights = _resample_weights(np.random.default_rng(4), 3, n, block, blocks)
    starts = np.random.default_rng(4).integers(0, n, size=(3, blocks))
    for row in range(3):
        expected = np.zeros(n + 1, dtype=np.int64)
        for start in starts[row]:
            expected[(start + np.arange(block)) % n] += 1
        np.testing.assert_array_equal(weights[:, row], expected)


def test_sign_test_widens_for_runs_of_equal_signs() -> None:
    rng = np.random.default_rng(12)
    signs = np.repeat(np.where(rng.random(40) < 0.7, 1.0, -1.0), 10)  # runs of ten
    serial = dependence(signs)
    plain, widened = _stats.sign_test(signs), _stats.sign_test(signs, serial.factor, serial.df)
    assert plain.p < 0.001 and widened.p > 10 * plain.p
    assert widened.statistic == plain.statistic and "serial correlation" in widened.method
    assert _stats.sign_test(signs, 1.0, 0) == plain


def test_short_independent_runs_are_not_widened_on_noise() -> None:
    # 33 independent values estimate the lag-1 correlation with a standard error of 0.17; the
    # shrinkage keeps that noise from widening, while real AR(1) 0.5 keeps most of its factor.
    rng = np.random.default_rng(12)
    independent = [dependence(rng.normal(size=33)).factor for _ in range(300)]
    assert float(np.mean(independent)) < 1.15
    assert float(np.median(independent)) == pytest.approx(1.0)
    correlated = []
    for _ in range(300):
        series = np.empty(33)
        series[0] = rng.normal()
        for i in range(1, 33):
            series[i] = 0.5 * series[i - 1] + rng.normal(0, math.sqrt(0.75))
        correlated.append(dependence(series).factor)
    assert 2.0 < float(np.mean(correlated)) < 4.0
