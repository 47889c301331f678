"""Formatting numbers for people, and rendering a `Table` as terminal text."""

from __future__ import annotations

import math

from ._table import Table

__all__ = [
    "Footnotes",
    "fmt_count",
    "fmt_duration",
    "fmt_p",
    "fmt_percent",
    "fmt_ratio_ci",
    "render_text",
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


def render_text(table: Table) -> str:
    """Box-drawn text: the title, a header row, the rows, then numbered footnotes."""
    widths = [len(column) for column in table.columns]
    for row in table.rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(width) if index == 0 else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "│ " + " │ ".join(padded) + " │"

    rule = "─┼─".join("─" * width for width in widths)
    out = [table.title, "┌─" + "─┬─".join("─" * w for w in widths) + "─┐", line(table.columns)]
    out.append("├─" + rule + "─┤")
    out.extend(line(row) for row in table.rows)
    out.append("└─" + "─┴─".join("─" * w for w in widths) + "─┘")
    out.extend(table.footnotes)
    return "\n".join(out)


class Footnotes:
    """Numbers distinct warnings in the order they are first used: ¹ ² ³."""

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def mark(self, message: str) -> str:
        """The superscript for `message`, numbering it on first use."""
        number = self._numbers.setdefault(message, len(self._numbers) + 1)
        return superscript(number)

    def lines(self) -> list[str]:
        return [f"{superscript(number)} {message}" for message, number in self._numbers.items()]
