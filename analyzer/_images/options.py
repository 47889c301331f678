"""The image comparison's options: its thresholds.

Kept apart from the comparison itself so that building the command line does not import numpy
or Pillow (`imgtrace --help` stays fast); the flags are in `imgtrace._commands`.
"""

from __future__ import annotations

import math

import msgspec

from traces import UsageError

__all__ = ["ImageThresholds", "Thresholds"]


class Thresholds(msgspec.Struct, frozen=True, kw_only=True):
    """Defaults documented in docs/analyzing.md (Images); every one has a flag."""

    yiq_threshold: float = 0.1
    visual_max_cast: float = 2.0
    """Colour cast: mean CIEDE2000 over 32x32-pixel blocks; the unexperienced observer's
    threshold for two colours side by side, near the perceptibility of a colour shift of a
    whole picture (docs/analyzing.md, Thresholds)."""
    visual_max_local: float = 5.0
    """Local change: CIEDE2000 of any 8x8-pixel window; two clearly different colours."""
    visual_min_ssim: float = 0.95
    visual_max_phash: int = 5
    visual_max_block_ratio: float = 1.0
    """Share of a 16x16 block over the YIQ threshold; 1 (the default) turns the rule off."""
    noise_margin: float = 1.5
    """Within noise: every measure that made B 'changed' is at most this many times the same
    measure between A and A' of the same request."""
    noise_quantile: float = 0.95
    gate_relative: float = 0.20
    gate_absolute: float = 0.005
    alpha: float = 0.05
    max_pixels: int = 40_000_000
    render_limit: int = 200
    full_images: bool = False
    """HTML report: write the original images beside it; by default downscaled JPEG views, which
    keep a report of hundreds of rows small (the comparison itself always reads the originals)."""

    def __post_init__(self) -> None:
        for name, low, high in _RANGES:
            value = getattr(self, name)
            if not low <= value <= high:
                raise UsageError(
                    f"image threshold {name}={value} is out of range: give a value from "
                    f"{low} to {high}"
                )


_RANGES: list[tuple[str, float, float]] = [
    ("yiq_threshold", 0.0, 1.0),
    ("visual_max_cast", 0.0, 100.0),
    ("visual_max_local", 0.0, 100.0),
    ("visual_min_ssim", -1.0, 1.0),
    ("visual_max_phash", 0, 64),
    ("visual_max_block_ratio", 0.0, 1.0),
    ("noise_margin", 1.0, 100.0),
    ("noise_quantile", 0.0, 1.0),
    ("gate_relative", 0.0, 1.0),
    ("gate_absolute", 0.0, 1.0),
    ("alpha", 0.0, 1.0),
    ("max_pixels", 1, math.inf),
    ("render_limit", 0, math.inf),
]


ImageThresholds = Thresholds
"""The public name of the thresholds."""
