"""The report in a real browser: headless Chromium from file://, driven over the DevTools pipe."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from images_browser import Browser, find_chromium
from PIL import Image
from test_image_html import build_report

pytestmark = pytest.mark.browser


@pytest.fixture
def browser() -> Iterator[Browser]:
    executable = find_chromium()
    if executable is None:
        pytest.fail("headless Chromium is needed: apt-get install -y chromium chromium-driver")
    opened = Browser(executable)
    yield opened
    opened.close()


def test_report_works_in_chromium(tmp_path: Path, browser: Browser) -> None:
    path, _ = build_report(tmp_path)
    browser.open(path)
    assert browser.evaluate("document.documentElement.getAttribute('data-ready')") == "true"
    assert browser.evaluate("document.querySelectorAll('article.row').length") == 4
    # The prompt's markup is text, and it did not run.
    prompt = browser.evaluate("document.querySelector('.prompt').textContent")
    assert prompt.startswith('<script>alert("prompt")</script>')
    # Every embedded thumbnail decoded.
    assert browser.evaluate(
        "Array.from(document.images).every(function(i){return i.complete && i.naturalWidth>0})"
    )

    # Slider: switch the first row's viewer, then drag the handle from the middle to 20%.
    browser.click("#row0 .modes button[data-mode='slider']")
    assert browser.evaluate("document.querySelector('#row0 .viewer').dataset.mode") == "slider"
    box = browser.box("#row0 .slide")
    y = box["y"] + box["h"] / 2
    browser.mouse("mousePressed", box["x"] + box["w"] * 0.5, y)
    browser.mouse("mouseMoved", box["x"] + box["w"] * 0.2, y)
    browser.mouse("mouseReleased", box["x"] + box["w"] * 0.2, y)
    value = int(browser.evaluate("document.querySelector('#row0 .slide').value"))
    assert 10 <= value <= 30
    cut = browser.evaluate("getComputedStyle(document.querySelector('#row0 .over')).clipPath")
    assert cut == f"inset(0px 0px 0px {value}%)"

    # Toggle: clicking the stage flips between A and B.
    browser.click("#row0 .modes button[data-mode='toggle']")
    browser.click("#row0 .stage")
    assert browser.evaluate("document.querySelector('#row0 .viewer').classList.contains('show-a')")

    # Status filter: hiding 'identical-bytes' hides those rows.
    browser.click(".chip[data-verdict='identical-bytes']")
    assert browser.evaluate("document.querySelectorAll('article.row.hidden').length") == 2
    browser.click(".chip[data-verdict='identical-bytes']")

    # Keyboard: the clicks made row 0 current; the arrows move between rows.
    current = "document.querySelector('article.row.current').id"
    assert browser.evaluate(current) == "row0"
    browser.key("ArrowRight", "ArrowRight", 39)
    assert browser.evaluate(current) == "row1"
    browser.key("ArrowLeft", "ArrowLeft", 37)
    assert browser.evaluate(current) == "row0"
    browser.key("2", "Digit2", 50)  # 2: slider mode for the current row
    assert browser.evaluate("document.querySelector('#row0 .viewer').dataset.mode") == "slider"

    browser.box("#images")
    shot = Image.open(io.BytesIO(browser.screenshot()))
    assert shot.size == (1280, 1000)
    colours = shot.convert("RGB").getcolors(1 << 20)
    assert colours is not None and len(colours) > 500  # pictures, not a blank page
    target = os.environ.get("IMGTRACE_REPORT_SCREENSHOT")
    if target:
        shot.save(target)
    assert browser.errors == []
