"""Synthetic reference images: deterministic, the right size and format, photo-like statistics."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from recorder._photos import edit_mask, encode_image, photo, photo_bytes
from traces import sniff_media_type


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_same_generator_same_bytes() -> None:
    assert photo_bytes(rng(1), 96, 64, "png") == photo_bytes(rng(1), 96, 64, "png")
    assert photo_bytes(rng(1), 96, 64, "png") != photo_bytes(rng(2), 96, 64, "png")


@pytest.mark.parametrize(
    ("fmt", "media"), [("png", "image/png"), ("jpeg", "image/jpeg"), ("webp", "image/webp")]
)
def test_formats_and_sizes(fmt: str, media: str) -> None:
    data = photo_bytes(rng(3), 120, 80, fmt)
    assert sniff_media_type(data) == media
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (120, 80) and image.mode == "RGB"


def test_compresses_like_a_photograph_not_like_noise() -> None:
    size = 256
    noise = Image.fromarray(rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")
    bits = size * size / 8
    for seed in range(3):
        image = photo(rng(seed), size, size)
        jpeg_bpp = len(encode_image(image, "jpeg")) / bits
        png_bpp = len(encode_image(image, "png")) / bits
        # Photographs: about 0.5-4 bits per pixel as JPEG q90, far under noise (about 7).
        assert 0.3 < jpeg_bpp < 4
        assert jpeg_bpp < len(encode_image(noise, "jpeg")) / bits / 3
        assert png_bpp < len(encode_image(noise, "png")) / bits * 0.7
        pixels = np.asarray(image, dtype=np.float64).mean(axis=2)
        # Neighbouring pixels agree (smooth regions), yet the image is not flat.
        correlation = np.corrcoef(pixels[:, :-1].ravel(), pixels[:, 1:].ravel())[0, 1]
        assert correlation > 0.9
        assert pixels.std() > 10


def test_mask_is_transparent_where_the_edit_goes() -> None:
    with Image.open(io.BytesIO(edit_mask(rng(1), 80, 60))) as mask:
        assert mask.format == "PNG" and mask.mode == "RGBA" and mask.size == (80, 60)
        alpha = np.asarray(mask)[:, :, 3]
    assert 0.02 < (alpha == 0).mean() < 0.9
    assert set(np.unique(alpha)) <= {0, 255}


def test_bad_sizes_and_formats() -> None:
    with pytest.raises(ValueError, match="positive"):
        photo(rng(1), 0, 10)
    with pytest.raises(ValueError, match="png, jpeg or webp"):
        photo_bytes(rng(1), 10, 10, "gif")
