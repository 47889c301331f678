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

Colours are kept as channel planes (see `cielab`). Block sums are integers, exact in float32, so
every mean is the correctly rounded one whatever the order of the additions, and the linear light
of a window's mean comes from a table. The conversion runs on 65,536 windows of a 1024x1024
picture, not on a million pixels; CIEDE2000 only on the windows that a cheap upper bound cannot
rule out (`ciede2000_bound`), and the shift tolerance only on those over the threshold: a few
milliseconds per pair, with the figures of the whole computation.
"""

from __future__ import annotations

import functools

import msgspec
import numpy as np
import numpy.typing as npt

from .cielab import (
    F32,
    ciede2000,
    ciede2000_bound,
    ciede2000_planes,
    lab_from_linear,
    lab_planes,
    srgb_linear,
    srgb_to_lab,
)

__all__ = [
    "BLOCK",
    "ColourDifference",
    "ciede2000",
    "colour_difference",
    "local_map",
    "srgb_to_lab",
    "window_offset",
]

U8 = npt.NDArray[np.uint8]

BLOCK = 4
"""Side in pixels of the blocks whose means are compared; windows are 2x2 blocks (8x8 px)."""
_COARSE = 8  # blocks per side of a cast block: 32x32 pixels
_SHIFTS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
_STILL = _SHIFTS.index((0, 0))
_CHUNK = 4096  # windows checked at a time: bounds the temporary arrays; more use every window
_PEAK_PROBES = 64  # windows whose exact value gives the local peak a floor
# Adds the BLOCK pixels of a row of a block, per channel: (R, G, B) x (BLOCK pixels x RGB).
_ROW_OF_BLOCK = np.tile(np.eye(3, dtype=np.float32), BLOCK)
_MEAN_OF_BLOCK = _ROW_OF_BLOCK.T / np.float32(BLOCK * BLOCK)
_WINDOW_PIXELS = (2 * BLOCK) ** 2
# Linear light of every mean of 64 code values, which every window of whole blocks has: a table
# lookup instead of a power per window and channel, with the very same values.
_LINEAR_OF_SUM = srgb_linear(np.arange(255 * _WINDOW_PIXELS + 1) / np.float32(_WINDOW_PIXELS))


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


def _block_means(rgb: U8) -> F32:
    """Means of BLOCK x BLOCK pixels as planes (3, rows, cols); partial blocks at the edges
    average what they hold."""
    height, width = rgb.shape[:2]
    rows, cols = _block_count(height, width)
    if (height, width) != (rows * BLOCK, cols * BLOCK):
        padded = np.zeros((rows * BLOCK, cols * BLOCK, 3), dtype=np.uint8)
        padded[:height, :width] = rgb
        rgb = padded
    strip = np.add(rgb[0::BLOCK], rgb[1::BLOCK], dtype=np.uint16)
    for k in range(2, BLOCK):
        strip += rgb[k::BLOCK]
    # The columns of each block by one small matrix product, exact: sums below 2**24, and the
    # 1/16 of a whole block's mean is a power of two.
    pixels = strip.reshape(-1, 3 * BLOCK).astype(np.float32)
    if (height, width) == (rows * BLOCK, cols * BLOCK):
        means = pixels @ _MEAN_OF_BLOCK
        result: F32 = np.ascontiguousarray(means.T).reshape(3, rows, cols)
        return result
    sums = np.ascontiguousarray((pixels @ _ROW_OF_BLOCK.T).T).reshape(3, rows, cols)
    tall = np.minimum(BLOCK, height - BLOCK * np.arange(rows)).astype(np.float32)
    wide = np.minimum(BLOCK, width - BLOCK * np.arange(cols)).astype(np.float32)
    result = np.divide(sums, np.outer(tall, wide), dtype=np.float32)
    return result


def _window_side(means: F32) -> int:
    """Side in pixels of the windows of `_windows(means)`: single blocks in a thin picture."""
    return BLOCK if means.shape[1] < 2 or means.shape[2] < 2 else 2 * BLOCK


def _windows(means: F32) -> F32:
    """Means of 2x2 blocks at a one-block stride (8x8 pixels every 4 pixels)."""
    if _window_side(means) == BLOCK:
        return means
    total = means[:, :-1, :-1] + means[:, 1:, :-1]
    total += means[:, :-1, 1:]
    total += means[:, 1:, 1:]
    total *= np.float32(0.25)
    return total


def _window_lab(means: F32, whole_blocks: bool) -> F32:
    """CIELAB planes of the windows of `means` (blocks all of BLOCK x BLOCK pixels, or not)."""
    windows = _windows(means)
    if not whole_blocks or _window_side(means) == BLOCK:
        return lab_planes(windows)
    sums = (windows * np.float32(_WINDOW_PIXELS)).astype(np.intp)  # exact: k / 64 times 64
    return lab_from_linear(_LINEAR_OF_SUM.take(sums))


def _whole_blocks(image: U8) -> bool:
    return bool(image.shape[0] % BLOCK == 0 and image.shape[1] % BLOCK == 0)


def _coarse(means: F32) -> F32:
    if means.shape[1] < _COARSE or means.shape[2] < _COARSE:
        result: F32 = means.mean(axis=(1, 2), keepdims=True, dtype=np.float32)
        return result
    h = means.shape[1] // _COARSE * _COARSE
    w = means.shape[2] // _COARSE * _COARSE
    # Rows of blocks first (adding whole rows is fast), then the columns of the narrower result.
    strips = means[:, :h, :w].reshape(3, h // _COARSE, _COARSE, w).sum(axis=2)
    blocks = strips.reshape(3, h // _COARSE, w // _COARSE, _COARSE).sum(axis=3)
    result = blocks * np.float32(1 / (_COARSE * _COARSE))
    return result


def _moved_near(
    image: U8, rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp], side: int
) -> F32:
    """Sums (3, shifts, windows) of the given windows moved by each of `_SHIFTS` (edges
    repeated), from their neighbourhoods alone: the cost follows the number of windows."""
    height, width = image.shape[:2]
    span = np.arange(-1, side + 1)[:, None]
    ys = np.clip(rows * BLOCK + span, 0, height - 1)
    xs = np.clip(cols * BLOCK + span, 0, width - 1)
    # The neighbourhoods' pixels, pixel position first: (neighbourhood pixels, windows, RGB).
    where = (ys[:, None, :] * width + xs[None, :, :]).reshape(-1, len(rows))
    pixels = image.reshape(-1, 3)[where].reshape(len(where), -1).astype(np.float32)
    # Every shift's sum at once, as one matrix product: exact, the sums stay below 2**24.
    sums = _shift_masks(side) @ pixels
    result: F32 = sums.reshape(len(_SHIFTS), len(rows), 3).transpose(2, 0, 1)
    return result


@functools.cache
def _shift_masks(side: int) -> F32:
    """Which pixels of a (side + 2)^2 neighbourhood each shifted window holds: (shifts, pixels)."""
    masks = np.zeros((len(_SHIFTS), side + 2, side + 2), dtype=np.float32)
    for index, (dy, dx) in enumerate(_SHIFTS):
        masks[index, 1 + dy : 1 + dy + side, 1 + dx : 1 + dx + side] = 1
    return masks.reshape(len(_SHIFTS), -1)


def _moved_everywhere(image: U8, side: int) -> F32:
    """Sums (3, shifts, window rows, window cols) of every window moved by each of `_SHIFTS`
    (edges repeated): block sums of the picture at each one-pixel offset, as `_block_means`
    makes them. Cheaper than `_moved_near` once thousands of windows are checked."""
    height, width = image.shape[:2]
    rows, cols = _block_count(height, width)
    pad = ((1, BLOCK * rows + 1 - height), (1, BLOCK * cols + 1 - width), (0, 0))
    padded = np.pad(image, pad, mode="edge")  # padded[y + 1, x + 1] is pixel (y, x), clipped
    span = side // BLOCK  # blocks per window side
    out = np.empty((3, len(_SHIFTS), rows - span + 1, cols - span + 1), dtype=np.float32)
    for dy in (-1, 0, 1):
        top = 1 + dy
        strip = np.add(
            padded[top : top + BLOCK * rows : BLOCK],
            padded[top + 1 : top + 1 + BLOCK * rows : BLOCK],
            dtype=np.uint16,
        )
        for k in range(2, BLOCK):
            strip += padded[top + k : top + k + BLOCK * rows : BLOCK]
        if span == 2:
            strip = strip[:-1] + strip[1:]
        for dx in (-1, 0, 1):
            left = 1 + dx
            pixels = strip[:, left : left + BLOCK * cols].reshape(-1, 3 * BLOCK)
            sums = (pixels.astype(np.float32) @ _ROW_OF_BLOCK.T).reshape(len(strip), cols, 3)
            if span == 2:
                sums = sums[:, :-1] + sums[:, 1:]
            out[:, _SHIFTS.index((dy, dx))] = sums.transpose(2, 0, 1)
    return out


def _moved_lab(sums: F32, side: int) -> F32:
    """CIELAB of windows of side x side pixels from their sums: each mean is one of 64 code
    values too (side 4 or 8), so the linear light comes from the table."""
    index = sums.astype(np.intp) * (_WINDOW_PIXELS // (side * side))
    return lab_from_linear(_LINEAR_OF_SUM.take(index))


def _shift_tolerant(
    a: U8, b: U8, rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp], side: int
) -> F32:
    """The least CIEDE2000 of the given windows when A or B moves by up to one pixel.

    Moving either image (not only B) keeps the windows at the borders fair: there, the pixels
    one image shifted out exist only in the other.
    """
    everywhere = [_moved_everywhere(x, side) for x in (a, b)] if len(rows) > _CHUNK else None
    best = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), _CHUNK):
        part = slice(start, start + _CHUNK)
        if everywhere is None:
            sums = [_moved_near(x, rows[part], cols[part], side) for x in (a, b)]
        else:
            sums = [moved[:, :, rows[part], cols[part]] for moved in everywhere]
        moved_a, moved_b = (_moved_lab(x, side) for x in sums)
        # One call for both: A still against B moved, then A moved against B still.
        still_a = np.broadcast_to(moved_a[:, _STILL : _STILL + 1], moved_a.shape)
        still_b = np.broadcast_to(moved_b[:, _STILL : _STILL + 1], moved_b.shape)
        first = np.concatenate([still_a, moved_a], axis=1)
        second = np.concatenate([moved_b, still_b], axis=1)
        best[part] = ciede2000_planes(first, second).min(axis=0)
    return best


def window_offset(local: F32, height: int, width: int) -> int:
    """Pixels from the picture's corner to the centre block of the first window of `local`."""
    return 0 if local.shape[:2] == _block_count(height, width) else BLOCK // 2


def _block_count(height: int, width: int) -> tuple[int, int]:
    return -(-height // BLOCK), -(-width // BLOCK)


def local_map(a: U8, b: U8, *, local_threshold: float) -> F32:
    """CIEDE2000 of every 8x8 window (every 4 pixels), the windows over the threshold forgiven
    1-pixel shifts: the local rule's own view, for the report's heatmap."""
    return _local(a, b, _block_means(a), _block_means(b), local_threshold)


def _local(a: U8, b: U8, means_a: F32, means_b: F32, local_threshold: float) -> F32:
    whole = _whole_blocks(a)
    local = ciede2000_planes(_window_lab(means_a, whole), _window_lab(means_b, whole))
    rows, cols = np.nonzero(local > local_threshold)
    if len(rows):
        local[rows, cols] = _shift_tolerant(a, b, rows, cols, _window_side(means_a))
    return local


def _largest(values: F32, count: int) -> npt.NDArray[np.intp]:
    """Indices of the `count` largest of `values` (all of them when there are fewer)."""
    if values.size <= count:
        return np.arange(values.size)
    return np.argpartition(values, -count)[-count:]


def _local_peak(
    a: U8, b: U8, means_a: F32, means_b: F32, local_threshold: float
) -> tuple[float, npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """(largest value, rows, cols of the windows over the threshold) of `_local`'s map, with
    CIEDE2000 computed only for the windows whose upper bound leaves them open.

    The windows with the largest bounds under the threshold give the peak a floor: their exact
    values are final (no shift tolerance under the threshold). A window whose bound is at most
    that floor can neither be the peak nor be over the threshold. Where the pictures differ
    little or only locally, that leaves a few percent of the windows to compute.
    """
    whole = _whole_blocks(a)
    windows_a = _window_lab(means_a, whole)
    width = windows_a.shape[2]
    lab_a = windows_a.reshape(3, -1)
    lab_b = _window_lab(means_b, whole).reshape(3, -1)
    bound = ciede2000_bound(lab_a, lab_b)
    under = np.where(bound <= local_threshold, bound, -1)
    probes = _largest(under, _PEAK_PROBES)
    probes = probes[under[probes] >= 0]
    floor = float(ciede2000_planes(lab_a[:, probes], lab_b[:, probes]).max(initial=0.0))
    candidates = np.flatnonzero(bound > floor)
    if 2 * candidates.size > bound.size:  # a change everywhere: gathering would cost more
        candidates = np.arange(bound.size)
        exact = ciede2000_planes(lab_a, lab_b)
    else:
        exact = ciede2000_planes(lab_a[:, candidates], lab_b[:, candidates])
    over = exact > local_threshold
    if over.any():
        rows, cols = np.divmod(candidates[over], width)
        exact[over] = _shift_tolerant(a, b, rows, cols, _window_side(means_a))
    peak = max(floor, float(exact.max()) if exact.size else 0.0)
    rows, cols = np.divmod(candidates[exact > local_threshold], width)
    return peak, rows, cols


def colour_difference(a: U8, b: U8, *, local_threshold: float) -> ColourDifference:
    """The colour difference of two same-sized 8-bit RGB images."""
    means_a, means_b = _block_means(a), _block_means(b)
    cast = ciede2000_planes(lab_planes(_coarse(means_a)), lab_planes(_coarse(means_b)))
    peak, over_rows, over_cols = _local_peak(a, b, means_a, means_b, local_threshold)
    box = None
    if len(over_rows):
        side = _window_side(means_a)
        height, width = a.shape[:2]
        box = (
            int(over_cols.min()) * BLOCK,
            int(over_rows.min()) * BLOCK,
            min(width, int(over_cols.max()) * BLOCK + side),
            min(height, int(over_rows.max()) * BLOCK + side),
        )
    return ColourDifference(
        cast=float(cast.mean()), local=peak, local_windows=len(over_rows), local_box=box
    )
