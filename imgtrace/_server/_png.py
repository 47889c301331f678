"""A fast PNG writer for the server's outputs.

Outputs are scaled up with nearest neighbour, so most rows repeat the row above and most pixels
repeat their left neighbour. Filtering each row with "Up" when it repeats and "Sub" otherwise
turns those repeats into runs of zeros, which zlib's run-length strategy compresses at a fraction
of the cost of Pillow's adaptive filtering (about half the CPU time at 1024x1024, for the same
size). The bytes depend only on the pixels and the zlib version.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import numpy.typing as npt

__all__ = ["encode_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> grey, grey+alpha, RGB, RGBA
_FILTER_SUB, _FILTER_UP = 1, 2


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """An 8-bit PNG of `pixels` (height x width x 1-4 channels, or height x width)."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width, channels = pixels.shape
    rows = np.ascontiguousarray(pixels).reshape(height, width * channels)
    repeats = np.zeros(height, dtype=bool)
    repeats[1:] = (rows[1:] == rows[:-1]).all(axis=1)
    filtered = np.empty((height, 1 + width * channels), dtype=np.uint8)
    filtered[:, 0] = np.where(repeats, _FILTER_UP, _FILTER_SUB)
    data = filtered[:, 1:]
    data[:, :channels] = rows[:, :channels]
    np.subtract(rows[:, channels:], rows[:, :-channels], out=data[:, channels:])  # mod 256
    data[repeats] = 0  # "Up" of an identical row
    compressor = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    idat = compressor.compress(filtered.data) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[channels], 0, 0, 0)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
