"""Distribution-free statistics on numpy arrays (no scipy at run time).

Conventions: every two-sided p-value is capped at 1; quantiles use the inverted-CDF definition
(the smallest value with at least a fraction q of the sample at or below it), so a point
estimate is always one of the observations and sits inside its order-statistic interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

import traces

from ._distributions import t_quantile, t_two_sided

__all__ = [
    "Interval",
    "TestResult",
    "binom_cdf",
    "hodges_lehmann",
    "holm",
    "holm_levels",
    "mann_whitney",
    "mcnemar",
    "min_n_for_quantile_ci",
    "quantile",
    "quantile_ci",
    "rankdata",
    "sign_test",
    "signed_ranks",
    "t_quantile",
    "t_two_sided",
    "wilcoxon",
]

FloatArray = npt.NDArray[np.float64]

# Below these sizes the exact null distributions are cheap; above them the normal approximation
# is accurate to well under the precision anyone reads a p-value with.
EXACT_WILCOXON_MAX_N = 50
EXACT_MANN_WHITNEY_MAX_N = 50


@dataclass(frozen=True)
class TestResult:
    """A test's statistic, two-sided p-value, and which null distribution gave it."""

    statistic: float
    p: float
    method: str
    n: int


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval; an unbounded side is ±inf."""

    estimate: float
    lo: float
    hi: float

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)


# -- binomial -------------------------------------------------------------------------------


def _binom_pmf(n: int, p: float) -> FloatArray:
    """P(B = k) for k = 0..n, computed in log space so large n neither under- nor overflows."""
    if p <= 0.0 or p >= 1.0:
        pmf = np.zeros(n + 1)
        pmf[0 if p <= 0.0 else n] = 1.0
        return pmf
    k = np.arange(n, dtype=np.float64)
    steps = np.log((n - k) / (k + 1.0)) + (math.log(p) - math.log1p(-p))
    log_pmf = np.empty(n + 1)
    log_pmf[0] = n * math.log1p(-p)
    log_pmf[1:] = log_pmf[0] + np.cumsum(steps)
    pmf = np.exp(log_pmf - log_pmf.max())
    result: FloatArray = pmf / pmf.sum()
    return result


def binom_cdf(n: int, p: float) -> FloatArray:
    """P(B <= k) for k = 0..n with B ~ Binomial(n, p)."""
    return np.cumsum(_binom_pmf(n, p))


def _binom_two_sided(k: int, n: int) -> float:
    """Exact two-sided p of k successes in n fair trials (the sign-test null)."""
    if n == 0:
        return 1.0
    pmf = _binom_pmf(n, 0.5)
    low = float(pmf[: min(k, n - k) + 1].sum())
    return min(1.0, 2.0 * low)


# -- quantiles ------------------------------------------------------------------------------


def quantile(sorted_x: FloatArray, q: float) -> float:
    """The inverted-CDF q-quantile of an ascending array (`traces.quantile`, shared by all)."""
    return traces.quantile(sorted_x, q)


def quantile_ci(sorted_x: FloatArray, q: float, confidence: float = 0.95) -> Interval:
    """Distribution-free CI of the q-quantile from order statistics.

    The number of observations below the true quantile is Binomial(n, q); the interval
    [x_(l), x_(u)] takes the widest l and narrowest u that keep at most (1 - confidence)/2
    probability in each tail, so its coverage is at least `confidence`. A side that needs an
    order statistic beyond the sample is infinite (too few observations).
    """
    n = len(sorted_x)
    estimate = quantile(sorted_x, q)
    if n == 0:
        return Interval(math.nan, -math.inf, math.inf)
    tail = (1.0 - confidence) / 2.0
    cdf = binom_cdf(n, q)
    lower_rank = int(np.searchsorted(cdf, tail, side="right"))  # 1-based rank l
    upper_rank = int(np.searchsorted(cdf, 1.0 - tail, side="left")) + 1  # 1-based rank u
    lo = float(sorted_x[lower_rank - 1]) if lower_rank >= 1 else -math.inf
    hi = float(sorted_x[upper_rank - 1]) if upper_rank <= n else math.inf
    return Interval(estimate, lo, hi)


def min_n_for_quantile_ci(q: float, confidence: float = 0.95) -> int:
    """The smallest sample whose order statistics give a two-sided CI of the q-quantile."""
    tail = (1.0 - confidence) / 2.0
    need = max(math.log(tail) / math.log1p(-q), math.log(tail) / math.log(q))
    n = max(1, math.floor(need))
    while (1.0 - q) ** n > tail or q**n > tail:
        n += 1
    return n


# -- ranks ----------------------------------------------------------------------------------


def rankdata(values: FloatArray) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Average ranks (1-based, ties share their mean rank) and the sizes of the tie groups."""
    n = len(values)
    if n == 0:
        return np.empty(0), np.empty(0, dtype=np.int64)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new_group = np.r_[True, ordered[1:] != ordered[:-1]]
    bounds = np.r_[np.flatnonzero(new_group), n]
    mean_rank = (bounds[:-1] + 1 + bounds[1:]) / 2.0
    ranks = np.empty(n)
    ranks[order] = mean_rank[np.cumsum(new_group) - 1]
    return ranks, np.diff(bounds).astype(np.int64)


def _tie_term(tie_sizes: npt.NDArray[np.int64]) -> float:
    t = tie_sizes.astype(np.float64)
    return float((t**3 - t).sum())


# -- Wilcoxon signed-rank and Hodges-Lehmann -----------------------------------------------


def _signed_rank_counts(n: int) -> FloatArray:
    """Number of sign patterns giving each T+ = 0..n(n+1)/2 (the exact null, no ties)."""
    top = n * (n + 1) // 2
    counts = np.zeros(top + 1)
    counts[0] = 1.0
    for rank in range(1, n + 1):
        counts[rank:] = counts[rank:] + counts[:-rank].copy()
    return counts


def signed_ranks(differences: FloatArray) -> FloatArray:
    """sign(d) * rank(|d|) over the non-zero differences, in input order (zeros give 0)."""
    result = np.zeros(len(differences))
    nonzero = differences != 0.0
    ranks, _ = rankdata(np.abs(differences[nonzero]))
    result[nonzero] = np.sign(differences[nonzero]) * ranks
    return result


def wilcoxon(differences: FloatArray, inflation: float = 1.0, df: int = 0) -> TestResult:
    """Wilcoxon signed-rank test of symmetry about 0, two-sided.

    Zero differences are dropped (Wilcoxon's method). Exact null for n <= 50 without ties,
    else the normal approximation with the tie-corrected variance (no continuity correction).
    `inflation` > 1 widens the null variance for serially correlated differences (see
    `analyzer._dependence`); the normal approximation, or Student's t with `df` degrees of
    freedom when df > 0, is then used.
    """
    d = differences[differences != 0.0]
    n = len(d)
    if n == 0:
        return TestResult(0.0, 1.0, "none", 0)
    ranks, ties = rankdata(np.abs(d))
    t_plus = float(ranks[d > 0].sum())
    if n <= EXACT_WILCOXON_MAX_N and bool((ties == 1).all()) and inflation <= 1.0 and not df:
        counts = _signed_rank_counts(n)
        total = counts.sum()
        k = round(t_plus)
        low = float(counts[: k + 1].sum() / total)
        high = float(counts[k:].sum() / total)
        return TestResult(t_plus, min(1.0, 2.0 * min(low, high)), "exact", n)
    mean = n * (n + 1) / 4.0
    var = (n * (n + 1) * (2 * n + 1) / 24.0 - _tie_term(ties) / 48.0) * max(1.0, inflation)
    method = "normal" if not df else f"serial correlation: variance x{inflation:.2f}, t({df})"
    if var <= 0:
        return TestResult(t_plus, 1.0, method, n)
    return TestResult(t_plus, t_two_sided((t_plus - mean) / math.sqrt(var), df), method, n)


def _walsh_count_le(sorted_d: FloatArray, thresholds: FloatArray) -> npt.NDArray[np.int64]:
    """For each threshold t, how many Walsh averages (d_i + d_j)/2, i <= j, are <= t."""
    n = len(sorted_d)
    index = np.arange(n)
    counts = np.empty(len(thresholds), dtype=np.int64)
    for position, t in enumerate(thresholds):
        j = np.searchsorted(sorted_d, 2.0 * t - sorted_d, side="right")
        counts[position] = int(np.maximum(j - index, 0).sum())
    return counts


def _walsh_between(sorted_d: FloatArray, lo: float, hi: float) -> FloatArray:
    """Every Walsh average w with lo < w <= hi (i <= j), in no particular order."""
    n = len(sorted_d)
    index = np.arange(n)
    first = np.maximum(np.searchsorted(sorted_d, 2.0 * lo - sorted_d, side="right"), index)
    last = np.searchsorted(sorted_d, 2.0 * hi - sorted_d, side="right")
    lengths = np.maximum(last - first, 0)
    rows = np.repeat(index, lengths)
    # Column of each element: its row's first j plus its position within the row.
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    columns = np.repeat(first, lengths) + offsets
    result: FloatArray = (sorted_d[rows] + sorted_d[columns]) / 2.0
    return result


def _walsh_max_at_most(sorted_d: FloatArray, top: float) -> float:
    """The largest Walsh average at or below `top`."""
    j = np.searchsorted(sorted_d, 2.0 * top - sorted_d, side="right") - 1
    valid = j >= np.arange(len(sorted_d))
    return float(((sorted_d[valid] + sorted_d[j[valid]]) / 2.0).max())


def _walsh_kth(sorted_d: FloatArray, ranks: list[int]) -> list[float]:
    """The k-th smallest Walsh averages (1-based ranks) without forming all n(n+1)/2 of them.

    Bisection on the value, with an O(n log n) count per step, until the bracket holds few
    Walsh averages; those few are then listed and the wanted one selected exactly.
    """
    n = len(sorted_d)
    span = max(float(sorted_d[-1] - sorted_d[0]), abs(float(sorted_d[0])), 1e-300)
    # Count at lo must stay below k: start just under the smallest average.
    lo = np.full(len(ranks), float(sorted_d[0]) - span * 1e-9 - 1e-300)
    hi = np.full(len(ranks), float(sorted_d[-1]))
    target = np.array(ranks, dtype=np.int64)
    count_lo = np.zeros(len(ranks), dtype=np.int64)
    count_hi = np.full(len(ranks), n * (n + 1) // 2, dtype=np.int64)
    few = max(4 * n, 4096)
    for _ in range(200):
        if bool(np.all((count_hi - count_lo <= few) | (hi - lo <= span * 1e-13))):
            break
        mid = (lo + hi) / 2.0
        counts = _walsh_count_le(sorted_d, mid)
        enough = counts >= target
        hi, count_hi = np.where(enough, mid, hi), np.where(enough, counts, count_hi)
        lo, count_lo = np.where(enough, lo, mid), np.where(enough, count_lo, counts)
    results = []
    for position in range(len(ranks)):
        if count_hi[position] - count_lo[position] > few:
            # Ties: the bracket shrank to one value shared by many averages; that is the answer.
            results.append(_walsh_max_at_most(sorted_d, float(hi[position])))
            continue
        between = _walsh_between(sorted_d, float(lo[position]), float(hi[position]))
        wanted = int(target[position] - count_lo[position]) - 1
        wanted = min(max(wanted, 0), len(between) - 1)
        results.append(float(np.partition(between, wanted)[wanted]))
    return results


def _signed_rank_critical(n: int, confidence: float, inflation: float = 1.0, df: int = 0) -> int:
    """The rank k such that [W_(k), W_(M+1-k)] is the Wilcoxon-inverted CI; 0 if none exists."""
    tail = (1.0 - confidence) / 2.0
    if n <= EXACT_WILCOXON_MAX_N and inflation <= 1.0 and not df:
        counts = _signed_rank_counts(n)
        cdf = np.cumsum(counts) / counts.sum()
        return int(np.searchsorted(cdf, tail, side="right"))
    mean = n * (n + 1) / 4.0
    sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0 * max(1.0, inflation))
    return max(0, math.floor(mean - t_quantile(1.0 - tail, df) * sd))


def hodges_lehmann(
    differences: FloatArray, confidence: float = 0.95, inflation: float = 1.0, df: int = 0
) -> Interval:
    """Hodges–Lehmann pseudo-median of paired differences with the Wilcoxon-inverted CI.

    The estimate is the median of all Walsh averages; the CI bounds are the k-th smallest and
    k-th largest of them, with k from the signed-rank null (exact for n <= 50; `inflation`
    widens it for correlated differences). Fewer than 6 differences cannot give a 95%
    interval: the bounds are then infinite.
    """
    d = np.sort(np.asarray(differences, dtype=np.float64))
    n = len(d)
    if n == 0:
        return Interval(math.nan, -math.inf, math.inf)
    m = n * (n + 1) // 2
    k = _signed_rank_critical(n, confidence, inflation, df)
    middle = [(m + 1) // 2, m // 2 + 1]
    wanted = middle + ([k, m + 1 - k] if k >= 1 else [])
    values = _walsh_kth(d, wanted)
    estimate = (values[0] + values[1]) / 2.0
    if k < 1:
        return Interval(estimate, -math.inf, math.inf)
    return Interval(estimate, values[2], values[3])


def sign_test(differences: FloatArray, inflation: float = 1.0, df: int = 0) -> TestResult:
    """Two-sided sign test of a zero median (zeros dropped): exact, or widened.

    With `inflation` > 1 (serially correlated signs) the binomial variance is widened and
    the normal approximation, or Student's t with `df` degrees of freedom, gives p.
    """
    positive = int((differences > 0).sum())
    negative = int((differences < 0).sum())
    n = positive + negative
    if inflation <= 1.0 or n == 0:
        return TestResult(float(positive), _binom_two_sided(positive, n), "exact", n)
    z = (positive - n / 2.0) / math.sqrt(n / 4.0 * inflation)
    method = f"serial correlation: variance x{inflation:.2f}, t({df})"
    return TestResult(float(positive), t_two_sided(z, df), method, n)


def mcnemar(only_first_failed: int, only_second_failed: int) -> TestResult:
    """Exact McNemar test on the discordant pairs of a paired success/failure table."""
    n = only_first_failed + only_second_failed
    p = _binom_two_sided(only_first_failed, n)
    return TestResult(float(only_second_failed - only_first_failed), p, "exact", n)


# -- Mann-Whitney U ---------------------------------------------------------------------------


def _mann_whitney_counts(n1: int, n2: int) -> FloatArray:
    """Number of orderings giving each U = 0..n1*n2 (the exact null, no ties)."""
    # table[j] holds the distribution for (i, j) while i grows; f(i,j,u) = f(i-1,j,u-j) + f(i,j-1,u)
    size = n1 * n2 + 1
    previous = [np.zeros(size) for _ in range(n2 + 1)]
    for j in range(n2 + 1):
        previous[j][0] = 1.0
    for _ in range(1, n1 + 1):
        current = [np.zeros(size) for _ in range(n2 + 1)]
        current[0][0] = 1.0
        for j in range(1, n2 + 1):
            current[j] = current[j - 1].copy()
            current[j][j:] += previous[j][: size - j]
        previous = current
    return previous[n2]


def mann_whitney(first: FloatArray, second: FloatArray) -> TestResult:
    """Mann–Whitney U test, two-sided; `statistic` is U of `second` (larger = second slower).

    Exact null when both samples have at most 50 values and there are no ties; otherwise the
    normal approximation with tie-corrected variance and a continuity correction.
    """
    n1, n2 = len(first), len(second)
    if n1 == 0 or n2 == 0:
        return TestResult(math.nan, 1.0, "none", n1 + n2)
    ranks, ties = rankdata(np.concatenate([first, second]))
    u2 = float(ranks[n1:].sum()) - n2 * (n2 + 1) / 2.0
    big = max(u2, n1 * n2 - u2)
    if max(n1, n2) <= EXACT_MANN_WHITNEY_MAX_N and bool((ties == 1).all()):
        counts = _mann_whitney_counts(n1, n2)
        p = float(counts[round(big) :].sum() / counts.sum())
        return TestResult(u2, min(1.0, 2.0 * p), "exact", n1 + n2)
    n = n1 + n2
    var = n1 * n2 / 12.0 * ((n + 1) - _tie_term(ties) / (n * (n - 1)))
    if var <= 0:
        return TestResult(u2, 1.0, "normal", n)
    z = (big - n1 * n2 / 2.0 - 0.5) / math.sqrt(var)
    return TestResult(u2, min(1.0, math.erfc(z / math.sqrt(2.0))), "normal", n)


# -- multiple testing -----------------------------------------------------------------------


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order (NaN entries are left out)."""
    indexed = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    indexed.sort()
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for position, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - position) * p))
        adjusted[i] = running
    return adjusted


def holm_levels(p_values: list[float], alpha: float) -> list[float]:
    """The level Holm's step-down tests each hypothesis at: alpha / (m - i) for the i-th
    smallest p (0-based), in the input order; NaN entries get NaN and do not count in m."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    levels = [math.nan] * len(p_values)
    for position, (_, i) in enumerate(indexed):
        levels[i] = alpha / (len(indexed) - position)
    return levels
