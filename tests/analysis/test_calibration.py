"""A small seeded run of benchmarks/verdict_calibration.py: the verdicts keep their promises.

The full calibration (200+ seeds per noise model, docs/benchmarks.md) is the benchmark; this is
its 16-seed version with bounds loose enough for that few seeds, yet the uncorrected statistics
(coverage about 52% and false positives about 48% under AR(1) rho 0.8) fail them clearly.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "verdict_calibration.py"


@pytest.fixture(scope="module")
def calibration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verdict_calibration", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("rho", "power"), [(0.0, 0.8), (0.8, 0.0)])
def test_seeded_calibration_keeps_its_bounds(
    calibration: ModuleType, rho: float, power: float
) -> None:
    seeds = 16
    rates = calibration.calibrate(calibration.Options(seeds=seeds, resamples=200), rho)
    assert rates["false_positive"] <= 3 / seeds
    assert rates["aa_coverage"] >= 12 / seeds
    assert rates["shift_coverage"] >= 12 / seeds
    assert rates["rule_fired"] <= 2 / seeds
    assert rates["power"] >= power
    # The widening follows the true long-run variance: about 1 when independent, 9 at rho 0.8.
    true = (1 + rho) / (1 - rho)
    assert rates["mean_variance_factor"] == pytest.approx(true, rel=0.35)
    assert not math.isnan(rates["p50_aa_significant"])


@pytest.mark.parametrize(("rho", "power"), [(0.0, 0.9), (0.5, 0.4)])
def test_short_runs_find_a_large_change(calibration: ModuleType, rho: float, power: float) -> None:
    # 35 pairs: the correlation estimated from them is noisy; a noisy estimate must neither
    # widen independent runs into missing a 25% slowdown nor let correlated ones overclaim.
    seeds = 24
    short = calibration.short_options(calibration.Options(seeds=seeds, resamples=200))
    assert (short.pairs, short.shift) == (35, 0.25)
    rates = calibration.calibrate(short, rho)
    assert rates["power"] >= power
    assert rates["false_positive"] <= 3 / seeds
    assert rates["aa_coverage"] >= 19 / seeds
    assert rates["shift_coverage"] >= 19 / seeds


def test_table_replaces_only_its_marked_section(calibration: ModuleType, tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nbefore\n", encoding="utf-8")
    calibration.write_docs("first table", docs)
    calibration.write_docs("second table", docs)
    text = docs.read_text(encoding="utf-8")
    assert text.count(calibration.BEGIN) == 1 and "first table" not in text
    assert text.startswith("# Benchmarks\n\nbefore\n") and "second table" in text
