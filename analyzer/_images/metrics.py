"""Image metrics in numpy: decoding with limits, PSNR, SSIM, perceptual hashes, YIQ colour delta.

Every metric works on 8-bit RGB arrays (H x W x 3). Transparent images are composited over a
checkerboard first, so a change hidden by alpha in one image and not the other still shows.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from .colour import colour_difference
from .pixels import BLOCK, F32, MAX_DELTA, U8, max_yiq_delta, pixel_differences

__all__ = [
    "DecodedImage",
    "ImageDecodeError",
    "PairMetrics",
    "decode_image",
    "downscale_factor",
    "hamming",
    "luma",
    "pair_metrics",
    "small_gray",
    "ssim",
    "ssim_map",
]


_LUMA = np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)  # Wang's rgb2gray weights
_CHUNK_ROWS = 128  # rows per slice: bounds temporary float arrays for large images


def _dct_matrix(n: int) -> npt.NDArray[np.float64]:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    return np.cos(np.pi * k * (2 * x + 1) / (2 * n))


_DCT32 = _dct_matrix(32)


def _gaussian_taps(size: int = 11, sigma: float = 1.5) -> npt.NDArray[np.float32]:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    taps = np.exp(-(x * x) / (2 * sigma * sigma))
    result: npt.NDArray[np.float32] = (taps / taps.sum()).astype(np.float32)
    return result


_TAPS = _gaussian_taps()


class ImageDecodeError(Exception):
    """An output that cannot be compared: undecodable bytes or a decompression bomb."""


@dataclass(frozen=True)
class DecodedImage:
    """A decoded output: what it was on the wire, its RGB pixels and its hashes."""

    format: str
    mode: str
    width: int
    height: int
    rgb: U8
    phash: int
    dhash: int
    small_gray: F32
    """8-bit grey reduced by Wang's factor (block means): what SSIM compares."""


def decode_image(data: bytes, *, max_pixels: int) -> DecodedImage:
    """Decode PNG/JPEG/WebP bytes; `ImageDecodeError` for anything unreadable or too large.

    The size is checked from the header before any pixel is decoded, so a tiny file that claims
    100,000 x 100,000 pixels costs nothing.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError(_bomb_message(width, height, max_pixels))
            image.load()
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        width, height = _claimed_size(data)
        raise ImageDecodeError(_bomb_message(width, height, max_pixels)) from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image in a format Pillow can read") from None
    except Exception as exc:  # Pillow raises many types for corrupt data; all mean "undecodable"
        raise ImageDecodeError(f"damaged image data ({type(exc).__name__}: {exc})") from None
    fmt = image.format or "unknown"
    mode = image.mode
    rgb_image = _flatten(image)
    gray = rgb_image.convert("L")
    return DecodedImage(
        small_gray=small_gray(gray),
        format=fmt,
        mode=mode,
        width=width,
        height=height,
        rgb=np.asarray(rgb_image, dtype=np.uint8),
        phash=_phash(gray),
        dhash=_dhash(gray),
    )


def _claimed_size(data: bytes) -> tuple[int, int]:
    # Only for the message: Pillow refused to open the file, so read the PNG header by hand.
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return 0, 0


def _bomb_message(width: int, height: int, max_pixels: int) -> str:
    size = f"{width}x{height} " if width else ""
    return (
        f"decompression bomb: claims {size}pixels, over the limit of {max_pixels:,} "
        "(raise it with --image-max-pixels if the image is genuine)"
    )


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited over an 8-pixel grey checkerboard."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB") if image.mode != "RGB" else image
    rgba = image.convert("RGBA")
    ys, xs = np.indices((rgba.height, rgba.width))
    board = np.where(((ys // 8 + xs // 8) % 2) == 0, 255, 204).astype(np.uint8)
    backdrop = Image.fromarray(np.dstack([board, board, board, np.full_like(board, 255)]))
    return Image.alpha_composite(backdrop, rgba).convert("RGB")


def small_gray(gray: Image.Image) -> F32:
    """Grey at Wang's scale. Like his reference code, it starts from 8-bit grey (Pillow's
    rounded Rec. 601 luma) and averages factor x factor blocks in floating point."""
    return _scaled_grey(np.asarray(gray))


def _scaled_grey(pixels: U8) -> F32:
    """`small_gray` of 8-bit grey pixels: Pillow's "F" image reduced by Wang's factor."""
    factor = downscale_factor(*pixels.shape)
    if factor == 1:
        return pixels.astype(np.float32)
    if pixels.shape[0] % factor == 0 and pixels.shape[1] % factor == 0:
        return _block_means(pixels, factor)
    small = Image.fromarray(np.ascontiguousarray(pixels)).convert("F").reduce(factor)
    result: F32 = np.asarray(small, dtype=np.float32)
    return result


def _block_means(pixels: U8, factor: int) -> F32:
    """Pillow's `reduce(factor)` of the "F" image of `pixels` (whole blocks only), bit for bit:
    the same exact sums, times 1 / factor^2 in double precision, rounded to float32."""
    height, width = pixels.shape
    wide = np.uint16 if factor <= 16 else np.uint32  # room for factor rows of 255
    strip = pixels[0::factor].astype(wide)
    for k in range(1, factor):
        strip += pixels[k::factor]
    # The columns of each block by one matrix product: exact, the sums stay below 2**24.
    sums = strip.reshape(-1, factor).astype(np.float32) @ np.ones(factor, dtype=np.float32)
    means = sums.astype(np.float64) * (1.0 / (factor * factor))
    result: F32 = means.astype(np.float32).reshape(height // factor, width // factor)
    return result


def _bits_to_int(bits: npt.NDArray[np.bool_]) -> int:
    return int.from_bytes(np.packbits(bits.ravel()).tobytes(), "big")


def _phash(gray: Image.Image) -> int:
    """64-bit pHash: 32x32 grey, 2-D DCT, 8x8 low frequencies above their median."""
    small = gray.resize((32, 32), Image.Resampling.LANCZOS, reducing_gap=3.0)
    pixels = np.asarray(small, dtype=np.float64)
    low = (_DCT32 @ pixels @ _DCT32.T)[:8, :8]
    return _bits_to_int(low > np.median(low))


def _dhash(gray: Image.Image) -> int:
    """64-bit dHash: sign of the horizontal gradient on a 9x8 grey thumbnail."""
    small = gray.resize((9, 8), Image.Resampling.LANCZOS, reducing_gap=3.0)
    pixels = np.asarray(small, dtype=np.int16)
    return _bits_to_int(pixels[:, 1:] > pixels[:, :-1])


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes."""
    return (a ^ b).bit_count()


def luma(rgb: U8) -> F32:
    """Luma (Rec. 601 weights, as in Wang's SSIM code) as float32."""
    out: F32 = np.empty(rgb.shape[:2], dtype=np.float32)
    for start in range(0, rgb.shape[0], _CHUNK_ROWS):
        part = rgb[start : start + _CHUNK_ROWS].astype(np.float32)
        out[start : start + _CHUNK_ROWS] = part @ _LUMA
    return out


def downscale_factor(height: int, width: int) -> int:
    """Wang's factor: round(min side / 256), at least 1."""
    return max(1, round(min(height, width) / 256))


def _downscale(image: F32, factor: int) -> F32:
    """Mean of factor x factor blocks (Wang's low-pass and subsample, aligned to blocks)."""
    if factor == 1:
        return image
    h = image.shape[0] // factor * factor
    w = image.shape[1] // factor * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor)
    result: F32 = blocks.mean(axis=(1, 3), dtype=np.float32)
    return result


def _filter_valid(image: F32) -> F32:
    """Separable 11-tap Gaussian, 'valid' region only (no padding), by shifted slices."""
    n = len(_TAPS)
    rows = image.shape[0] - n + 1
    cols = image.shape[1] - n + 1
    tmp = _TAPS[0] * image[:rows]
    for k in range(1, n):
        tmp += _TAPS[k] * image[k : k + rows]
    out = _TAPS[0] * tmp[:, :cols]
    for k in range(1, n):
        out += _TAPS[k] * tmp[:, k : k + cols]
    result: F32 = out
    return result


def ssim_map(a: F32, b: F32, *, downscale: bool = True) -> F32:
    """Per-window SSIM of two luma images (Gaussian 11 / sigma 1.5, K1 0.01, K2 0.03, L 255).

    With `downscale`, both images are first reduced by Wang's factor, as his reference code
    does so that the window sees structure at a viewing-distance-like scale.
    """
    if downscale:
        factor = downscale_factor(*a.shape)
        a = _downscale(a, factor)
        b = _downscale(b, factor)
    if min(a.shape) < len(_TAPS):
        # Too small for one window: fall back to a single global window.
        a = a.astype(np.float32)
        b = b.astype(np.float32)
        value = _ssim_from_moments(
            float(a.mean()), float(b.mean()), float(a.var()), float(b.var()), _cov(a, b)
        )
        return np.full((1, 1), value, dtype=np.float32)
    return _ssim_of(_moments(a), _moments(b))


class _Moments(NamedTuple):
    """One image's part of SSIM: the image and its local (Gaussian-weighted) means, variances."""

    image: F32
    mu: F32
    var: F32


def _moments(image: F32) -> _Moments:
    mu = _filter_valid(image)
    return _Moments(image, mu, _filter_valid(image * image) - mu * mu)


def _ssim_of(a: _Moments, b: _Moments) -> F32:
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    ab = _filter_valid(a.image * b.image) - a.mu * b.mu
    numerator = (2 * a.mu * b.mu + c1) * (2 * ab + c2)
    denominator = (a.mu * a.mu + b.mu * b.mu + c1) * (a.var + b.var + c2)
    result: F32 = np.asarray(numerator / denominator, dtype=np.float32)
    return result


def _cov(a: F32, b: F32) -> float:
    return float(((a - a.mean()) * (b - b.mean())).mean())


def _ssim_from_moments(mu_a: float, mu_b: float, var_a: float, var_b: float, cov: float) -> float:
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )


def ssim(a: F32, b: F32, *, downscale: bool = True) -> float:
    """Mean SSIM of two luma images; 1.0 means identical."""
    return float(ssim_map(a, b, downscale=downscale).mean(dtype=np.float64))


class PairMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """How far apart two same-sized images are. `psnr` None means infinite (identical pixels)."""

    pixels_equal: bool
    psnr: float | None
    ssim: float
    phash: int
    dhash: int
    max_delta: float
    """Largest YIQ delta as a share of the largest possible one (0..1)."""
    diff_pixels: int
    diff_ratio: float
    max_block_ratio: float
    """Largest share of differing pixels in any 16x16 block: dense changes score high, the
    scattered speckle of a lossy re-encode scores low."""
    cast: float = 0.0
    """Colour cast: mean CIEDE2000 over 32x32-pixel blocks (see `colour`)."""
    local: float = 0.0
    """Local colour change: largest CIEDE2000 over 8x8-pixel windows, 1-pixel shifts forgiven."""
    local_windows: int = 0
    """8x8 windows over the local threshold."""
    local_box: tuple[int, int, int, int] | None = None
    """(left, top, right, bottom) pixels around those windows."""
    ssim_shifted: float | None = None
    """When SSIM was under the visual threshold: the best SSIM with B moved by up to a pixel."""
    resized: bool = False
    """True when the sizes differed and `b` was resized to `a` for SSIM (layout differs)."""

    @property
    def distance(self) -> float:
        """The scalar distance used for noise calibration: 1 - SSIM."""
        return max(0.0, 1.0 - self.ssim)


def _shifted_ssim(a: DecodedImage, b_rgb: U8) -> float:
    """The best SSIM with B moved by one pixel in any of the eight directions (edges repeated)."""
    gray = np.asarray(Image.fromarray(b_rgb).convert("L"))
    padded = np.pad(gray, 1, mode="edge")
    height, width = gray.shape
    # A's side of SSIM is the same for every move of B: computed once.
    reference = _moments(a.small_gray) if min(a.small_gray.shape) >= len(_TAPS) else None
    best = -1.0
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if (dy, dx) == (1, 1):
                continue
            moved = _scaled_grey(padded[dy : dy + height, dx : dx + width])
            if reference is None:
                value = ssim(a.small_gray, moved, downscale=False)
            else:
                value = float(_ssim_of(reference, _moments(moved)).mean(dtype=np.float64))
            best = max(best, value)
    return best


def pair_metrics(
    a: DecodedImage,
    b: DecodedImage,
    *,
    threshold: float,
    local_threshold: float = 5.0,
    min_ssim: float = 0.95,
) -> PairMetrics:
    """Every metric for two decoded images (b resized to a's size when the sizes differ).

    `local_threshold` (CIEDE2000) decides which 8x8 windows are checked again with 1-pixel
    shifts; below `min_ssim`, SSIM is also measured with B moved by one pixel.
    """
    phash = hamming(a.phash, b.phash)
    dhash = hamming(a.dhash, b.dhash)
    b_rgb = b.rgb
    b_gray = b.small_gray
    resized = (a.width, a.height) != (b.width, b.height)
    if resized:
        # Layout differs: the figures are for context, after resizing b to a's size.
        b_image = Image.fromarray(b.rgb).resize((a.width, a.height), Image.Resampling.BILINEAR)
        b_rgb = np.asarray(b_image)
        b_gray = small_gray(b_image.convert("L"))
    elif np.array_equal(a.rgb, b.rgb):
        return PairMetrics(
            pixels_equal=True, psnr=None, ssim=1.0, phash=phash, dhash=dhash,
            max_delta=0.0, diff_pixels=0, diff_ratio=0.0, max_block_ratio=0.0,
        )  # fmt: skip
    pixel = pixel_differences(a.rgb, b_rgb, max_yiq_delta(threshold))
    pixels = a.width * a.height
    mse = pixel.sse / (pixels * 3)
    colour = colour_difference(a.rgb, b_rgb, local_threshold=local_threshold)
    structure = float(ssim_map(a.small_gray, b_gray, downscale=False).mean(dtype=np.float64))
    shifted = None if structure >= min_ssim or resized else _shifted_ssim(a, b_rgb)
    return PairMetrics(
        pixels_equal=False,
        psnr=10 * math.log10(255.0 * 255.0 / mse) if mse > 0 else None,
        ssim=structure,
        phash=phash,
        dhash=dhash,
        max_delta=pixel.peak / MAX_DELTA,
        diff_pixels=pixel.diff_pixels,
        diff_ratio=pixel.diff_pixels / pixels,
        max_block_ratio=pixel.densest / (BLOCK * BLOCK),
        cast=colour.cast,
        local=colour.local,
        local_windows=colour.local_windows,
        local_box=colour.local_box,
        ssim_shifted=shifted,
        resized=resized,
    )
