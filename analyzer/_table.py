"""One table shape for every output: the terminal, the JSON and the HTML report render it."""

from __future__ import annotations

import msgspec

__all__ = ["Table"]


class Table(msgspec.Struct, kw_only=True):
    """A titled table of already formatted cells, with footnotes.

    `row_classes`, when given, has one CSS-friendly word per row (e.g. "slower", "faster",
    "changed", "same") that the HTML report uses to colour the row and the terminal may use to
    pick a style.
    """

    title: str
    columns: list[str]
    rows: list[list[str]]
    footnotes: list[str] = []
    row_classes: list[str] | None = None
