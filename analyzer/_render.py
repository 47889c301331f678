"""Formatting numbers for people, and rendering a `Table` as terminal text."""

from __future__ import annotations

import functools
import math
import os
import shutil
import sys
import textwrap

from ._table import Table

__all__ = [
    "Footnotes",
    "fmt_count",
    "fmt_delta",
    "fmt_duration",
    "fmt_p",
    "fmt_percent",
    "fmt_ratio_ci",
    "render_text",
    "text_width",
    "wrap_lines",
]

SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹"


def superscript(number: int) -> str:
    return "".join(SUPERSCRIPTS[int(digit)] for digit in str(number))


def fmt_duration(ns: float) -> str:
    """A duration in ns as 3 significant digits with a unit: 812µs, 52.3ms, 1.25s."""
    if math.isnan(ns):
        return "—"
    if math.isinf(ns):
        return "∞" if ns > 0 else "-∞"
    value = ns / 1e6
    if abs(value) >= 1000:
        return f"{value / 1000:.3g}s"
    if abs(value) >= 1:
        return f"{value:.3g}ms"
    return f"{value * 1000:.3g}µs"


def fmt_delta(ns: float) -> str:
    """A signed change in time: +15.4ms, -812µs, ±0."""
    if math.isnan(ns):
        return "—"
    if ns == 0:
        return "±0"
    return ("+" if ns > 0 else "-") + fmt_duration(abs(ns))


def fmt_percent(fraction: float, *, signed: bool = True, digits: int = 1) -> str:
    if math.isnan(fraction):
        return "—"
    if math.isinf(fraction):
        return "+∞" if fraction > 0 else "-∞"
    sign = "+" if signed else ""
    return f"{fraction * 100:{sign}.{digits}f}%"


def fmt_ratio_ci(log_estimate: float, log_lo: float, log_hi: float) -> str:
    """A change as a percentage with its CI: "+5.1% [+3.2, +7.0]" (inputs are log-ratios)."""
    if math.isnan(log_estimate):
        return "—"
    estimate = fmt_percent(math.expm1(log_estimate))
    if not (math.isfinite(log_lo) and math.isfinite(log_hi)):
        return f"{estimate} [—]"
    lo = f"{math.expm1(log_lo) * 100:+.1f}"
    hi = f"{math.expm1(log_hi) * 100:+.1f}"
    return f"{estimate} [{lo}, {hi}]"


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "—"
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}"


def fmt_count(count: int) -> str:
    return f"{count:,}"


DEFAULT_WIDTH = 100
"""The width when neither the terminal nor COLUMNS says (output piped to a file)."""
MIN_WIDTH = 40
"""Narrower than this, wrapping would make tables unreadable; lines may then run over."""


def terminal_width() -> int | None:
    """The width of the terminal (or COLUMNS); None when output goes to a pipe or file."""
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        return max(shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns, MIN_WIDTH)
    return None


def text_width(width: int | None = None) -> int:
    """The width to draw tables for: `width`, else the terminal's or COLUMNS, else 100."""
    if width is None:
        width = terminal_width() or DEFAULT_WIDTH
    return max(width, MIN_WIDTH)


def _prose_width(width: int | None) -> int | None:
    # Prose wraps only for a known width: piped output keeps one line per finding, for grep.
    return max(width, MIN_WIDTH) if width is not None else terminal_width()


def _fit(cells: list[list[str]], widths: list[int], least: list[int], room: int) -> list[int]:
    """Column widths within `room`, never below `least`, adding as few lines as can be.

    Greedy: take a column from its width one character at a time, choosing each time the one
    that makes the table least tall (the widest among equals): a cell wraps where its row is
    already tall before a short row grows.
    """
    widths = list(widths)

    def lines(column: int, width: int) -> list[int]:
        return [len(_wrap(row[column], width)) for row in cells]

    per_column = [lines(i, w) for i, w in enumerate(widths)]

    def height(columns: list[list[int]]) -> int:
        return sum(max(row) for row in zip(*columns, strict=True))

    while sum(widths) > room:
        candidates = [i for i, w in enumerate(widths) if w > least[i]]
        if not candidates:
            break
        trial = {i: lines(i, widths[i] - 1) for i in candidates}
        costs = {
            i: height([trial[i] if j == i else col for j, col in enumerate(per_column)])
            for i in candidates
        }
        chosen = min(candidates, key=lambda i: (costs[i], -widths[i]))
        widths[chosen] -= 1
        per_column[chosen] = trial[chosen]
    return widths


def _longest_word(text: str) -> int:
    return max((len(word) for word in text.split()), default=0)


@functools.lru_cache(maxsize=4096)
def _wrap(cell: str, width: int) -> list[str]:
    if len(cell) <= width:
        return [cell]
    return textwrap.wrap(cell, width, break_long_words=True, break_on_hyphens=False) or [""]


def wrap_lines(lines: list[str], width: int | None = None) -> list[str]:
    """Lines of prose wrapped to `width` (the terminal's), continuations indented.

    With no width given and no terminal (a pipe, a file), lines stay whole.
    """
    prose = _prose_width(width)
    if prose is None:
        return list(lines)
    return [
        part
        for line in lines
        for part in (textwrap.wrap(line, prose, subsequent_indent="  ") or [""])
    ]


def render_text(table: Table, width: int | None = None) -> str:
    """Box-drawn text: the title, a header row, the rows, then numbered footnotes.

    Fits `width` columns (the terminal's or COLUMNS, else 100): cells wrap at spaces onto more
    lines of their row, so a row's first line holds the start of every cell (the verdict stays
    on its row's line). The title and footnotes wrap too when the width is known (a terminal,
    COLUMNS or `width`); in a pipe they stay whole lines.
    """
    prose = _prose_width(width)
    width = text_width(width)
    lines_of = [table.columns, *table.rows]
    natural = [max(len(row[i]) for row in lines_of) for i in range(len(table.columns))]
    # Words stay whole while they can: first every word, then only the cells' (a header may
    # break inside a word, a figure or a verdict not), then none when even that is too wide.
    columns = range(len(table.columns))
    overhead = 4 + 3 * (len(table.columns) - 1)
    body = [max((_longest_word(row[i]) for row in table.rows), default=0) for i in columns]
    whole = [max(body[i], _longest_word(table.columns[i])) for i in columns]
    widths = natural
    for least in (whole, body, [0] * len(natural)):
        floor = [max(3, min(natural[i], least[i])) for i in columns]
        widths = _fit(lines_of, widths, floor, width - overhead)
        if sum(widths) + overhead <= width:
            break

    # Figures align right; the first column and prose (a message, a note) read from the left.
    left = [
        i == 0 or any(len(row[i].split()) >= 3 for row in table.rows)
        for i in range(len(table.columns))
    ]

    def line(cells: list[str]) -> list[str]:
        wrapped = [_wrap(cell, w) for cell, w in zip(cells, widths, strict=True)]
        height = max(len(parts) for parts in wrapped)
        out = []
        for index in range(height):
            padded = [
                (parts[index] if index < len(parts) else "").ljust(w)
                if left[column]
                else (parts[index] if index < len(parts) else "").rjust(w)
                for column, (parts, w) in enumerate(zip(wrapped, widths, strict=True))
            ]
            out.append("│ " + " │ ".join(padded) + " │")
        return out

    rule = "─┼─".join("─" * w for w in widths)
    out = wrap_lines([table.title], prose) if prose else [table.title]
    out += ["┌─" + "─┬─".join("─" * w for w in widths) + "─┐", *line(table.columns)]
    out.append("├─" + rule + "─┤")
    for row in table.rows:
        out.extend(line(row))
    out.append("└─" + "─┴─".join("─" * w for w in widths) + "─┘")
    out.extend(wrap_lines(table.footnotes, prose) if prose else table.footnotes)
    return "\n".join(out)


class Footnotes:
    """Numbers distinct warnings in the order they are first used: ¹ ² ³."""

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def mark(self, message: str) -> str:
        """The superscript for `message`, numbering it on first use."""
        number = self._numbers.setdefault(message, len(self._numbers) + 1)
        return superscript(number)

    def lines(self, *explanations: str) -> list[str]:
        """The numbered warnings, then the table's own `explanations`."""
        numbered = [f"{superscript(n)} {message}" for message, n in self._numbers.items()]
        return [*numbered, *explanations]
