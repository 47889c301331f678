"""The normal and Student-t distributions: two-sided p-values and quantiles (no scipy)."""

from __future__ import annotations

import math

__all__ = ["normal_quantile", "normal_two_sided", "t_quantile", "t_two_sided"]


def normal_two_sided(z: float) -> float:
    return min(1.0, math.erfc(abs(z) / math.sqrt(2.0)))


def normal_quantile(p: float) -> float:
    """Inverse standard normal CDF (Acklam's rational approximation, refined by Newton)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)  # fmt: skip
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
         3.754408661907416e00)  # fmt: skip
    if p < 0.02425:
        r = math.sqrt(-2 * math.log(p))
        x = (((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) / (
            (((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1
        )
    elif p > 1 - 0.02425:
        return -normal_quantile(1 - p)
    else:
        r = (p - 0.5) ** 2
        x = (
            (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
            * (p - 0.5)
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
        )
    for _ in range(2):
        error = 0.5 * math.erfc(-x / math.sqrt(2.0)) - p
        x -= error * math.sqrt(2 * math.pi) * math.exp(x * x / 2)
    return x


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) by Lentz's continued fraction."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _incomplete_beta(b, a, 1.0 - x)
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
        + a * math.log(x) + b * math.log1p(-x)
    )  # fmt: skip
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * fraction / a


def t_two_sided(t: float, df: int) -> float:
    """Two-sided p-value of Student's t with `df` degrees of freedom (df 0 means normal)."""
    if df <= 0:
        return normal_two_sided(t)
    return min(1.0, _incomplete_beta(df / 2.0, 0.5, df / (df + t * t)))


def t_quantile(p: float, df: int) -> float:
    """The p-quantile (p > 0.5) of Student's t: Newton steps on `t_two_sided`, kept inside a
    bisection bracket so that heavy tails (df 1) cannot throw a step out."""
    if df <= 0:
        return normal_quantile(p)
    target = 2.0 * (1.0 - p)
    lo, hi = 0.0, 1.0
    while t_two_sided(hi, df) > target:
        lo, hi = hi, hi * 2.0
    log_density = math.lgamma((df + 1) / 2.0) - math.lgamma(df / 2.0) - 0.5 * math.log(df * math.pi)
    t = min(max(normal_quantile(p), lo), hi)
    for _ in range(60):
        error = t_two_sided(t, df) - target
        if error > 0:
            lo = t
        else:
            hi = t
        if abs(error) <= 1e-15 * target or hi - lo <= 1e-14 * hi:
            break
        density = math.exp(log_density - (df + 1) / 2.0 * math.log1p(t * t / df))
        step = t + error / (2.0 * density)
        t = step if lo < step < hi else (lo + hi) / 2.0
    return t
