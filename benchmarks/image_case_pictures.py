"""Draw the pictures of docs/analyzing.md's image cases (docs/img/case-*.png) and their table.

    .venv/bin/python benchmarks/image_case_pictures.py [--out docs/img]

Each picture shows A and B side by side: a 96x96 detail of a photograph (scikit-image's
astronaut) around the edit, enlarged twice with nearest-neighbour so single pixels stay
visible, quantized to 64 colours to stay small. Prints the Markdown table of the cases, with the
verdict and the figures the comparison gives for the whole 512x512 pair.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "images"))

from image_corpus import (
    Case,
    _cast,
    _inverted,
    _moved,
    _noise,
    _shift,
    _text,
    pictures,
    png,
    verdict_of,
)

from analyzer._images.metrics import decode_image, pair_metrics
from analyzer._images.options import Thresholds

DETAIL = 96


def _jpeg85(a: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, None]:
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, "JPEG", quality=85)
    return np.asarray(Image.open(buffer).convert("RGB")), None


CASES = [
    ("cast-red-10", "colour cast +10 red", _cast(0, 10)),
    ("cast-blue-40", "colour cast +40 blue", _cast(2, 40)),
    ("cast-green-2", "colour cast +2 green", _cast(1, 2)),
    ("noise-3", "noise +-3", _noise(3)),
    ("noise-30", "noise +-30", _noise(30)),
    ("inverted-8", "inverted 8x8 patch", _inverted(8)),
    ("text", "text-like strokes", _text((20, 20, 20))),
    ("moved-24", "24x24 patch moved by 10 px", _moved(24, 10)),
    ("jpeg-85", "JPEG quality 85", _jpeg85),
    ("shift-1", "whole picture moved by 1 px", _shift(1, 1)),
]


def _detail(pixels: np.ndarray, centre: tuple[int, int]) -> Image.Image:
    top = int(np.clip(centre[0] - DETAIL // 2, 0, pixels.shape[0] - DETAIL))
    left = int(np.clip(centre[1] - DETAIL // 2, 0, pixels.shape[1] - DETAIL))
    crop = Image.fromarray(pixels[top : top + DETAIL, left : left + DETAIL])
    return crop.resize((2 * DETAIL, 2 * DETAIL), Image.Resampling.NEAREST)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    th = Thresholds()
    name, a = pictures(1, 512)[0]
    print("| case | A / B (detail) | verdict | cast dE00 | local dE00 | SSIM |")
    print("|---|---|---|---|---|---|")
    for stem, title, edit in CASES:
        b, region = edit(a, np.random.default_rng(7))
        centre = (region[0] + region[2] // 2, region[1] + region[3] // 2) if region else (200, 256)
        strip = Image.new("RGB", (4 * DETAIL + 4, 2 * DETAIL), (255, 255, 255))
        strip.paste(_detail(a, centre), (0, 0))
        strip.paste(_detail(b, centre), (2 * DETAIL + 4, 0))
        small = strip.quantize(64, dither=Image.Dither.NONE)
        small.save(args.out / f"case-{stem}.png", optimize=True)
        case = Case("picture", title, name, png(a), png(b), "")
        verdict = verdict_of(case, th)
        decoded = [decode_image(data, max_pixels=10**8) for data in (case.a, case.b)]
        m = pair_metrics(decoded[0], decoded[1], threshold=th.yiq_threshold)
        ssim = max(m.ssim, m.ssim_shifted or -1.0)
        print(f"| {title} | ![{title}](img/case-{stem}.png) | `{verdict}` | {m.cast:.1f} | "
              f"{m.local:.1f} | {ssim:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
