"""The verdict of one output pair: the ladder, then the per-request A/A noise rule.

The ladder's visual rules (docs/analyzing.md, Thresholds) each name a measure that a human eye
would see change: a colour cast, a dense local change, a change of structure, another picture.
An output is `changed` when any of them fires, and the reason says which and by how much.
"""

from __future__ import annotations

from .metrics import PairMetrics
from .options import Thresholds
from .records import ImageInfo, PairResult

__all__ = ["apply_noise", "changes", "figures", "ladder", "within_noise"]


def figures(metrics: PairMetrics, th: Thresholds) -> dict[str, float]:
    """Each visual measure scaled so that 1.0 is its threshold: over 1 breaks the rule.

    Scaled figures let the noise rule compare A/B with A/A whatever the unit.
    """
    structure = max(metrics.ssim, metrics.ssim_shifted or -1.0)
    return {
        "cast": metrics.cast / max(th.visual_max_cast, 1e-9),
        "local": metrics.local / max(th.visual_max_local, 1e-9),
        "ssim": (1 - structure) / max(1 - th.visual_min_ssim, 1e-9),
        "phash": metrics.phash / max(th.visual_max_phash, 0.5),
        "density": metrics.max_block_ratio / max(th.visual_max_block_ratio, 1e-9),
    }


def changes(metrics: PairMetrics, th: Thresholds) -> dict[str, float]:
    """The visual rules broken, with their scaled figures."""
    return {name: value for name, value in figures(metrics, th).items() if value > 1.0}


def _describe(metrics: PairMetrics, broken: dict[str, float], th: Thresholds) -> str:
    words = {
        "cast": f"colour cast dE00 {metrics.cast:.1f} > {th.visual_max_cast:g}",
        "local": f"local dE00 {metrics.local:.1f} > {th.visual_max_local:g} "
        f"({metrics.local_windows} 8x8 windows{_where(metrics.local_box)})",
        "ssim": f"SSIM {max(metrics.ssim, metrics.ssim_shifted or -1.0):.3f} "
        f"< {th.visual_min_ssim:g}",
        "phash": f"pHash {metrics.phash} > {th.visual_max_phash}",
        "density": f"{metrics.max_block_ratio * 100:.0f}% of a 16x16 block over the YIQ "
        f"threshold > {th.visual_max_block_ratio * 100:g}%",
    }
    return "; ".join(words[name] for name in broken)


def _where(box: tuple[int, int, int, int] | None) -> str:
    return "" if box is None else f" in x {box[0]}-{box[2]}, y {box[1]}-{box[3]}"


def ladder(
    a: ImageInfo, b: ImageInfo, metrics: PairMetrics | None, thresholds: Thresholds
) -> tuple[str, str]:
    """(verdict, reason) for one pair, without the noise run."""
    if a.digest == b.digest:
        return "identical-bytes", ""
    problems = [f"{side}: {info.problem}" for side, info in (("A", a), ("B", b)) if info.problem]
    if problems or metrics is None:
        return "undecodable", "; ".join(problems) or "not decodable"
    if (a.width, a.height) != (b.width, b.height):
        return "layout-differs", f"size {a.width}x{a.height} vs {b.width}x{b.height}"
    if a.mode != b.mode:
        return "layout-differs", f"mode {a.mode} vs {b.mode}"
    note = f"format {a.format} vs {b.format}" if a.format != b.format else ""
    if metrics.pixels_equal:
        return "identical-pixels", note
    broken = changes(metrics, thresholds)
    if not broken:
        return "visually-identical", note
    return "changed", "; ".join(x for x in (_describe(metrics, broken, thresholds), note) if x)


def within_noise(pair: PairResult, th: Thresholds) -> bool:
    """Whether a `changed` output differs from A no more than A' of the same request does.

    For each rule that made B `changed`, A' must reach at least 1/margin of B's figure on that
    same rule: a local edit is not excused by an A' whose differences are a faint cast or grain,
    and noise in other requests excuses nothing.
    """
    if pair.metrics is None or pair.noise_metrics is None:
        return False
    if pair.noise_verdict in ("identical-bytes", "identical-pixels"):
        return False  # A and A' agree exactly on this request: it is deterministic, B changed it
    if pair.noise_verdict not in ("visually-identical", "changed"):
        return False
    aa = figures(pair.noise_metrics, th)
    broken = changes(pair.metrics, th)
    return all(value <= th.noise_margin * aa[name] for name, value in broken.items())


def apply_noise(
    pairs: list[PairResult], thresholds: Thresholds, has_noise: bool
) -> list[PairResult]:
    """'changed' becomes 'within-noise' when A' of the same request differs from A as much."""
    if not has_noise:
        return pairs
    for pair in pairs:
        if pair.verdict == "changed" and within_noise(pair, thresholds):
            pair.verdict = "within-noise"
    return pairs
