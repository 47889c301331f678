"""Metric correctness: labelled pairs, SSIM against scikit-image, hashes, YIQ delta, decoding."""

from __future__ import annotations

import hashlib
import math
import struct
import zlib

import numpy as np
import pytest
from images_support import jpeg, png, scene
from PIL import Image
from skimage.metrics import structural_similarity

from analyzer._images.metrics import (
    ImageDecodeError,
    decode_image,
    downscale_factor,
    luma,
    pair_metrics,
    ssim,
)
from analyzer._images.options import Thresholds
from analyzer._images.pixels import MAX_DELTA, max_yiq_delta, yiq_delta
from analyzer._images.records import ImageInfo
from analyzer._images.verdict import ladder

LIMIT = 10**8


def _info(data: bytes) -> ImageInfo:
    image = decode_image(data, max_pixels=LIMIT)
    return ImageInfo(
        digest=hashlib.sha256(data).hexdigest(), format=image.format, mode=image.mode,
        width=image.width, height=image.height,
    )  # fmt: skip


def _verdict(a: bytes, b: bytes) -> tuple[str, float]:
    decoded_a = decode_image(a, max_pixels=LIMIT)
    decoded_b = decode_image(b, max_pixels=LIMIT)
    metrics = pair_metrics(decoded_a, decoded_b, threshold=0.1)
    return ladder(_info(a), _info(b), metrics, Thresholds())[0], metrics.ssim


def _shifted(pixels: np.ndarray, red: int) -> np.ndarray:
    return np.clip(pixels.astype(np.int16) + np.array([red, 0, 0]), 0, 255).astype(np.uint8)


def _labelled() -> dict[str, tuple[bytes, str]]:
    a = scene(512)
    rng = np.random.default_rng(5)
    lsb = np.clip(a.astype(np.int16) + rng.integers(-1, 2, a.shape), 0, 255).astype(np.uint8)
    patch = a.copy()
    patch[200:232, 200:232] = 255 - patch[200:232, 200:232]
    resized = np.asarray(Image.fromarray(a).resize((384, 384), Image.Resampling.LANCZOS))
    return {
        "identical": (png(a), "identical-bytes"),
        "png re-encoded": (png(a, compress_level=9, optimize=True), "identical-pixels"),
        "jpeg q95": (jpeg(a, 95), "visually-identical"),
        "±1 LSB noise": (png(lsb), "visually-identical"),
        "32x32 patch": (png(patch), "changed"),
        "colour shift +60 red": (png(_shifted(a, 60)), "changed"),
        "colour shift +8 red": (png(_shifted(a, 8)), "visually-identical"),
        "resize 512 -> 384": (png(resized), "layout-differs"),
    }


LABELLED = _labelled()
BASE = png(scene(512))


@pytest.mark.parametrize("name", list(LABELLED))
def test_labelled_pairs_get_their_documented_verdict(name: str) -> None:
    data, expected = LABELLED[name]
    assert _verdict(BASE, data)[0] == expected


def test_patch_is_found_exactly() -> None:
    a = decode_image(BASE, max_pixels=LIMIT)
    b = decode_image(LABELLED["32x32 patch"][0], max_pixels=LIMIT)
    metrics = pair_metrics(a, b, threshold=0.1)
    # Inverting a patch moves almost every pixel of it past the threshold, and nothing else.
    assert 0.9 * 1024 <= metrics.diff_pixels <= 1024
    assert metrics.max_block_ratio > 0.9


def test_psnr_matches_its_definition() -> None:
    a = scene(256, seed=1)
    b = np.clip(a.astype(np.int16) + np.random.default_rng(2).integers(-4, 5, a.shape), 0, 255)
    b = b.astype(np.uint8)
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    metrics = pair_metrics(
        decode_image(png(a), max_pixels=LIMIT),
        decode_image(png(b), max_pixels=LIMIT),
        threshold=0.1,
    )
    assert metrics.psnr == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)


def test_one_lsb_everywhere_is_about_48_db() -> None:
    a = scene(128)
    b = np.where(a < 255, a + 1, a - 1).astype(np.uint8)
    metrics = pair_metrics(
        decode_image(png(a), max_pixels=LIMIT),
        decode_image(png(b), max_pixels=LIMIT),
        threshold=0.1,
    )
    assert metrics.psnr == pytest.approx(48.13, abs=0.01)


def _oracle(a: np.ndarray, b: np.ndarray) -> float:
    value: float = structural_similarity(
        a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    return value


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_agrees_with_scikit_image(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = luma(scene(300, seed=seed)[:, :277])
    b = np.clip(a + rng.normal(0, 4 + 8 * seed, a.shape), 0, 255).astype(np.float32)
    assert ssim(a, b, downscale=False) == pytest.approx(_oracle(a, b), abs=1e-3)


def test_downscaled_ssim_is_scikit_image_on_block_means() -> None:
    a = luma(scene(1024, seed=3))
    b = np.clip(a + np.random.default_rng(3).normal(0, 10, a.shape), 0, 255).astype(np.float32)
    factor = downscale_factor(*a.shape)
    assert factor == 4
    small_a = a.reshape(256, 4, 256, 4).mean(axis=(1, 3))
    small_b = b.reshape(256, 4, 256, 4).mean(axis=(1, 3))
    assert ssim(a, b) == pytest.approx(_oracle(small_a, small_b), abs=1e-3)
    # Wang's downscaling hides pixel noise that full resolution sees.
    assert ssim(a, b) > ssim(a, b, downscale=False)


def test_hashes_ignore_size_and_separate_different_pictures() -> None:
    a = decode_image(BASE, max_pixels=LIMIT)
    resized = decode_image(LABELLED["resize 512 -> 384"][0], max_pixels=LIMIT)
    other = decode_image(png(scene(512, seed=9)), max_pixels=LIMIT)
    assert (a.phash ^ resized.phash).bit_count() <= 2
    assert (a.dhash ^ resized.dhash).bit_count() <= 2
    assert (a.phash ^ other.phash).bit_count() >= 10
    assert (a.dhash ^ other.dhash).bit_count() >= 10


def test_yiq_delta_scale_threshold_and_sign() -> None:
    black = np.zeros((1, 1, 3), np.uint8)
    white = np.full((1, 1, 3), 255, np.uint8)
    # Black against white differs in luma only: 0.5053 * 255^2, under the all-colour maximum.
    assert yiq_delta(black, white)[0, 0] == pytest.approx(0.5053 * 255**2, rel=1e-5)
    assert yiq_delta(white, black)[0, 0] == pytest.approx(-0.5053 * 255**2, rel=1e-5)  # B darker
    assert MAX_DELTA > 0.5053 * 255**2
    grey = np.full((1, 1, 3), 128, np.uint8)
    limit = max_yiq_delta(0.1)
    step = math.ceil(math.sqrt(limit / 0.5053) * 1.0001)  # grey step whose delta just passes
    assert (
        abs(yiq_delta(grey, grey + step - 1)[0, 0])
        <= limit
        < abs(yiq_delta(grey, grey + step)[0, 0])
    )


def test_transparency_is_composited_before_comparing() -> None:
    a = np.zeros((64, 64, 4), np.uint8)
    b = a.copy()
    b[..., 0] = 255  # a different colour, but fully transparent in both
    decoded = [decode_image(png(x), max_pixels=LIMIT) for x in (a, b)]
    assert pair_metrics(decoded[0], decoded[1], threshold=0.1).pixels_equal
    assert decoded[0].mode == "RGBA"


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))  # fmt: skip


@pytest.mark.parametrize("size", [(100_000, 100_000), (8000, 8000)])
def test_decompression_bomb_is_refused_from_the_header(size: tuple[int, int]) -> None:
    with pytest.raises(ImageDecodeError, match="decompression bomb.*--image-max-pixels"):
        decode_image(_png_claiming(*size), max_pixels=40_000_000)


def test_undecodable_bytes_give_a_clear_reason() -> None:
    with pytest.raises(ImageDecodeError, match="not an image"):
        decode_image(b"<html>502 Bad Gateway</html>", max_pixels=LIMIT)
    truncated = png(scene(64))[:200]
    with pytest.raises(ImageDecodeError, match="damaged image data"):
        decode_image(truncated, max_pixels=LIMIT)


def test_pair_ssim_is_scikit_image_on_reduced_8_bit_grey() -> None:
    a = scene(512, seed=4)
    b = np.clip(a.astype(np.int16) + np.random.default_rng(4).integers(-6, 7, a.shape), 0, 255)
    b = b.astype(np.uint8)

    def grey(pixels: np.ndarray) -> np.ndarray:
        level = np.asarray(Image.fromarray(pixels).convert("L"), dtype=np.float64)
        return level.reshape(256, 2, 256, 2).mean(axis=(1, 3))

    decoded = [decode_image(png(x), max_pixels=LIMIT) for x in (a, b)]
    metrics = pair_metrics(decoded[0], decoded[1], threshold=0.1)
    assert metrics.ssim == pytest.approx(_oracle(grey(a), grey(b)), abs=1e-3)
