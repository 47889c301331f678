"""`--target` values as a parser: every text is a Targets or one UsageError, never a crash."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replayer import Target, Targets
from traces import UsageError

NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True)
URLS = st.sampled_from(
    ["http://127.0.0.1:30000", "https://gw.example/sglang", "http://h:1/p?a=b&c=d"]
)


@given(st.lists(st.tuples(NAMES, URLS), min_size=1, max_size=5, unique_by=lambda t: t[0]))
def test_named_targets_parse_back(pairs: list[tuple[str, str]]) -> None:
    targets = Targets.parse([f"{name}={url}" for name, url in pairs])
    assert targets.url is None and targets.interleaved
    assert [(t.name, t.url) for t in targets.named] == pairs


@given(URLS)
def test_a_plain_url_with_a_query_is_not_a_name(url: str) -> None:
    targets = Targets.parse([url])
    assert targets.url == url and not targets.interleaved


@given(st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_any_text_is_targets_or_one_usage_error(values: list[str]) -> None:
    try:
        targets = Targets.parse(values)
    except UsageError as exc:
        assert "\n" not in str(exc).strip()
    else:
        assert targets.url is not None or len(targets.named) == len(values)


@pytest.mark.parametrize("name", ["", "a/b", "..", ".x", "-x", "a b", "x" * 65, "a."])
def test_names_that_are_not_file_names(name: str) -> None:
    with pytest.raises(UsageError, match="not a valid file name"):
        Target(name, "http://127.0.0.1:1")


def test_two_plain_urls_ask_for_names() -> None:
    with pytest.raises(UsageError, match="name each one"):
        Targets.parse(["http://a:1", "http://b:1"])
