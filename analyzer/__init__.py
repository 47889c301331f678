"""Analyze runs: latency statistics, paired comparisons, image diffs and reports.

The command line (`imgtrace report`, `imgtrace compare`) is the main entry; from Python, read a
run or trace into per-request rows with `load_rows` and summarize it with `report_tables`, pair
two with `join_rows` or compare whole runs with `compare_files` under `Settings`, compare output
images with `compare_run_images`, and write the offline report with `write_html_report`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import AnalysisError
from ._lazy import lazy_attributes
from ._table import Table

if TYPE_CHECKING:
    from ._compare import Settings
    from ._compare_run import compare_files
    from ._html import write_html_report
    from ._images import ImageReport, ImageThresholds, compare_run_images
    from ._load import Join, Rows, join_rows, load_rows
    from ._report import report_tables
    from ._rules import parse_rules

__all__ = [
    "AnalysisError",
    "ImageReport",
    "ImageThresholds",
    "Join",
    "Rows",
    "Settings",
    "Table",
    "compare_files",
    "compare_run_images",
    "join_rows",
    "load_rows",
    "parse_rules",
    "report_tables",
    "write_html_report",
]

# numpy, Pillow and matplotlib load only when an analysis is asked for, so that the command line
# (which imports this package to build its flags) starts fast.
__getattr__ = lazy_attributes(
    __name__,
    {
        "ImageReport": "._images",
        "ImageThresholds": "._images",
        "compare_run_images": "._images",
        "Join": "._load",
        "Rows": "._load",
        "join_rows": "._load",
        "load_rows": "._load",
        "Settings": "._compare",
        "compare_files": "._compare_run",
        "report_tables": "._report",
        "parse_rules": "._rules",
        "write_html_report": "._html",
    },
)
