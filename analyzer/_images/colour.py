"""The perceptual colour difference: CIEDE2000 between block means of two images, in numpy.

The eye does not see single pixels: it integrates over a small area, which is why zero-mean
pixel noise (a GPU's, a codec's) is invisible while a colour cast or a dense edit of a few pixels
is not. So both images are reduced to means of 4x4 pixels (in sRGB code values, as the display
shows them), converted to CIELAB (D65) and compared with CIEDE2000 (Sharma, Wu and Dalal 2005):

- **cast:** the mean CIEDE2000 over 32x32-pixel blocks, for a change of the whole picture or a
  large part of it; at this scale noise has averaged away and a 1-pixel shift barely moves a
  block mean;
- **local:** the largest CIEDE2000 over 8x8-pixel windows placed every 4 pixels, so that any
  dense 8x8 region of the picture covers most of one window. A window over the local threshold
  is then compared again with B moved by up to one pixel in each direction: a 1-pixel shift of
  the whole picture (resampling, a crop and pad) is no edit, an added stroke or patch stays.

The cost is a few milliseconds for a 1024x1024 pair: the colour conversion runs on 65,536 block
means, not on a million pixels.
"""

from __future__ import annotations

import msgspec
import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = [
    "BLOCK",
    "ColourDifference",
    "ciede2000",
    "colour_difference",
    "local_map",
    "srgb_to_lab",
    "window_offset",
]

F64 = npt.NDArray[np.float32]
"""Colours and differences in float32: ample for differences of 0.01 and twice as fast."""
U8 = npt.NDArray[np.uint8]

BLOCK = 4
"""Side in pixels of the blocks whose means are compared; windows are 2x2 blocks (8x8 px)."""
_COARSE = 8  # blocks per side of a cast block: 32x32 pixels
_SHIFTS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
_CHUNK = 4096  # windows checked at a time: bounds the temporary neighbourhood arrays

# sRGB primaries to CIE XYZ with the D65 white (IEC 61966-2-1), and that white.
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ],
    dtype=np.float32,
)
_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)


class ColourDifference(msgspec.Struct, frozen=True, kw_only=True):
    """How far apart two same-sized images are in colour, in CIEDE2000 units (1 is about a JND)."""

    cast: float
    """Mean CIEDE2000 over 32x32-pixel blocks."""
    local: float
    """Largest CIEDE2000 over 8x8-pixel windows, after forgiving 1-pixel shifts."""
    local_windows: int
    """Windows over the local threshold after the shift tolerance."""
    local_box: tuple[int, int, int, int] | None = None
    """Where those windows are: (left, top, right, bottom) in pixels, right and bottom excluded."""


def srgb_to_lab(rgb: F64) -> F64:
    """CIELAB (D65) of sRGB code values 0..255 (any shape ending in 3)."""
    c = np.asarray(rgb, dtype=np.float32) / np.float32(255.0)
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = (linear @ _RGB_TO_XYZ.T) / _WHITE
    eps = (6 / 29) ** 3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    result: F64 = lab
    return result


def ciede2000(lab1: F64, lab2: F64) -> F64:
    """CIEDE2000 colour difference (kL = kC = kH = 1) of two arrays of CIELAB colours."""
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    c7 = c_mean**7
    g = 0.5 * (1 - np.sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    chroma_zero = (c1p * c2p) == 0
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(chroma_zero, 0.0, dh)
    d_l = l2 - l1
    d_c = c2p - c1p
    d_h = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_mean = (l1 + l2) / 2
    cp_mean = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(
        np.abs(h1p - h2p) <= 180,
        h_sum / 2,
        np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2),
    )
    h_mean = np.where(chroma_zero, h_sum, h_mean)
    t = (
        1
        - 0.17 * np.cos(np.radians(h_mean - 30))
        + 0.24 * np.cos(np.radians(2 * h_mean))
        + 0.32 * np.cos(np.radians(3 * h_mean + 6))
        - 0.20 * np.cos(np.radians(4 * h_mean - 63))
    )
    l50 = (l_mean - 50) ** 2
    s_l = 1 + 0.015 * l50 / np.sqrt(20 + l50)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    cp7 = cp_mean**7
    r_c = 2 * np.sqrt(cp7 / (cp7 + 25.0**7))
    r_t = -np.sin(np.radians(60 * np.exp(-(((h_mean - 275) / 25) ** 2)))) * r_c
    dl, dc, dhh = d_l / s_l, d_c / s_c, d_h / s_h
    result: F64 = np.sqrt(dl * dl + dc * dc + dhh * dhh + r_t * dc * dhh)
    return result


def _block_means(rgb: U8) -> F64:
    """Means of BLOCK x BLOCK pixels (partial blocks at the edges average what they hold)."""
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., c])).convert("F").reduce(BLOCK))
        for c in range(3)
    ]
    return np.stack(channels, axis=-1)


def _windows(means: F64) -> F64:
    """Means of 2x2 blocks at a one-block stride (8x8 pixels every 4 pixels)."""
    if means.shape[0] < 2 or means.shape[1] < 2:
        return means
    total = means[:-1, :-1] + means[1:, :-1] + means[:-1, 1:] + means[1:, 1:]
    result: F64 = total * np.float32(0.25)
    return result


def _coarse(means: F64) -> F64:
    h = max(1, means.shape[0] // _COARSE) * _COARSE
    w = max(1, means.shape[1] // _COARSE) * _COARSE
    if means.shape[0] < _COARSE or means.shape[1] < _COARSE:
        result: F64 = means.mean(axis=(0, 1), keepdims=True)
        return result
    blocks = means[:h, :w].reshape(h // _COARSE, _COARSE, w // _COARSE, _COARSE, 3)
    result = blocks.mean(axis=(1, 3))
    return result


def _moved_windows(
    image: U8, rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp], side: int
) -> list[F64]:
    """CIELAB of the mean of each window moved by each of `_SHIFTS` (edges repeated).

    Only the neighbourhood of each window is read, so the cost follows the number of windows
    checked (few, unless the pictures differ everywhere), not the size of the picture.
    """
    height, width = image.shape[:2]
    span = np.arange(-1, side + 1)
    ys = np.clip(rows[:, None] * BLOCK + span, 0, height - 1)
    xs = np.clip(cols[:, None] * BLOCK + span, 0, width - 1)
    patches = image[ys[:, :, None], xs[:, None, :]].astype(np.float32)
    return [
        srgb_to_lab(patches[:, 1 + dy : 1 + dy + side, 1 + dx : 1 + dx + side].mean(axis=(1, 2)))
        for dy, dx in _SHIFTS
    ]


def _shift_tolerant(
    a: U8, b: U8, rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp], side: int
) -> F64:
    """The least CIEDE2000 of the given windows when A or B moves by up to one pixel.

    Moving either image (not only B) keeps the windows at the borders fair: there, the pixels
    one image shifted out exist only in the other.
    """
    best = np.full(len(rows), np.inf, dtype=np.float32)
    for start in range(0, len(rows), _CHUNK):
        part = slice(start, start + _CHUNK)
        moved_a = _moved_windows(a, rows[part], cols[part], side)
        moved_b = _moved_windows(b, rows[part], cols[part], side)
        still = _SHIFTS.index((0, 0))
        lab_a, lab_b = moved_a[still], moved_b[still]
        least = ciede2000(lab_a, lab_b)
        for index in range(len(_SHIFTS)):
            if index != still:
                least = np.minimum(least, ciede2000(lab_a, moved_b[index]))
                least = np.minimum(least, ciede2000(moved_a[index], lab_b))
        best[part] = least
    return best


def window_offset(local: F64, height: int, width: int) -> int:
    """Pixels from the picture's corner to the centre block of the first window of `local`."""
    return 0 if local.shape[:2] == _block_count(height, width) else BLOCK // 2


def _block_count(height: int, width: int) -> tuple[int, int]:
    return -(-height // BLOCK), -(-width // BLOCK)


def local_map(a: U8, b: U8, *, local_threshold: float) -> F64:
    """CIEDE2000 of every 8x8 window (every 4 pixels), the windows over the threshold forgiven
    1-pixel shifts: the local rule's own view, for the report's heatmap."""
    return _local(a, b, _block_means(a), _block_means(b), local_threshold)


def _local(a: U8, b: U8, means_a: F64, means_b: F64, local_threshold: float) -> F64:
    windows_a = _windows(means_a)
    lab_a = srgb_to_lab(windows_a)
    local = ciede2000(lab_a, srgb_to_lab(_windows(means_b)))
    rows, cols = np.nonzero(local > local_threshold)
    if len(rows):
        side = BLOCK if windows_a.shape == means_a.shape else 2 * BLOCK
        local[rows, cols] = _shift_tolerant(a, b, rows, cols, side)
    return local


def colour_difference(a: U8, b: U8, *, local_threshold: float) -> ColourDifference:
    """The colour difference of two same-sized 8-bit RGB images."""
    means_a, means_b = _block_means(a), _block_means(b)
    cast = float(ciede2000(srgb_to_lab(_coarse(means_a)), srgb_to_lab(_coarse(means_b))).mean())
    local = _local(a, b, means_a, means_b, local_threshold)
    over_rows, over_cols = np.nonzero(local > local_threshold)
    box = None
    if len(over_rows):
        side = BLOCK if local.shape[:2] == means_a.shape[:2] else 2 * BLOCK
        height, width = a.shape[:2]
        box = (
            int(over_cols.min()) * BLOCK,
            int(over_rows.min()) * BLOCK,
            min(width, int(over_cols.max()) * BLOCK + side),
            min(height, int(over_rows.max()) * BLOCK + side),
        )
    peak = float(local.max()) if local.size else 0.0
    return ColourDifference(cast=cast, local=peak, local_windows=len(over_rows), local_box=box)
