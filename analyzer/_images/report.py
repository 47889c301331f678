"""The result of an image comparison: verdict counts, A/A noise statistics, tables, JSON, rules."""

from __future__ import annotations

import operator
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from traces import UsageError

from .._table import Table
from .noise import NoiseSummary
from .options import Thresholds
from .records import VERDICTS, PairResult, Rendered, RequestInfo

if TYPE_CHECKING:
    from .._rules import ImageRule

__all__ = ["VERDICTS", "ImageReport", "format_psnr", "severity_key"]

_RANK = {verdict: rank for rank, verdict in enumerate(reversed(VERDICTS))}
_ALIASES = {"layout": "layout-differs", "noise": "within-noise", "identical": "identical-bytes"}
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "=": operator.eq, "==": operator.eq, "!=": operator.ne,
}  # fmt: skip


def severity_key(pair: PairResult) -> tuple[int, float, str, int, int]:
    """Most severe first; within a verdict, the largest excess over the A/A distance first."""
    d_ab, d_aa = pair.d_ab, pair.d_aa
    excess = (d_ab - (d_aa or 0.0)) if d_ab is not None else 0.0
    return (_RANK[pair.verdict], -excess, pair.request_id, pair.loop, pair.output)


def _pct(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "-"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_psnr(pair: PairResult) -> str:
    m = pair.metrics
    if m is None:
        return "inf" if pair.verdict == "identical-bytes" else "-"
    return "inf" if m.psnr is None else f"{m.psnr:.1f}"


@dataclass
class ImageReport:
    """Everything the image comparison found; rendered by `tables()`, `to_json()` and the HTML."""

    base: str
    cand: str
    noise: str | None
    thresholds: Thresholds
    pairs: list[PairResult]
    """Sorted by severity, most severe first."""
    requests: dict[str, RequestInfo] = field(default_factory=dict)
    rendered: dict[int, Rendered] = field(default_factory=dict)
    """Pictures for the first `render_limit` pairs, by index into `pairs`."""
    assets_dir: Path | None = None
    noise_summary: NoiseSummary | None = None
    notes: list[str] = field(default_factory=list)

    def _vs(self) -> str:
        return f"{Path(self.cand).name} (B) against {Path(self.base).name} (A)"

    def counts(self) -> Counter[str]:
        """Outputs per verdict (every verdict present, zeros included)."""
        counts: Counter[str] = Counter(dict.fromkeys(VERDICTS, 0))
        counts.update(pair.verdict for pair in self.pairs)
        return counts

    def summary(self) -> list[str]:
        """One or two plain sentences for the top of a report."""
        counts = self.counts()
        total = len(self.pairs)
        if not total:
            return ["Images: no output images to compare."]
        found = ", ".join(f"{counts[v]} {v}" for v in reversed(VERDICTS) if counts[v])
        lines = [f"Images: {total} outputs compared: {found}."]
        if self.noise_summary is not None:
            lines.append(f"Images against A/A noise: {self.noise_summary.verdict}.")
        return lines

    def violation(self, rule: ImageRule) -> str | None:
        """Why `rule` (e.g. images:changed>5%) is broken, or None when it holds."""
        verdict = _ALIASES.get(rule.verdict, rule.verdict).replace("_", "-")
        if verdict not in VERDICTS:
            raise UsageError(
                f"unknown image verdict {rule.verdict!r} in --fail-on: use one of "
                f"{', '.join(VERDICTS)}"
            )
        if rule.op not in _OPS:
            raise UsageError(
                f"unknown comparison {rule.op!r} in --fail-on: use one of {' '.join(_OPS)}"
            )
        count = self.counts()[verdict]
        total = len(self.pairs)
        observed = 100 * count / total if (rule.percent and total) else float(count)
        if rule.percent and not total:
            observed = 0.0
        if not _OPS[rule.op](observed, rule.value):
            return None
        unit = "%" if rule.percent else ""
        return (
            f"images: {count} of {total} outputs are {verdict} ({_pct(count, total)}), "
            f"breaking images:{verdict}{rule.op}{rule.value:g}{unit}"
        )

    # -- tables ----------------------------------------------------------------------------

    def tables(self) -> list[Table]:
        tables = [self._verdict_table()]
        if self.noise_summary is not None:
            tables.append(self._noise_table(self.noise_summary))
        severe = [p for p in self.pairs if _RANK[p.verdict] <= _RANK["within-noise"]]
        if severe:
            tables.append(self._severe_table(severe[:10], len(severe)))
        return tables

    def _verdict_columns(self) -> list[str]:
        return [v for v in VERDICTS if v != "within-noise" or self.noise is not None]

    def _verdict_table(self) -> Table:
        verdicts = self._verdict_columns()
        by_class: dict[str, Counter[str]] = defaultdict(Counter)
        for pair in self.pairs:
            by_class[pair.request_class][pair.verdict] += 1
        rows: list[list[str]] = []
        classes: list[str] = []
        groups = sorted(by_class.items())
        if len(groups) != 1:
            groups.append(("all", self.counts()))
        for name, counts in groups:
            total = sum(counts.values())
            rows.append([name, str(total), *[str(counts[v]) for v in verdicts]])
            bad = sum(counts[v] for v in ("changed", "layout-differs", "missing", "undecodable"))
            classes.append("changed" if bad else "same")
        th = self.thresholds
        notes = [
            f"visually identical: colour cast at most {th.visual_max_cast:g} and every 8x8 window "
            f"at most {th.visual_max_local:g} (CIEDE2000), SSIM at least {th.visual_min_ssim:g}, "
            f"pHash distance at most {th.visual_max_phash} bits",
        ]
        if th.visual_max_block_ratio < 1:
            notes.append(
                f"... and at most {th.visual_max_block_ratio * 100:g}% of any 16x16 block over "
                f"the YIQ threshold {th.yiq_threshold:g}"
            )
        if self.noise is None:
            notes.append(
                "no A/A noise run: 'changed' includes the model's own nondeterminism; replay the "
                "base configuration a second time and pass it with --noise BASE2"
            )
        notes.extend(self.notes)
        return Table(
            title=f"Output images: {self._vs()} (outputs per verdict)",
            columns=["class", "outputs", *[v.replace("-", " ") for v in verdicts]],
            rows=rows, footnotes=notes, row_classes=classes,
        )  # fmt: skip

    def _noise_table(self, s: NoiseSummary) -> Table:
        p = self.thresholds.noise_quantile
        ci = (
            f" [{_num(s.delta_lo, '+.4f')}, {_num(s.delta_hi, '+.4f')}]"
            if s.delta is not None
            else ""
        )
        rows = [
            ["determinism (A vs A')",
             f"{s.aa_pixel_identical} of {s.aa_pairs} outputs pixel-identical "
             f"({_pct(s.aa_pixel_identical, s.aa_pairs)}), {s.aa_bytes_identical} byte-identical"],
            ["A/A distance 1-SSIM", f"median {_num(s.aa_median, '.4f')}, p{p * 100:g} "
                                    f"{_num(s.aa_band, '.4f')}"],
            ["delta = d(A,B) - d(A,A')", f"{_num(s.delta, '+.4f')}{ci} (Hodges-Lehmann, "
                                         f"{s.requests} requests)"],
            ["paired tests", f"Wilcoxon p={_num(s.wilcoxon_p, '.3g')}, "
                             f"sign p={_num(s.sign_p, '.3g')} "
                             f"({s.positive} up, {s.negative} down)"],
            ["changed share", f"B {s.changed_share_b * 100:.1f}% vs A' "
                              f"{s.changed_share_aa * 100:.1f}% -> "
                              f"{'flagged' if s.gate else 'not flagged'}"],
            ["verdict", s.verdict],
        ]  # fmt: skip
        th = self.thresholds
        return Table(
            title=f"Output images: {self._vs()}, against the A/A noise",
            columns=["measure", "value"],
            rows=rows,
            footnotes=[
                f"gate: flagged when B's changed share exceeds the A/A share by more than "
                f"{th.gate_absolute * 100:g} points and {th.gate_relative * 100:g}% relative",
            ],
            row_classes=["changed" if s.gate else "same"] * len(rows),
        )

    def _severe_table(self, pairs: list[PairResult], total: int) -> Table:
        rows = []
        for pair in pairs:
            m = pair.metrics
            rows.append([
                pair.request_id if not pair.loop else f"{pair.request_id} (loop {pair.loop})",
                str(pair.output), pair.verdict, format_psnr(pair),
                _num(m.ssim if m else None, ".4f"), _num(m.phash if m else None, "d"),
                _num(m.cast if m else None, ".1f"), _num(m.local if m else None, ".1f"),
                _num(m.diff_ratio * 100 if m else None, ".3f"),
                _num(pair.d_aa, ".4f"), pair.reason,
            ])  # fmt: skip
        notes = (
            [f"{total - len(pairs)} more in the JSON and HTML output"] if total > len(pairs) else []
        )
        return Table(
            title=f"Output images: {self._vs()}, most severe",
            columns=["request", "out", "verdict", "PSNR dB", "SSIM", "pHash", "cast dE",
                     "local dE", "diff px %",
                     "A/A 1-SSIM", "note"],
            rows=rows, footnotes=notes,
            row_classes=[p.verdict for p in pairs],
        )  # fmt: skip

    # -- JSON ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        by_class: dict[str, Counter[str]] = defaultdict(Counter)
        for pair in self.pairs:
            by_class[pair.request_class][pair.verdict] += 1
        return {
            "base": self.base,
            "cand": self.cand,
            "noise": self.noise,
            "thresholds": msgspec.to_builtins(self.thresholds),
            "counts": dict(self.counts()),
            "by_class": {name: dict(counts) for name, counts in sorted(by_class.items())},
            "noise_summary": msgspec.to_builtins(self.noise_summary),
            "notes": list(self.notes),
            "pairs": [_pair_json(pair) for pair in self.pairs],
        }


def _pair_json(pair: PairResult) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(pair)
    data["d_ab"] = pair.d_ab
    data["d_aa"] = pair.d_aa
    return data
