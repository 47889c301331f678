"""Diff pictures: a pixelmatch-style mask, a heatmap of local colour difference, thumbnails."""

from __future__ import annotations

import io
import math

import numpy as np
import numpy.typing as npt
from PIL import Image

from .colour import BLOCK, window_offset
from .pixels import F32, U8, yiq_delta

__all__ = [
    "CHANGED",
    "DARKER",
    "diff_mask",
    "encode_jpeg",
    "encode_png",
    "heatmap",
    "mask_thumbnail",
    "thumbnail",
]

CHANGED = (255, 0, 0)
"""Mask colour of a changed pixel."""
DARKER = (0, 64, 255)
"""Mask colour of a changed pixel that is darker in B than in A."""
_FADE = 0.1  # how much of the original grey survives in the mask (pixelmatch's `alpha`)

# A few stops of matplotlib's "inferno", interpolated to 256 entries: dark = alike,
# bright = dissimilar. Kept here so workers need not import matplotlib.
_STOPS = np.array(
    [
        [0, 0, 4],
        [40, 11, 84],
        [101, 21, 110],
        [159, 42, 99],
        [212, 72, 66],
        [245, 125, 21],
        [250, 193, 39],
        [252, 255, 164],
    ],
    dtype=np.float32,
)
_LUT = np.stack(
    [
        np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_STOPS)), _STOPS[:, c])
        for c in range(3)
    ],
    axis=1,
).astype(np.uint8)


_FADED = [round(255 - (255 - v) * _FADE) for v in range(256)]


def _faded_grey(rgb: U8) -> Image.Image:
    """A grey copy of the picture faded towards white, as an RGB image (all in Pillow, in C)."""
    return Image.fromarray(rgb).convert("L").point(_FADED).convert("RGB")


# The mask as a palette image: faded greys never go below 229, so indices 0 and 1 are free
# for the two change colours. One byte per pixel encodes several times faster than RGB.
_MASK_PALETTE = bytes([*CHANGED, *DARKER] + [v for v in range(2, 256) for _ in range(3)])


def diff_mask(a: U8, delta: F32, limit: float) -> Image.Image:
    """A faded grey copy of `a` with changed pixels red, and blue where B is darker."""
    index = np.array(Image.fromarray(a).convert("L").point(_FADED))
    changed = np.abs(delta) > limit
    index[changed & (delta >= 0)] = 0
    index[changed & (delta < 0)] = 1
    mask = Image.fromarray(index)
    mask.putpalette(_MASK_PALETTE)
    return mask


def heatmap(a: U8, local: F32, limit: float) -> Image.Image:
    """The local rule's view: CIEDE2000 per 8x8 window, coloured (inferno) over a grey `a`.

    Dark is alike; the local threshold `limit` is the middle of the scale, twice it is the
    brightest yellow, so what the verdict calls a local change stands out.
    """
    height, width = a.shape[:2]
    level = np.clip(local / (2 * max(limit, 1e-6)), 0.0, 1.0)
    small = Image.fromarray((np.sqrt(level) * 255).astype(np.uint8))
    offset = window_offset(local, height, width)
    size = (max(1, min(width, local.shape[1] * BLOCK)), max(1, min(height, local.shape[0] * BLOCK)))
    stretched = Image.new("L", (width, height), 0)
    stretched.paste(small.resize(size, Image.Resampling.BILINEAR), (offset, offset))
    colour = stretched.copy()
    colour.putpalette(_LUT.tobytes())  # an L image with a palette: grey levels index the LUT
    weight = stretched.point([round(255 * (0.25 + 0.65 * v / 255)) for v in range(256)])
    return Image.composite(colour.convert("RGB"), _faded_grey(a), weight)


def thumbnail_size(height: int, width: int, max_side: int) -> tuple[int, int, int]:
    """(step, thumb height, thumb width): each thumbnail pixel covers step x step pixels."""
    step = max(1, math.ceil(max(height, width) / max_side))
    return step, math.ceil(height / step), math.ceil(width / step)


def thumbnail(rgb: U8, max_side: int) -> Image.Image:
    """A box-filtered thumbnail whose longer side is at most `max_side`."""
    _, th, tw = thumbnail_size(rgb.shape[0], rgb.shape[1], max_side)
    return Image.fromarray(rgb).resize((tw, th), Image.Resampling.BOX)


def _block_any(flags: npt.NDArray[np.bool_], step: int) -> npt.NDArray[np.bool_]:
    h, w = flags.shape
    padded = np.zeros((math.ceil(h / step) * step, math.ceil(w / step) * step), dtype=bool)
    padded[:h, :w] = flags
    blocks = padded.reshape(padded.shape[0] // step, step, padded.shape[1] // step, step)
    result: npt.NDArray[np.bool_] = np.asarray(blocks.any(axis=(1, 3)), dtype=bool)
    return result


def mask_thumbnail(a: U8, b: U8, limit: float, max_side: int) -> tuple[Image.Image, Image.Image]:
    """The full-size mask and a thumbnail in which no changed pixel is averaged away."""
    delta = yiq_delta(a, b)
    full = diff_mask(a, delta, limit)
    step, _, _ = thumbnail_size(a.shape[0], a.shape[1], max_side)
    small = np.array(thumbnail(np.asarray(full.convert("RGB")), max_side))
    changed = np.abs(delta) > limit
    darker_blocks = _block_any(changed & (delta < 0), step)
    changed_blocks = _block_any(changed & (delta >= 0), step)
    small[darker_blocks] = DARKER
    small[changed_blocks] = CHANGED
    return full, Image.fromarray(small)


def encode_jpeg(image: Image.Image, quality: int = 82) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)  # masks are flat: fast and still small
    return buffer.getvalue()
