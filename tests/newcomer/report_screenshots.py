"""Photograph a demo's report in headless Chromium, 1400 px wide, for the README.

    python tests/newcomer/report_screenshots.py imgtrace-demo/report.html docs/img

writes report-demo.png (the summary and latency section) and report-images.png (the image
section, first row's slider in use). Uses the browser helper of the report's browser test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "images"))

from images_browser import Browser, find_chromium

WIDTH, HEIGHT = 1400, 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    executable = find_chromium()
    if executable is None:
        print("headless Chromium is needed: apt-get install -y chromium", file=sys.stderr)
        return 2
    browser = Browser(executable, width=WIDTH, height=HEIGHT)
    try:
        browser.open(args.report)
        browser.evaluate("window.scrollTo(0, 0)")
        (args.folder / "report-demo.png").write_bytes(browser.screenshot())
        browser.evaluate("document.querySelector('#images article.row').scrollIntoView()")
        browser.click("#row0 .modes button[data-mode='slider']")
        browser.evaluate(
            "window.scrollTo(0, document.querySelector('#images article.row').offsetTop - 8)"
        )
        (args.folder / "report-images.png").write_bytes(browser.screenshot())
    finally:
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
