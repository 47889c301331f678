"""The flags of the image comparison (`compare`) and the thresholds they ask for.

The ranges are checked here, in the flags' own units (percent where the flag says PCT).
"""

from __future__ import annotations

import argparse
import math
import os

from analyzer._images.options import Thresholds
from traces import UsageError

__all__ = ["add_image_arguments", "thresholds_from_args"]


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the image comparison (defaults in docs/analyzing.md, Images)."""
    d = Thresholds()
    group = parser.add_argument_group("image comparison")
    if "--no-images" not in parser._option_string_actions:
        group.add_argument(
            "--no-images",
            action="store_true",
            help="skip the comparison of output images (latency only)",
        )
    group.add_argument(
        "--image-threshold",
        type=float,
        default=d.yiq_threshold,
        metavar="T",
        help=f"per-pixel YIQ colour threshold, 0..1, as in pixelmatch (default {d.yiq_threshold})",
    )
    group.add_argument(
        "--visual-cast",
        type=float,
        default=d.visual_max_cast,
        metavar="DE",
        help="visually identical: colour cast (mean CIEDE2000 over 32x32-pixel blocks) at most "
        f"DE (default {d.visual_max_cast:g})",
    )
    group.add_argument(
        "--visual-local",
        type=float,
        default=d.visual_max_local,
        metavar="DE",
        help="visually identical: CIEDE2000 of every 8x8-pixel window at most DE, 1-pixel "
        f"shifts forgiven (default {d.visual_max_local:g})",
    )
    group.add_argument(
        "--visual-density",
        type=float,
        default=d.visual_max_block_ratio * 100,
        metavar="PCT",
        help="visually identical: at most PCT %% of the pixels of any 16x16 block "
        "over the YIQ threshold; 0 allows no differing pixel, 100 turns the rule off "
        f"(default {d.visual_max_block_ratio * 100:g})",
    )
    group.add_argument(
        "--visual-ssim",
        type=float,
        default=d.visual_min_ssim,
        metavar="S",
        help=f"visually identical: SSIM at least S (default {d.visual_min_ssim})",
    )
    group.add_argument(
        "--visual-phash",
        type=int,
        default=d.visual_max_phash,
        metavar="BITS",
        help="visually identical: pHash distance at most BITS of 64 "
        f"(default {d.visual_max_phash})",
    )
    group.add_argument(
        "--noise-margin",
        type=float,
        default=d.noise_margin,
        metavar="X",
        help="with --noise: a changed output is within noise when each measure that changed it "
        "is at most X times the same measure between A and A' of its own request "
        f"(default {d.noise_margin:g})",
    )
    group.add_argument(
        "--noise-quantile",
        type=float,
        default=d.noise_quantile,
        metavar="Q",
        help="with --noise: the quantile of the A/A distances shown as the noise band "
        f"(default {d.noise_quantile})",
    )
    group.add_argument(
        "--gate-relative",
        type=float,
        default=d.gate_relative * 100,
        metavar="PCT",
        help="with --noise: flag B only if its changed share exceeds the A/A "
        f"share by this relative margin (default {d.gate_relative * 100:g})",
    )
    group.add_argument(
        "--gate-absolute",
        type=float,
        default=d.gate_absolute * 100,
        metavar="PCT",
        help=f"... and by this many percentage points (default {d.gate_absolute * 100:g})",
    )
    group.add_argument(
        "--image-max-pixels",
        type=int,
        default=d.max_pixels,
        metavar="N",
        help="refuse to decode images larger than N pixels: verdict "
        f"'undecodable' (decompression bomb) (default {d.max_pixels:,})",
    )
    group.add_argument(
        "--image-rows",
        type=int,
        default=d.render_limit,
        metavar="N",
        help=f"HTML report: draw pictures for the N most severe outputs (default {d.render_limit})",
    )
    group.add_argument(
        "--full-images",
        action="store_true",
        help="HTML report: write the original images beside it, not downscaled JPEG views",
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
    checks: list[tuple[str, float, float, float]] = [
        ("--image-threshold", args.image_threshold, 0.0, 1.0),
        ("--visual-cast", args.visual_cast, 0.0, 100.0),
        ("--visual-local", args.visual_local, 0.0, 100.0),
        ("--visual-density", args.visual_density, 0.0, 100.0),
        ("--visual-ssim", args.visual_ssim, -1.0, 1.0),
        ("--visual-phash", args.visual_phash, 0, 64),
        ("--noise-margin", args.noise_margin, 1.0, 100.0),
        ("--noise-quantile", args.noise_quantile, 0.0, 1.0),
        ("--gate-relative", args.gate_relative, 0.0, 100.0),
        ("--gate-absolute", args.gate_absolute, 0.0, 100.0),
        ("--image-max-pixels", args.image_max_pixels, 1, math.inf),
        ("--image-rows", args.image_rows, 0, math.inf),
    ]
    for flag, value, low, high in checks:
        if not low <= value <= high:
            raise UsageError(f"{flag} {value} is out of range: give a value from {low} to {high}")
    return Thresholds(
        yiq_threshold=args.image_threshold,
        visual_max_cast=args.visual_cast,
        visual_max_local=args.visual_local,
        visual_max_block_ratio=args.visual_density / 100,
        visual_min_ssim=args.visual_ssim,
        visual_max_phash=args.visual_phash,
        noise_margin=args.noise_margin,
        noise_quantile=args.noise_quantile,
        gate_relative=args.gate_relative / 100,
        gate_absolute=args.gate_absolute / 100,
        max_pixels=args.image_max_pixels,
        render_limit=args.image_rows,
        full_images=args.full_images,
    )
