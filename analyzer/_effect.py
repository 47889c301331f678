"""One statistic's effect (estimate, CI, test) and the rules that turn it into a verdict.

A latency effect is a log-ratio ln(CAND / BASE); an error effect a difference in failure rate.
A change is significant by one procedure: the effect's interval at the level Holm's step-down
tests it at (1 - alpha / (m - i + 1) for the i-th smallest of m p-values) excludes zero, and
its Holm-corrected p is below alpha; the two are the same test inverted, so they agree. `~`
promises that nothing that matters changed, so it needs the interval inside the
equivalence band and that band no wider than the change that matters (`--min-effect`, or the
rule's threshold); otherwise the verdict is `inconclusive`, with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from traces import UsageError

__all__ = ["DECILES", "REPORTED", "Effect", "Settings", "quantile_name"]

DECILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
REPORTED = (0.5, 0.9, 0.99)


@dataclass(frozen=True)
class Settings:
    """Knobs of the analysis (command-line flags)."""

    alpha: float = 0.05
    confidence: float = 0.95
    min_effect: float = 0.02
    resamples: int = 2000
    seed: int = 1
    extra_quantiles: tuple[float, ...] = ()
    equivalence: tuple[tuple[str, float], ...] = ()
    """(statistic, threshold) pairs from `--fail-on` rules: the widest band within which that
    statistic may be called unchanged (`~`), instead of `min_effect`."""

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise UsageError("--alpha must be between 0 and 0.5, e.g. 0.05")
        if not 0.0 < self.confidence < 1.0:
            raise UsageError(f"confidence {self.confidence:g}: give a level between 0 and 1")
        if not 0.0 <= self.min_effect < 1.0:
            raise UsageError(f"min_effect {self.min_effect:g}: give a fraction from 0 to 1")
        if self.resamples < 100:
            raise UsageError("--resamples must be at least 100 (2000 is the default)")

    @property
    def quantiles(self) -> tuple[float, ...]:
        return tuple(sorted({*DECILES, *REPORTED, *self.extra_quantiles}))


def quantile_name(q: float) -> str:
    """0.5 -> "p50", 0.999 -> "p99.9"."""
    return f"p{q * 100:g}"


@dataclass
class Effect:
    """One statistic of one stratum: an estimate with its CI, test, correction and verdict."""

    stratum: str
    statistic: str
    n: int
    estimate: float
    lo: float
    hi: float
    p: float
    method: str
    kind: str = "log_ratio"
    """log_ratio (latency: ln CAND/BASE) or rate_difference (errors: CAND - BASE rate)."""
    p_holm: float = math.nan
    noise_band: float = 0.0
    verdict: str = "inconclusive"
    significant: bool = False
    """The CI excludes no change and the Holm-corrected p is below alpha (set by `decide`)."""
    warnings: list[str] = field(default_factory=list)
    variance_factor: float = 1.0
    """How much serial correlation in send order widened the interval's variance (>= 1)."""
    reason: str = ""
    """Why the verdict is inconclusive, for people: "noise ±48%", "CI exceeds ±2.0%",
    "p (Holm) 0.076"."""
    holm_alpha: float = math.nan
    """The level Holm's step-down tests this effect at (alpha when there is one test)."""
    interval_at: Callable[[float], tuple[float, float]] | None = field(
        default=None, repr=False, compare=False
    )
    """The same interval at another confidence level; None: only the reported one exists."""
    decision_lo: float = -math.inf
    decision_hi: float = math.inf
    """The interval at the Holm level (1 - holm_alpha), which decides significance."""
    delta_ns: float = math.nan
    """The change in ns beside the ratio: the median paired difference CAND - BASE for the
    typical change, the difference of the quantiles for a quantile's ratio; NaN for errors."""

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    @property
    def verdict_text(self) -> str:
        """The verdict with its reason: "inconclusive (noise ±48%)"."""
        return f"{self.verdict} ({self.reason})" if self.reason else self.verdict

    def band(self, settings: Settings) -> float:
        """The smallest effect that counts: the minimum effect or the A/A noise band."""
        floor = math.log1p(settings.min_effect) if self.kind == "log_ratio" else 0.0
        return max(floor, self.noise_band)

    def tolerance(self, settings: Settings) -> float:
        """The widest band that may still be called no change: a rule's threshold or the
        minimum effect. A wider A/A band means the setup cannot tell; the verdict says so."""
        for statistic, threshold in settings.equivalence:
            if statistic == self.statistic:
                return math.log1p(threshold)
        return math.log1p(settings.min_effect)

    def _holm_level(self, settings: Settings) -> float:
        return self.holm_alpha if not math.isnan(self.holm_alpha) else settings.alpha

    def _decision_interval(self, settings: Settings) -> tuple[float, float]:
        if self.interval_at is None or not self.bounded:
            return self.lo, self.hi
        return self.interval_at(1.0 - self._holm_level(settings))

    def decide(self, settings: Settings) -> None:
        p = self.p_holm if not math.isnan(self.p_holm) else self.p
        self.decision_lo, self.decision_hi = self._decision_interval(settings)
        lo, hi = self.decision_lo, self.decision_hi
        excludes_zero = self.bounded and (lo > 0 or hi < 0)
        self.significant = excludes_zero and not math.isnan(p) and p < settings.alpha
        threshold = self.band(settings)
        self.reason = ""
        if not self.bounded:
            self.verdict = "inconclusive"
            self.reason = _too_few(self.n, self.variance_factor)
        elif self.significant and abs(self.estimate) > threshold:
            if self.kind == "log_ratio":
                self.verdict = "slower" if self.estimate > 0 else "faster"
            else:
                self.verdict = "more errors" if self.estimate > 0 else "fewer errors"
        elif self.kind == "rate_difference":
            # Failures are rare; no significant change in them is all a user can act on.
            inside = -threshold <= self.lo and self.hi <= threshold
            self.verdict = "~" if inside or not self.significant else "inconclusive"
        elif self.noise_band > self.tolerance(settings) * (1.0 + 1e-9):
            self.verdict = "inconclusive"
            self.reason = f"noise ±{_band_percent(self.noise_band)}"
        elif -threshold <= self.lo and self.hi <= threshold:
            self.verdict = "~"
        else:
            self.verdict = "inconclusive"
            self.reason = self._why_not(p, threshold, settings)

    def _why_not(self, p: float, threshold: float, settings: Settings) -> str:
        """The true reason a change neither counts nor is ruled out."""
        if self.significant or not (self.lo > 0 or self.hi < 0):
            # Within the band but not inside it, or no change ruled out: the interval is wide.
            return f"CI exceeds ±{_band_percent(threshold)}"
        if p >= settings.alpha:
            # The interval excludes zero, but not once corrected for the other tests.
            return f"p (Holm) {p:.2g}"
        return f"{(1.0 - self._holm_level(settings)) * 100:.1f}% CI (Holm) includes 0"

    def to_json(self) -> dict[str, object]:
        def num(value: float) -> float | None:
            return value if math.isfinite(value) else None

        ratio = self.kind == "log_ratio"
        return {
            "stratum": self.stratum,
            "statistic": self.statistic,
            "kind": self.kind,
            "n": self.n,
            "estimate": num(math.expm1(self.estimate) if ratio else self.estimate),
            "ci": [
                num(math.expm1(self.lo) if ratio else self.lo),
                num(math.expm1(self.hi) if ratio else self.hi),
            ],
            "log_ratio": num(self.estimate) if ratio else None,
            "delta_ms": num(self.delta_ns / 1e6),
            "p": num(self.p),
            "p_holm": num(self.p_holm),
            "method": self.method,
            "noise_band": num(math.expm1(self.noise_band) if ratio else self.noise_band),
            "verdict": self.verdict,
            "verdict_text": self.verdict_text,
            "ci_holm": [
                num(math.expm1(self.decision_lo) if ratio else self.decision_lo),
                num(math.expm1(self.decision_hi) if ratio else self.decision_hi),
            ],
            "holm_alpha": num(self.holm_alpha),
            "variance_factor": self.variance_factor,
            "significant": self.significant,
            "warnings": self.warnings,
        }


def _too_few(n: int, variance_factor: float) -> str:
    if not n:
        return ""
    if variance_factor > 1.0:
        # Enough pairs, but so correlated that they carry the information of very few.
        return f"too few effective pairs: {n / variance_factor:.0f} of {n}"
    return "too few pairs"


def _band_percent(log_band: float) -> str:
    """A band for people: 48% and 587% whole, 2.0% with one decimal."""
    percent = math.expm1(log_band) * 100.0
    return f"{percent:.0f}%" if percent >= 10.0 else f"{percent:.1f}%"
