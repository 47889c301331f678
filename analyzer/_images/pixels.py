"""Differences pixel by pixel: pixelmatch's YIQ delta, the differing pixels and their density.

These are the figures that see single pixels (a re-encode's speckle, one changed pixel); the
perceptual measures that average over an area are in `colour` and `metrics` (SSIM).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "BLOCK",
    "MAX_DELTA",
    "PixelDifferences",
    "max_yiq_delta",
    "pixel_differences",
    "yiq_delta",
]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

# pixelmatch's YIQ weights and the largest delta any two colours can have: a threshold t in
# 0..1 marks a pixel as different when its delta exceeds MAX_DELTA * t * t.
MAX_DELTA = 35215.0
_RGB_TO_YIQ = np.array(
    [
        [0.29889531, 0.59597799, 0.21147017],
        [0.58662247, -0.27417610, -0.52261711],
        [0.11448223, -0.32180189, 0.31114694],
    ],
    dtype=np.float32,
)
_YIQ_WEIGHTS = np.array([0.5053, 0.299, 0.1957], dtype=np.float32)
BLOCK = 16
"""Side of the blocks in which the density of differing pixels is measured."""
_CHUNK_ROWS = 64  # rows per slice (a multiple of BLOCK): the buffers stay in the cache


def yiq_delta(a: U8, b: U8) -> F32:
    """pixelmatch's perceptual colour delta per pixel, negative where `b` is darker than `a`."""
    out: F32 = np.empty(a.shape[:2], dtype=np.float32)
    for start in range(0, a.shape[0], _CHUNK_ROWS):
        stop = start + _CHUNK_ROWS
        diff = a[start:stop].astype(np.float32) - b[start:stop]
        yiq = diff @ _RGB_TO_YIQ
        delta = (yiq * yiq) @ _YIQ_WEIGHTS
        out[start:stop] = np.where(yiq[..., 0] > 0, -delta, delta)
    return out


def max_yiq_delta(threshold: float) -> float:
    """The delta above which pixelmatch counts a pixel as different, for threshold 0..1."""
    return MAX_DELTA * threshold * threshold


def _densest_block(flags: npt.NDArray[np.bool_]) -> int:
    """Most flagged pixels in one BLOCK x BLOCK block (rows of `flags` start on a block edge)."""
    h, w = flags.shape
    if h % BLOCK or w % BLOCK:
        padded = np.zeros((-(-h // BLOCK) * BLOCK, -(-w // BLOCK) * BLOCK), dtype=bool)
        padded[:h, :w] = flags
        flags = padded
    # Columns of each block first (at most 16, a byte), then the blocks along each strip.
    strips = flags.view(np.uint8).reshape(-1, BLOCK, flags.shape[1]).sum(axis=1, dtype=np.uint8)
    blocks = strips.reshape(strips.shape[0], -1, BLOCK).sum(axis=2, dtype=np.uint16)
    return int(blocks.max())


def _sum_of_squares(diff: F32) -> float:
    """The exact sum of squares of integer differences (float32 values of -255..255).

    256 squares of at most 255**2 sum to less than 2**24, so float32 adds them exactly in any
    order; only those partial sums need float64.
    """
    flat = diff.reshape(-1)
    whole = flat.size // 256 * 256
    rows = flat[:whole].reshape(-1, 256)
    total = float(np.einsum("ij,ij->i", rows, rows).sum(dtype=np.float64))
    tail = flat[whole:].astype(np.float64)
    return total + float(np.dot(tail, tail))


class PixelDifferences(NamedTuple):
    """What the pixels of two same-sized images say, before any averaging."""

    sse: float
    """Sum of squared channel differences."""
    diff_pixels: int
    """Pixels whose YIQ delta is over the threshold."""
    peak: float
    """Largest YIQ delta."""
    densest: int
    """Most differing pixels in one BLOCK x BLOCK block."""


def pixel_differences(a: U8, b: U8, limit: float) -> PixelDifferences:
    """Per-pixel figures of two same-sized images, in slices of rows through reused buffers
    (fresh arrays of this size would be mapped and faulted in anew for every operation)."""
    height, width = a.shape[:2]
    rows = min(_CHUNK_ROWS, height)
    whole_buffer = np.empty((rows, width, 3), dtype=np.int16)
    diff_buffer = np.empty((rows, width, 3), dtype=np.float32)
    yiq_buffer = np.empty_like(diff_buffer)
    delta_buffer = np.empty((rows, width), dtype=np.float32)
    flags_buffer = np.empty((rows, width), dtype=bool)
    sse = 0.0
    diff_pixels = densest = 0
    peak = 0.0
    for start in range(0, height, _CHUNK_ROWS):
        count = min(_CHUNK_ROWS, height - start)
        diff, yiq = diff_buffer[:count], yiq_buffer[:count]
        delta, flags = delta_buffer[:count], flags_buffer[:count]
        # Through int16: casting the bytes to float32 inside the subtraction is slower.
        whole = whole_buffer[:count]
        np.subtract(a[start : start + count], b[start : start + count], out=whole, dtype=np.int16)
        diff[...] = whole
        sse += _sum_of_squares(diff)
        np.matmul(diff, _RGB_TO_YIQ, out=yiq)
        np.multiply(yiq, yiq, out=yiq)
        np.matmul(yiq, _YIQ_WEIGHTS, out=delta)
        np.greater(delta, limit, out=flags)
        diff_pixels += int(np.count_nonzero(flags))
        densest = max(densest, _densest_block(flags))
        peak = max(peak, float(delta.max()))
    return PixelDifferences(sse, diff_pixels, peak, densest)
