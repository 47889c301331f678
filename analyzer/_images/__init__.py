"""The image comparison: output images of two runs, judged against a human eye and A/A noise.

Where each part lives:

- `options`: the thresholds (`ImageThresholds`), which check themselves (no numpy);
- `metrics`: decoding with limits, PSNR, SSIM, hashes, the YIQ delta;
- `colour`: the perceptual colour difference (CIELAB, CIEDE2000 per block);
- `verdict`: **the verdict of one output pair** (the ladder) and the per-request noise rule;
- `noise`: the run-level judgement against the A/A noise (paired test, gate);
- `records`: the small structs that cross between processes (`PairResult`, `ImageInfo`);
- `state`, `work`: the per-request work in worker processes (decoding, matching, metrics);
- `render`, `pictures`: the HTML report's pictures (mask, heatmap, thumbnails);
- `report`: `ImageReport`: tables, JSON, `--fail-on` rules;
- `compare`: `compare_run_images`, which reads the runs and drives the workers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compare import compare_run_images
    from .noise import NoiseSummary
    from .options import ImageThresholds
    from .report import VERDICTS, ImageReport

__all__ = [
    "VERDICTS",
    "ImageReport",
    "ImageThresholds",
    "NoiseSummary",
    "compare_run_images",
]

_LAZY = {
    "VERDICTS": ".report",
    "ImageReport": ".report",
    "ImageThresholds": ".options",
    "NoiseSummary": ".noise",
    "compare_run_images": ".compare",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'analyzer._images' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
