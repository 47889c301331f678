"""The --until language: parsing, combining, evaluating, refusing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgtrace._reduce import Observation, RunView, parse_predicate
from traces import UsageError


def view(*observations: Observation, changed: set[str] | None = None) -> RunView:
    return RunView(observations, (lambda: changed) if changed is not None else None)


def ok(request_id: str, latency: float = 0.1) -> Observation:
    return Observation(request_id, 200, None, latency)


def status(request_id: str, code: int) -> Observation:
    return Observation(request_id, code, None, 0.1)


def error(request_id: str, kind: str) -> Observation:
    return Observation(request_id, None, kind, None)


@given(
    st.lists(st.integers(min_value=100, max_value=599), min_size=1, max_size=20),
    st.integers(min_value=100, max_value=599),
    st.sampled_from([">=", ">", "<=", "<", "==", "!="]),
)
def test_status_comparisons_hold_when_any_request_matches(
    codes: list[int], limit: int, op: str
) -> None:
    predicate = parse_predicate(f"status{op}{limit}")
    run = view(*(status(f"r{i}", code) for i, code in enumerate(codes)))
    expected = [
        f"r{i}"
        for i, code in enumerate(codes)
        if eval(f"{code} {op} {limit}")  # the Python operator is the oracle
    ]
    assert predicate.hits(run) == expected


def test_error_kinds_map_to_the_replayers_error_classes() -> None:
    run = view(ok("a"), error("b", "read"), error("c", "protocol"), error("d", "timeout"))
    assert parse_predicate("error=reset").hits(run) == ["b"]
    assert parse_predicate("error=invalid-response").hits(run) == ["c"]
    assert parse_predicate("error=timeout|reset").hits(run) == ["b", "d"]
    assert not parse_predicate("error=connect").holds(run)


def test_latency_of_any_request_or_of_one_id() -> None:
    run = view(ok("a", 0.5), ok("b", 2.5), ok("c", 1.9))
    assert parse_predicate("latency>2s").hits(run) == ["b"]
    assert parse_predicate("latency > 1500ms").hits(run) == ["b", "c"]
    assert parse_predicate("latency[c]>1.5").hits(run) == ["c"]
    assert not parse_predicate("latency[a]>1s").holds(run)
    assert parse_predicate("latency>0.005m").hits(run) == ["a", "b", "c"]


def test_and_or_not_and_parentheses() -> None:
    run = view(status("a", 500), ok("b", 3.0))
    assert parse_predicate("status>=500 and latency>2s").holds(run)
    assert not parse_predicate("status==429 and latency>2s").holds(run)
    assert parse_predicate("status==429 or latency>2s").holds(run)
    assert parse_predicate("not status==429").holds(run)
    assert not parse_predicate("not (status>=500 or status==429)").holds(run)
    # `and` binds tighter than `or`.
    assert parse_predicate("status==429 and latency>9s or status>=500").holds(run)
    # Several --until: all must hold.
    assert not parse_predicate(["status>=500", "error=timeout"]).holds(run)
    assert parse_predicate(["status>=500", "latency>2s"]).holds(run)


def test_image_changed_uses_the_baseline_comparison() -> None:
    predicate = parse_predicate("image:changed")
    assert predicate.needs_images
    assert parse_predicate("status>=500 or image:changed").needs_images
    assert predicate.hits(view(ok("a"), ok("b"), changed={"b"})) == ["b"]
    assert not predicate.holds(view(ok("a"), changed=set()))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status>>500", "does not parse at 'status>>500'"),
        ("status>=500 and", "does not parse at 'the end'"),
        ("(status>=500", "expected ')'"),
        ("status>=500 latency>2s", "expected and, or or the end"),
        ("error=boom", "unknown error kind 'boom'"),
        ("latency==2s", "compare latency with >"),
        ("image:missing", "the image predicate is image:changed"),
        ("lag>5ms", "lag is not a predicate by design"),
        ("", "the predicate is empty"),
    ],
)
def test_bad_predicates_say_what_is_wrong(text: str, expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_predicate(text)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_image_changed_without_a_baseline_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--baseline"):
        parse_predicate("image:changed").holds(view(ok("a")))
