"""The flags of the image comparison (`compare`) and the thresholds they ask for.

The ranges are checked here, in the flags' own units (percent where the flag says PCT).
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Any, NamedTuple

from analyzer._images.options import Thresholds
from traces import UsageError

from ._shared import add_switch

__all__ = ["add_image_arguments", "thresholds_from_args"]


class _Threshold(NamedTuple):
    """One threshold flag: the `Thresholds` field it sets and the range it takes."""

    flag: str
    field: str
    metavar: str
    low: float
    high: float
    help: str
    """Its help, with `{}` (and a format spec) where the default goes."""
    percent: bool = False
    """The flag is in percent, the field a fraction."""


_THRESHOLDS = (
    _Threshold(
        "--image-threshold",
        "yiq_threshold",
        "T",
        0.0,
        1.0,
        "per-pixel YIQ colour threshold, 0..1, as in pixelmatch (default {})",
    ),
    _Threshold(
        "--visual-cast",
        "visual_max_cast",
        "DE",
        0.0,
        100.0,
        "visually identical: colour cast (mean CIEDE2000 over 32x32-pixel blocks) at most DE "
        "(default {:g})",
    ),
    _Threshold(
        "--visual-local",
        "visual_max_local",
        "DE",
        0.0,
        100.0,
        "visually identical: CIEDE2000 of every 8x8-pixel window at most DE, 1-pixel shifts "
        "forgiven (default {:g})",
    ),
    _Threshold(
        "--visual-density",
        "visual_max_block_ratio",
        "PCT",
        0.0,
        100.0,
        "visually identical: at most PCT %% of the pixels of any 16x16 block over the YIQ "
        "threshold; 0 allows no differing pixel, 100 turns the rule off (default {:g})",
        percent=True,
    ),
    _Threshold(
        "--visual-ssim",
        "visual_min_ssim",
        "S",
        -1.0,
        1.0,
        "visually identical: SSIM at least S (default {})",
    ),
    _Threshold(
        "--visual-phash",
        "visual_max_phash",
        "BITS",
        0,
        64,
        "visually identical: pHash distance at most BITS of 64 (default {})",
    ),
    _Threshold(
        "--noise-margin",
        "noise_margin",
        "X",
        1.0,
        100.0,
        "with --noise: a changed output is within noise when each measure that changed it is "
        "at most X times the same measure between A and A' of its own request (default {:g})",
    ),
    _Threshold(
        "--noise-quantile",
        "noise_quantile",
        "Q",
        0.0,
        1.0,
        "with --noise: the quantile of the A/A distances shown as the noise band (default {})",
    ),
    _Threshold(
        "--gate-relative",
        "gate_relative",
        "PCT",
        0.0,
        100.0,
        "with --noise: flag B only if its changed share exceeds the A/A share by this "
        "relative margin (default {:g})",
        percent=True,
    ),
    _Threshold(
        "--gate-absolute",
        "gate_absolute",
        "PCT",
        0.0,
        100.0,
        "... and by this many percentage points (default {:g})",
        percent=True,
    ),
    _Threshold(
        "--image-max-pixels",
        "max_pixels",
        "N",
        1,
        math.inf,
        "refuse to decode images larger than N pixels: verdict 'undecodable' (decompression "
        "bomb) (default {:,})",
    ),
    _Threshold(
        "--image-rows",
        "render_limit",
        "N",
        0,
        math.inf,
        "HTML report: draw pictures for the N most severe outputs (default {})",
    ),
)


def _dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the image comparison (defaults in docs/analyzing.md, Images)."""
    defaults = Thresholds()
    group = parser.add_argument_group("image comparison")
    if "--no-images" not in parser._option_string_actions:
        add_switch(group, "--no-images", "skip the comparison of output images (latency only)")
    for threshold in _THRESHOLDS:
        default = getattr(defaults, threshold.field)
        if threshold.percent:
            default *= 100
        group.add_argument(
            threshold.flag,
            type=type(default),
            default=default,
            metavar=threshold.metavar,
            help=threshold.help.format(default),
        )
    add_switch(
        group,
        "--full-images",
        "HTML report: write the original images beside it, not downscaled JPEG views",
    )
    if "--jobs" not in parser._option_string_actions:
        group.add_argument(
            "--jobs",
            type=int,
            default=os.cpu_count() or 1,
            metavar="N",
            help="worker processes for the image comparison (default: all cores)",
        )


def thresholds_from_args(args: argparse.Namespace) -> Thresholds:
    """The thresholds the flags ask for; `UsageError` when one is out of range."""
    fields: dict[str, Any] = {"full_images": args.full_images}
    for threshold in _THRESHOLDS:
        value = getattr(args, _dest(threshold.flag))
        if not threshold.low <= value <= threshold.high:
            raise UsageError(
                f"{threshold.flag} {value} is out of range: give a value from "
                f"{threshold.low} to {threshold.high}"
            )
        fields[threshold.field] = value / 100 if threshold.percent else value
    return Thresholds(**fields)
