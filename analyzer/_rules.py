"""`--fail-on` rules: which regressions make `imgtrace compare` exit with code 1.

Grammar: comma-separated rules, each `METRIC:+NUMBER[%]`:

- `p50`, `median`, `p90`, `p99`, `p99.9`, any `pNN`: the ratio of that quantile (CAND/BASE);
- `typical`: the paired Hodges–Lehmann per-request change;
- `errors:+1%`: the failure rate rises by more than 1 percentage point (`errors:+5` without a
  percent sign: more than 5 additional failed requests);
- `images:VERDICT OP NUMBER[%]` (e.g. `images:changed>5%`, `images:missing>0`): handed to the
  image report, which counts requests per image verdict.

A latency rule is violated in a stratum when the change there is significant (its interval at
the Holm level excludes no change) and its whole 95% CI lies beyond the rule and the A/A band:
a point estimate over the threshold is not enough, so a true +3% change does not break
`median:+5%` by chance. An error rule likewise needs the rise in failures to be significant and
the lower bound of its CI (in points, or times the pairs for a count) beyond the rule.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from traces import UsageError

from ._compare import Effect, PairAnalysis, Settings, quantile_name
from ._render import fmt_percent

__all__ = ["ErrorRule", "ImageRule", "LatencyRule", "Rules", "parse_rules"]

_IMAGE_RULE = re.compile(
    r"^images:(?P<verdict>[a-z][a-z0-9_-]*)\s*(?P<op>>=|<=|==|>|<)\s*"
    r"(?P<value>\d+(?:\.\d+)?)(?P<percent>%?)$"
)
_THRESHOLD = re.compile(r"^\+?(?P<value>\d+(?:\.\d+)?)(?P<percent>%?)$")
_QUANTILE = re.compile(r"^p(?P<value>\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class LatencyRule:
    """Fail when `statistic` (e.g. "p99", "typical") rises by more than `threshold` (0.10 = 10%)."""

    text: str
    statistic: str
    threshold: float
    quantile: float | None = None


@dataclass(frozen=True)
class ErrorRule:
    """Fail when failures rise by more than `value` points (percent) or requests (count)."""

    text: str
    value: float
    percent: bool


@dataclass(frozen=True)
class ImageRule:
    """An image rule, `images:<verdict><op><number>[%]`, evaluated by the image report.

    `value` is as written (5 for "5%"); `percent` says whether it is a share of requests.
    """

    verdict: str
    op: str
    value: float
    percent: bool

    def holds(self, observed: float) -> bool:
        """Whether `observed` (a count, or a percentage when `percent`) meets the condition."""
        return {
            ">": observed > self.value,
            ">=": observed >= self.value,
            "<": observed < self.value,
            "<=": observed <= self.value,
            "==": observed == self.value,
        }[self.op]

    def __str__(self) -> str:
        number = f"{self.value:g}{'%' if self.percent else ''}"
        return f"images:{self.verdict}{self.op}{number}"


@dataclass
class Rules:
    """Parsed `--fail-on` rules."""

    latency: list[LatencyRule] = field(default_factory=list)
    errors: list[ErrorRule] = field(default_factory=list)
    images: list[ImageRule] = field(default_factory=list)

    def quantiles(self) -> tuple[float, ...]:
        """Quantiles the rules need beyond the default set."""
        return tuple(rule.quantile for rule in self.latency if rule.quantile is not None)

    def thresholds(self) -> tuple[tuple[str, float], ...]:
        """(statistic, threshold) of each latency rule, the tightest per statistic: within it a
        statistic may be called unchanged (`Settings.equivalence`)."""
        tightest: dict[str, float] = {}
        for rule in self.latency:
            tightest[rule.statistic] = min(rule.threshold, tightest.get(rule.statistic, math.inf))
        return tuple(tightest.items())

    def __bool__(self) -> bool:
        return bool(self.latency or self.errors or self.images)


def _bad(rule: str, why: str) -> UsageError:
    return UsageError(
        f"--fail-on rule {rule!r}: {why} (expected e.g. 'p99:+10%,median:+5%,errors:+1%' "
        "or 'images:changed>5%')"
    )


def _latency_rule(text: str, metric: str, threshold: str) -> LatencyRule:
    match = _THRESHOLD.match(threshold)
    if not match or not match["percent"]:
        raise _bad(text, "a latency threshold is a percentage such as +10%")
    value = float(match["value"]) / 100.0
    if metric in ("median", "p50"):
        return LatencyRule(text, "p50", value, 0.5)
    if metric in ("typical", "shift"):
        return LatencyRule(text, "typical", value)
    quantile = _QUANTILE.match(metric)
    if not quantile:
        raise _bad(text, f"unknown metric {metric!r}: use pNN, median, typical or errors")
    q = round(float(quantile["value"]) / 100.0, 12)
    if not 0.0 < q < 1.0:
        raise _bad(text, "a quantile is between p0 and p100, exclusive")
    return LatencyRule(text, quantile_name(q), value, q)


def parse_rules(text: str | None) -> Rules:
    """Parse a `--fail-on` value; a malformed rule is a `UsageError`."""
    rules = Rules()
    if not text:
        return rules
    for raw in text.split(","):
        rule = raw.strip()
        if not rule:
            continue
        if rule.startswith("images:"):
            match = _IMAGE_RULE.match(rule)
            if not match:
                raise _bad(rule, "an image rule is images:<verdict><op><number>[%]")
            rules.images.append(
                ImageRule(
                    match["verdict"], match["op"], float(match["value"]), bool(match["percent"])
                )
            )
            continue
        metric, sep, threshold = rule.partition(":")
        if not sep:
            raise _bad(rule, "missing ':' between metric and threshold")
        metric, threshold = metric.strip().lower(), threshold.strip()
        if threshold.startswith("-"):
            raise _bad(rule, "thresholds are regressions: write them as +N%")
        if metric == "errors":
            match = _THRESHOLD.match(threshold)
            if not match:
                raise _bad(rule, "an error threshold is +N% (points) or +N (requests)")
            rules.errors.append(ErrorRule(rule, float(match["value"]), bool(match["percent"])))
        else:
            rules.latency.append(_latency_rule(rule, metric, threshold))
    return rules


def _latency_effect(analysis: PairAnalysis, rule: LatencyRule, stratum: int) -> Effect | None:
    s = analysis.strata[stratum]
    if rule.statistic == "typical":
        return s.typical
    assert rule.quantile is not None
    return s.quantiles.get(rule.quantile)


def violations(analysis: PairAnalysis, rules: Rules, settings: Settings) -> list[str]:
    """One line per (rule, stratum) whose regression is significant, its CI beyond the rule."""
    found: list[str] = []
    label = str(analysis.join.cand.path)
    for index, stratum in enumerate(analysis.strata):
        where = f"{label} [{stratum.name}]"
        for rule in rules.latency:
            effect = _latency_effect(analysis, rule, index)
            if effect is None or not effect.significant or effect.estimate <= 0:
                continue
            limit = max(math.log1p(rule.threshold), effect.noise_band)
            if effect.lo > limit:
                change = fmt_percent(math.expm1(effect.estimate))
                low = fmt_percent(math.expm1(effect.lo))
                found.append(
                    f"{where}: {rule.statistic} {change} (CI from {low}) breaks rule {rule.text}"
                )
        for error_rule in rules.errors:
            effect = stratum.errors
            counts = stratum.error_counts
            extra = counts.only_cand_failed - counts.only_base_failed
            if not effect.significant or effect.estimate <= 0:
                continue
            # As for latency, the whole interval must lie beyond the rule, not just the estimate.
            beyond = (
                effect.lo * 100 > error_rule.value
                if error_rule.percent
                else effect.lo * counts.pairs > error_rule.value
            )
            if beyond:
                found.append(
                    f"{where}: failures {fmt_percent(effect.estimate)} points ({extra:+d} "
                    f"requests) break rule {error_rule.text}"
                )
    return found
