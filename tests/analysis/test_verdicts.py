"""Honest verdicts: `~` only inside a band no wider than --min-effect, rules gated on the CI."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from analyzer_runs import WriteRun, simulate_pairs

from analyzer._compare import Effect, Settings
from analyzer._rules import parse_rules, violations
from imgtrace._cli import main


def effect(
    change: float, lo: float, hi: float, *, noise: float = 0.0, statistic: str = "typical"
) -> Effect:
    """A decided effect of `change` with CI [lo, hi] (fractions) against an A/A band ±`noise`."""
    result = Effect(
        "all", statistic, 300, math.log1p(change), math.log1p(lo), math.log1p(hi), 0.001, "test"
    )
    result.noise_band = math.log1p(noise)
    return result


def decided(item: Effect, settings: Settings | None = None) -> Effect:
    item.decide(settings or Settings())
    return item


def test_a_real_small_slowdown_is_not_called_same_because_the_noise_is_wide() -> None:
    # Measured: +5.3% slower, CI +1.8 to +5.2%, against an A/A band of ±6%: once `~`.
    slowdown = decided(effect(0.035, 0.018, 0.052, noise=0.06))
    assert slowdown.verdict == "inconclusive"
    assert slowdown.verdict_text == "inconclusive (noise ±6.0%)"
    # The same change against a quiet A/A pair is a slowdown.
    assert decided(effect(0.035, 0.018, 0.052, noise=0.01)).verdict == "slower"


def test_a_large_change_inside_a_huge_band_is_inconclusive_with_the_band() -> None:
    huge = decided(effect(3.43, 1.0, 7.0, noise=5.87))
    assert huge.verdict_text == "inconclusive (noise ±587%)"
    assert huge.to_json()["verdict_text"] == "inconclusive (noise ±587%)"
    assert huge.to_json()["verdict"] == "inconclusive"


def test_same_needs_a_band_no_wider_than_the_minimum_effect() -> None:
    assert decided(effect(0.002, -0.01, 0.015, noise=0.012)).verdict == "~"
    assert decided(effect(0.002, -0.01, 0.015)).verdict == "~"
    wide = decided(effect(0.002, -0.03, 0.035))
    assert wide.verdict_text == "inconclusive (CI exceeds ±2.0%)"
    # A rule's threshold is the tolerance of its statistic: a 6% band is fine for p50:+10%.
    rule = Settings(equivalence=parse_rules("median:+10%").thresholds())
    assert decided(effect(0.01, -0.04, 0.05, noise=0.06, statistic="p50"), rule).verdict == "~"
    typical = decided(effect(0.01, -0.04, 0.05, noise=0.06), rule)
    assert typical.verdict_text == "inconclusive (noise ±6.0%)"


def test_unbounded_intervals_say_why() -> None:
    few = decided(Effect("all", "typical", 4, 0.01, -math.inf, math.inf, math.nan, "test"))
    assert few.verdict_text == "inconclusive (too few pairs)"


class _Stratum:
    def __init__(self, quantile: Effect) -> None:
        self.name = "all"
        self.quantiles = {0.5: quantile}
        self.typical = quantile
        self.errors = decided(effect(0.0, -0.01, 0.01))
        self.errors.kind = "rate_difference"


class _Analysis:
    def __init__(self, quantile: Effect) -> None:
        self.strata = [_Stratum(quantile)]
        self.join = type("J", (), {"cand": type("C", (), {"path": Path("cand.run")})()})()


@pytest.mark.parametrize(
    ("change", "lo", "fires"),
    [(0.07, 0.03, False), (0.07, 0.051, True), (0.04, 0.01, False)],
)
def test_latency_rules_fire_only_when_the_whole_ci_is_beyond(
    change: float, lo: float, fires: bool
) -> None:
    rules = parse_rules("median:+5%")
    quantile = decided(effect(change, lo, change + 0.04, statistic="p50"))
    assert quantile.significant
    found = violations(_Analysis(quantile), rules, Settings())  # type: ignore[arg-type]
    assert bool(found) is fires, found


def test_compare_prints_and_writes_the_noise_band_of_an_inconclusive_verdict(
    write_run: WriteRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = simulate_pairs(400, 9, shift=0.01)
    again, _ = simulate_pairs(400, 9)
    # The A/A replay drifted by 40%: its band swamps any change that matters.
    drifted = again * 1.4 * np.exp(np.random.default_rng(1).normal(0, 0.05, 400))
    paths = [
        write_run(name, data)
        for name, data in (("a.run", base), ("b.run", cand), ("a2.run", drifted))
    ]
    out_json, out_html = tmp_path / "n.json", tmp_path / "n.html"
    code = main(
        ["compare", *map(str, paths[:2]), "--noise", str(paths[2]), "--no-images",
         "--json", str(out_json), "--html", str(out_html)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    document = json.loads(out_json.read_text())
    typical = next(e for e in document["comparisons"][0]["effects"] if e["statistic"] == "typical")
    assert typical["verdict"] == "inconclusive"
    assert typical["verdict_text"].startswith("inconclusive (noise ±4")
    assert "inconclusive (noise ±4" in out
    assert f"b.run vs {paths[0]}: inconclusive (noise ±4" in out
    assert "inconclusive (noise ±4" in html.unescape(out_html.read_text(encoding="utf-8"))


def test_error_rules_need_the_whole_interval_beyond(write_run: WriteRun, tmp_path: Path) -> None:
    base, cand = simulate_pairs(400, 2)
    failing = [0 if i % 25 == 3 else 200 for i in range(400)]  # 4% timeouts in CAND only
    a = write_run("a.run", base)
    b = write_run("b.run", cand, statuses=failing)
    # +4 points, CI about +2.1 to +5.9: beyond +1%, not beyond +3% although the estimate is.
    assert main(["compare", str(a), str(b), "--no-images", "--fail-on", "errors:+1%"]) == 1
    assert main(["compare", str(a), str(b), "--no-images", "--fail-on", "errors:+3%"]) == 0
    assert main(["compare", str(a), str(b), "--no-images", "--fail-on", "errors:+5"]) == 1
    assert main(["compare", str(a), str(b), "--no-images", "--fail-on", "errors:+12"]) == 0


def test_a_change_beyond_the_band_that_holm_does_not_confirm_says_so() -> None:
    # Measured on a real +25% slowdown with 33 pairs: the interval lay wholly beyond ±5%, yet the
    # verdict read "CI exceeds ±5.0%"; the true reason is the corrected p.
    beyond = effect(0.24, 0.186, 0.34)
    beyond.p, beyond.p_holm, beyond.holm_alpha = 0.025, 0.076, 0.05 / 3
    beyond.decide(Settings(min_effect=0.05))
    assert not beyond.significant
    assert beyond.verdict_text == "inconclusive (p (Holm) 0.076)"


def test_significance_is_the_interval_at_the_holm_level() -> None:
    # One procedure decides: the interval at 1 - alpha/(m - i) must exclude zero. A 95% CI that
    # excludes zero while the Holm-level one does not is no slowdown.
    levels: list[float] = []

    def at(confidence: float) -> tuple[float, float]:
        levels.append(confidence)
        return (-0.01, 0.2) if confidence > 0.95 else (0.01, 0.15)

    item = effect(0.08, 0.01, 0.15)
    item.p_holm, item.holm_alpha, item.interval_at = 0.04, 0.05 / 3, at
    item.decide(Settings())
    assert levels == [pytest.approx(1 - 0.05 / 3)]
    assert not item.significant and item.verdict == "inconclusive"
    assert item.verdict_text == "inconclusive (98.3% CI (Holm) includes 0)"
    low, high = cast("list[Any]", item.to_json()["ci_holm"])
    assert (low, high) == (pytest.approx(math.expm1(-0.01)), pytest.approx(math.expm1(0.2)))
    item.interval_at = lambda confidence: (0.005, 0.2)
    item.decide(Settings())
    assert item.significant and item.verdict == "slower"


def test_holm_levels_follow_the_step_down_order() -> None:
    from analyzer._stats import holm, holm_levels

    ps = [0.03, math.nan, 0.001, 0.2]
    assert holm_levels(ps, 0.05)[0] == pytest.approx(0.025)
    assert holm_levels(ps, 0.05)[2] == pytest.approx(0.05 / 3)
    assert holm_levels(ps, 0.05)[3] == pytest.approx(0.05)
    assert math.isnan(holm_levels(ps, 0.05)[1])
    # p below its level at every step <=> Holm-adjusted p below alpha.
    adjusted = holm(ps)
    for p, level, p_holm in zip(ps, holm_levels(ps, 0.05), adjusted, strict=True):
        if not math.isnan(p):
            assert (p < level) == (p_holm < 0.05)


def test_an_interval_lost_to_correlation_says_so() -> None:
    correlated = effect(0.3, -0.5, math.inf)
    correlated.lo, correlated.variance_factor = -math.inf, 2.97
    correlated.n = 16
    assert decided(correlated).verdict_text == "inconclusive (too few effective pairs: 5 of 16)"
