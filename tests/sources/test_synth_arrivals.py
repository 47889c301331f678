"""Arrival processes and value specs: statistics against the requested process, parsing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from recorder import ArrivalProcess, ValueSpec, parse_schedule
from traces import UsageError


def times(kind: str, rate: float, n: int, burstiness: float = 1.0, seed: int = 1) -> np.ndarray:
    process = ArrivalProcess(kind=kind, schedule=((0.0, rate),), burstiness=burstiness)  # type: ignore[arg-type]
    return np.array(process.times(np.random.default_rng(seed), n, None))


@pytest.mark.parametrize("kind", ["constant", "poisson", "gamma"])
def test_rate_over_a_long_trace(kind: str) -> None:
    t = times(kind, 8.0, 20_000, burstiness=0.5)
    assert t[0] == 0
    rate = (len(t) - 1) / t[-1]
    # sd of the estimate: 8 * CV / sqrt(n) <= 8 * 1.42 / 141, about 0.08.
    assert rate == pytest.approx(8.0, abs=0.4)


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_gamma_burstiness_sets_the_coefficient_of_variation(burstiness: float) -> None:
    gaps = np.diff(times("gamma", 5.0, 20_000, burstiness=burstiness))
    assert gaps.std() / gaps.mean() == pytest.approx(1 / np.sqrt(burstiness), rel=0.07)


def test_constant_is_evenly_spaced() -> None:
    assert np.allclose(np.diff(times("constant", 4.0, 100)), 0.25)


def test_poisson_gaps_are_exponential() -> None:
    gaps = np.diff(times("poisson", 3.0, 5_000, seed=7))
    assert stats.kstest(gaps, "expon", args=(0, 1 / 3.0)).pvalue > 0.01


def test_piecewise_schedule_rates_and_idle_segment() -> None:
    process = ArrivalProcess(
        kind="poisson", schedule=tuple(parse_schedule("0:2,100:20,200:0,250:5"))
    )
    t = np.array(process.times(np.random.default_rng(3), None, 400.0))
    for start, end, rate in [(0, 100, 2), (100, 200, 20), (200, 250, 0), (250, 400, 5)]:
        count = int(((t >= start) & (t < end)).sum())
        expected = rate * (end - start)
        assert abs(count - expected) <= 4 * np.sqrt(expected) + 1e-9, (start, count, expected)
    assert t.max() < 400


def test_schedule_starting_idle_delays_the_first_arrival() -> None:
    process = ArrivalProcess(kind="constant", schedule=tuple(parse_schedule("0:0,10:2")))
    assert process.times(np.random.default_rng(1), 3, None) == [10.0, 10.5, 11.0]


def test_schedule_that_ends_idle_cannot_reach_the_count() -> None:
    process = ArrivalProcess(kind="constant", schedule=tuple(parse_schedule("0:1,5:0")))
    with pytest.raises(UsageError, match="ends with rate 0"):
        process.times(np.random.default_rng(1), 100, None)


@pytest.mark.parametrize(
    "text", ["", "0:2,x", "5:2", "0:2,0:3", "0:2,60", "0:-1", "0:0", "0:2,30:1,20:4"]
)
def test_bad_schedules_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="--schedule"):
        parse_schedule(text)


@given(st.lists(st.tuples(st.integers(1, 1000), st.integers(0, 50)), min_size=1, max_size=6))
def test_schedules_parse_back(pairs: list[tuple[int, int]]) -> None:
    starts = np.cumsum([0] + [p[0] for p in pairs[1:]])
    rates = [p[1] for p in pairs]
    if not any(rates):
        rates[0] = 1
    text = ",".join(f"{s}:{r}" for s, r in zip(starts, rates, strict=True))
    assert parse_schedule(text) == [
        (float(s), float(r)) for s, r in zip(starts, rates, strict=True)
    ]


@settings(max_examples=60)
@given(
    st.lists(st.integers(1, 10_000), min_size=1, max_size=5),
    st.lists(st.integers(0, 9), min_size=5, max_size=5),
    st.integers(0, 2**32),
)
def test_list_specs_draw_only_listed_values(
    values: list[int], weights: list[int], seed: int
) -> None:
    weights = weights[: len(values)]
    if not any(weights):
        weights[0] = 1
    spec = ValueSpec(
        ",".join(f"{v}@{w}" for v, w in zip(values, weights, strict=True)), "int", "--n"
    )
    rng = np.random.default_rng(seed)
    allowed = {str(v) for v, w in zip(values, weights, strict=True) if w > 0}
    assert {spec.draw(rng) for _ in range(20)} <= allowed


def test_distribution_specs() -> None:
    rng = np.random.default_rng(0)
    uniform = ValueSpec("uniform(1.5,7.5)", "float", "--guidance-scale")
    draws = [float(uniform.draw(rng) or "nan") for _ in range(500)]
    assert min(draws) >= 1.5 and max(draws) <= 7.5 and np.mean(draws) == pytest.approx(4.5, abs=0.3)
    steps = ValueSpec("normal(20,4)", "int", "--steps")
    ints = [int(steps.draw(rng) or 0) for _ in range(500)]
    assert np.mean(ints) == pytest.approx(20, abs=0.8) and min(ints) >= 1
    sides = ValueSpec("uniform(100,700)", "size", "--image-size")
    for _ in range(50):
        w, h = (int(x) for x in (sides.draw(rng) or "").split("x"))
        assert w == h and w % 16 == 0 and 96 <= w <= 704
    assert ValueSpec("none", "float", "--guidance-scale").draw(rng) is None


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("abc", "int"),
        ("1,,2", "int"),
        ("uniform(3)", "float"),
        ("uniform(5,1)", "float"),
        ("normal(1,-1)", "float"),
        ("4@x", "int"),
        ("4@0", "int"),
        ("12y", "size"),
        ("uniform(1,2)", "str"),
        ("nan", "float"),
    ],
)
def test_bad_specs_are_refused(text: str, kind: str) -> None:
    with pytest.raises(UsageError, match="--opt"):
        ValueSpec(text, kind, "--opt")  # type: ignore[arg-type]
