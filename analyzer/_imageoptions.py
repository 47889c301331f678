"""The image comparison's options: its thresholds.

Kept apart from the comparison itself so that building the command line does not import numpy
or Pillow (`imgtrace --help` stays fast); the flags are in `imgtrace._commands`.
"""

from __future__ import annotations

import msgspec

__all__ = ["Thresholds"]


class Thresholds(msgspec.Struct, frozen=True, kw_only=True):
    """Defaults documented in docs/analyzing.md (Images); every one has a flag."""

    yiq_threshold: float = 0.1
    visual_max_block_ratio: float = 0.25
    visual_min_ssim: float = 0.995
    visual_max_phash: int = 2
    noise_quantile: float = 0.95
    gate_relative: float = 0.20
    gate_absolute: float = 0.005
    alpha: float = 0.05
    max_pixels: int = 40_000_000
    render_limit: int = 200
