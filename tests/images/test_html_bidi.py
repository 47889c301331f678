"""Recorded text cannot reorder or hide itself in the HTML report: bidi and control characters.

A filename `photo\u202egnp.exe` renders as "photoexe.png" when the override is live. The
report isolates recorded text in `<bdi>` and shows such characters as visible `\\u202e`
escapes in a style of their own, in table cells, notes and summary lines alike.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from images_browser import Browser, find_chromium

from analyzer import write_html_report
from analyzer._table import Table

HOSTILE = "photo\u202egnp.exe"
HIDDEN = "ok\u200b\u2066tail\u0007"


def _report(tmp_path: Path) -> Path:
    table = Table(
        title="Errors",
        columns=["class", "error"],
        rows=[[HOSTILE, HIDDEN]],
        footnotes=[f"note about {HOSTILE}"],
    )
    path = tmp_path / "r.html"
    write_html_report(
        path,
        title="imgtrace report: r",
        summary=[f"summary {HOSTILE}"],
        tables=[table],
        plots=[],
        images=None,
        force=False,
    )
    return path


def test_bidi_and_control_characters_are_escaped_visibly_and_isolated(tmp_path: Path) -> None:
    page = _report(tmp_path).read_text(encoding="utf-8")
    for raw in ("\u202e", "\u200b", "\u2066", "\u0007"):
        assert raw not in page
    shown = 'photo<span class="ctl">\\u202e</span>gnp.exe</bdi>'
    assert page.count(shown) == 3  # the cell, the footnote and the summary line
    assert f'<td class="text"><bdi>{shown}</td>' in page
    assert "<li><bdi>note about " + shown in page and "<li><bdi>summary " + shown in page
    assert '<span class="ctl">\\u200b</span><span class="ctl">\\u2066</span>tail' in page
    assert re.search(r"\.ctl \{[^}]*color", page)


@pytest.mark.browser
def test_chromium_shows_the_escape_not_the_override(tmp_path: Path) -> None:
    executable = find_chromium()
    if executable is None:
        pytest.fail("headless Chromium is needed: apt-get install -y chromium chromium-driver")
    browser = Browser(executable)
    try:
        browser.open(_report(tmp_path))
        text = browser.evaluate("document.querySelector('td').innerText")
        direction = browser.evaluate("getComputedStyle(document.querySelector('bdi')).unicodeBidi")
        escapes = browser.evaluate("document.querySelectorAll('td:first-child .ctl').length")
    finally:
        browser.close()
    assert text == "photo\\u202egnp.exe"
    assert direction == "isolate"
    assert escapes == 1
