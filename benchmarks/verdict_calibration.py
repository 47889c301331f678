"""Calibration of `imgtrace compare`'s verdicts on seeded simulations with known truth.

For every noise model (independent, AR(1) with rho 0.5 and 0.8) and every seed, two runs of the
same 300 requests are simulated: each request has its own cost (lognormal, as image sizes make
it) and each run multiplies it by its own noise, with the same marginal spread in every model.
Three truths are analyzed, exactly as `imgtrace compare` does (pairing, Hodges-Lehmann with the
serial-correlation widening, moving-block bootstrap, Holm, verdicts, `--fail-on`):

- A/A (no change): a `slower`/`faster` verdict is a false positive; the CI should hold 0;
- CAND 5% slower: the verdict should be `slower` (power); the CI should hold +5%;
- CAND 3% slower with `--fail-on median:+5%,typical:+5%`: a rule that fires is a false alarm.

Targets (issue 12): false positives <= 7%, CI coverage >= 93% in every model, power >= 90%
under independent noise. Short runs get their own rows (35 pairs, independent and AR(1)
rho 0.5 noise, CAND 25% slower: power >= 90% under independent noise), since the correlation
estimated from a few dozen requests is itself noisy. The tables replace the marked section of
docs/benchmarks.md.

    .venv/bin/python benchmarks/verdict_calibration.py                  # 200 seeds, docs updated
    .venv/bin/python benchmarks/verdict_calibration.py --seeds 30 --json out.json --no-docs

This is arithmetic, not timing: the figures do not depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "analysis"))

from analyzer_runs import rows_from as rows

from analyzer._compare import PairAnalysis, Settings, analyze_pair, apply_holm
from analyzer._load import join_rows
from analyzer._rules import parse_rules, violations

MODELS = (("independent", 0.0), ("AR(1) rho=0.5", 0.5), ("AR(1) rho=0.8", 0.8))
SHORT_MODELS = MODELS[:2]
SHORT_PAIRS = 35
SHORT_SHIFT = 0.25
RULES = "median:+5%,typical:+5%"
BEGIN = "<!-- verdict-calibration:begin -->"
END = "<!-- verdict-calibration:end -->"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Options:
    seeds: int = 200
    pairs: int = 300
    noise: float = 0.15
    """Spread of each run's log-latency noise (0.15: about ±15% per request)."""
    resamples: int = 500
    shift: float = 0.05
    """The true slowdown whose detection is the power."""


def run_noise(rng: np.random.Generator, n: int, rho: float, spread: float) -> np.ndarray:
    """Multiplicative noise exp(e), e stationary AR(1) with sd `spread` (rho 0: independent)."""
    shocks = rng.normal(0.0, spread * math.sqrt(1.0 - rho * rho), n)
    series = np.empty(n)
    series[0] = rng.normal(0.0, spread)
    for i in range(1, n):
        series[i] = rho * series[i - 1] + shocks[i]
    return np.exp(series)


def analyze(base: np.ndarray, cand: np.ndarray, settings: Settings) -> PairAnalysis:
    analysis = analyze_pair(join_rows(rows(base, "base"), rows(cand, "cand")), settings)
    apply_holm([analysis], settings)
    return analysis


def covers(analysis: PairAnalysis, truth: float) -> bool:
    typical = analysis.all.typical
    return typical.lo <= math.log1p(truth) <= typical.hi


def calibrate(options: Options, rho: float) -> dict[str, float]:
    """Rates over `options.seeds` seeds for one noise model."""
    rules = parse_rules(RULES)
    counts = dict.fromkeys(
        ("false_positive", "aa_significant", "aa_coverage", "power", "shift_coverage",
         "rule_fired", "p50_aa_significant"),
        0,
    )  # fmt: skip
    factors = []
    for seed in range(options.seeds):
        rng = np.random.default_rng([seed, round(rho * 100)])
        cost = rng.lognormal(math.log(200e6), 0.6, options.pairs)
        base = cost * run_noise(rng, options.pairs, rho, options.noise)
        twin = cost * run_noise(rng, options.pairs, rho, options.noise)
        settings = Settings(resamples=options.resamples, seed=seed, equivalence=rules.thresholds())
        same = analyze(base, twin, settings)
        typical = same.all.typical
        factors.append(typical.variance_factor)
        counts["false_positive"] += typical.verdict in ("slower", "faster")
        counts["aa_significant"] += typical.significant
        counts["aa_coverage"] += covers(same, 0.0)
        counts["p50_aa_significant"] += same.all.quantiles[0.5].significant
        slower = analyze(base, twin * (1.0 + options.shift), settings)
        counts["power"] += slower.all.typical.verdict == "slower"
        counts["shift_coverage"] += covers(slower, options.shift)
        small = analyze(base, twin * 1.03, settings)
        counts["rule_fired"] += bool(violations(small, rules, settings))
    rates = {name: count / options.seeds for name, count in counts.items()}
    rates["mean_variance_factor"] = float(np.mean(factors))
    rates["true_variance_factor"] = (1 + rho) / (1 - rho)
    return rates


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def short_options(options: Options) -> Options:
    """The short-run rows: as `options`, with few pairs and a large change."""
    return Options(options.seeds, SHORT_PAIRS, options.noise, options.resamples, SHORT_SHIFT)


def short_table(results: dict[str, dict[str, float]], options: Options) -> str:
    short = short_options(options)
    lines = [
        f"Short runs: {short.pairs} pairs per run, CAND {short.shift:.0%} slower, otherwise "
        "as above.",
        "",
        "| noise model | A/A false positives (verdict) | A/A CI coverage "
        f"| power at +{short.shift:.0%} (`slower`) | CI coverage at +{short.shift:.0%} "
        "| variance factor (mean / true) |",
        "|---|---|---|---|---|---|",
    ]
    for name, rates in results.items():
        lines.append(
            f"| {name} | {percent(rates['false_positive'])} | {percent(rates['aa_coverage'])} "
            f"| {percent(rates['power'])} | {percent(rates['shift_coverage'])} "
            f"| {rates['mean_variance_factor']:.2f} / {rates['true_variance_factor']:.2f} |"
        )
    return "\n".join(lines)


def table(results: dict[str, dict[str, float]], options: Options) -> str:
    lines = [
        f"{options.seeds} seeds per model, {options.pairs} pairs per run, per-run noise "
        f"sd {options.noise:g} in log-latency, {options.resamples} bootstrap resamples, "
        "alpha 0.05, --min-effect 2%.",
        "",
        "| noise model | A/A false positives (verdict) | A/A CI coverage "
        "| power at +5% (`slower`) | `median:+5%`/`typical:+5%` fired at true +3% "
        "| A/A p50 significant | variance factor (mean / true) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rates in results.items():
        lines.append(
            f"| {name} | {percent(rates['false_positive'])} | {percent(rates['aa_coverage'])} "
            f"| {percent(rates['power'])} | {percent(rates['rule_fired'])} "
            f"| {percent(rates['p50_aa_significant'])} "
            f"| {rates['mean_variance_factor']:.2f} / {rates['true_variance_factor']:.2f} |"
        )
    lines += [
        "",
        "The +5% and +3% runs are the A/A runs with CAND scaled, so the CI coverage of the true "
        "change there equals the A/A coverage (JSON: `shift_coverage`).",
    ]
    return "\n".join(lines)


def write_docs(text: str, path: Path = DOCS) -> None:
    """Replace the marked section of docs/benchmarks.md (appended once if missing)."""
    document = path.read_text(encoding="utf-8")
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in document and END in document:
        head, rest = document.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        document = head + block + tail
    else:
        document = document.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(document, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=Options.seeds)
    parser.add_argument("--pairs", type=int, default=Options.pairs)
    parser.add_argument("--noise", type=float, default=Options.noise)
    parser.add_argument("--resamples", type=int, default=Options.resamples)
    parser.add_argument("--json", type=Path, help="also write the rates as JSON here")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    options = Options(args.seeds, args.pairs, args.noise, args.resamples)
    started = time.perf_counter()
    results = {name: calibrate(options, rho) for name, rho in MODELS}
    short = {name: calibrate(short_options(options), rho) for name, rho in SHORT_MODELS}
    text = table(results, options) + "\n\n" + short_table(short, options)
    print(text)
    print(f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if args.json:
        everything = {"runs": results, "short_runs": short}
        args.json.write_text(json.dumps(everything, indent=2), encoding="utf-8")
    if not args.no_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
