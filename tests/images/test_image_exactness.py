"""The fast paths of the image measures give the figures of the plain, float64 computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from images_support import png, scene
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

from analyzer._images import colour
from analyzer._images.cielab import ciede2000, ciede2000_bound
from analyzer._images.colour import BLOCK, colour_difference, local_map
from analyzer._images.metrics import decode_image, pair_metrics, small_gray


def _polar(lightness: np.ndarray, chroma: np.ndarray, hue_degrees: np.ndarray) -> np.ndarray:
    hue = np.radians(hue_degrees)
    return np.stack([lightness, chroma * np.cos(hue), chroma * np.sin(hue)], axis=-1)


def test_ciede2000_agrees_with_scikit_image_where_hues_are_delicate() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    hue = rng.uniform(0, 360, n)
    # Hues nearly opposite (but not exactly: there the definition itself jumps), a quarter
    # turn apart, nearly equal; greys and colours of no chroma at all.
    apart = rng.choice([179.9, 180.05, 180.2, 90.0, 0.01, 33.0], n)
    first = _polar(rng.uniform(0, 100, n), rng.uniform(0, 80, n), hue)
    second = _polar(rng.uniform(0, 100, n), rng.uniform(0, 80, n), hue + apart)
    second[::7, 1:] = 0.0
    first[::11, 1:] = rng.normal(0, 1e-3, (len(first[::11]), 2))
    ours = ciede2000(first.astype(np.float32), second.astype(np.float32))
    theirs = deltaE_ciede2000(first, second)
    assert np.abs(ours - theirs).max() < 2e-3


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(0, 100), min_size=3, max_size=3),
    st.lists(st.floats(-128, 128), min_size=2, max_size=2),
    st.lists(st.floats(-30, 30), min_size=3, max_size=3),
)
def test_the_bound_is_never_under_ciede2000(
    lab: list[float], chroma: list[float], step: list[float]
) -> None:
    first = np.array([lab[0], chroma[0], chroma[1]])
    second = first + np.array(step)
    exact = float(deltaE_ciede2000(first, second))
    planes = [np.asarray(x, dtype=np.float32).reshape(3, 1) for x in (first, second)]
    assert float(ciede2000_bound(planes[0], planes[1])[0]) >= exact


def _pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(4)
    found = []
    for height, width in ((256, 256), (131, 203), (9, 300)):
        a = np.ascontiguousarray(scene(max(height, width, 64), seed=height)[:height, :width])
        patched = a.copy()
        patched[4:16, 40:52] = 255 - patched[4:16, 40:52]
        noisy = np.clip(a.astype(np.int16) + rng.integers(-3, 4, a.shape), 0, 255)
        shifted = np.pad(a, ((1, 0), (1, 0), (0, 0)), mode="edge")[:height, :width]
        found += [
            ("patch", a, patched),
            ("noise", a, noisy.astype(np.uint8)),
            ("patch and noise", a, np.clip(noisy + patched - a, 0, 255).astype(np.uint8)),
            ("shift", a, np.ascontiguousarray(shifted)),
            ("cast", a, np.clip(a.astype(np.int16) + [0, 0, 9], 0, 255).astype(np.uint8)),
            ("another picture", a, rng.integers(0, 256, a.shape).astype(np.uint8)),
        ]
    return found


@pytest.mark.parametrize("probes", [1, 64])
@pytest.mark.parametrize(("name", "a", "b"), _pairs(), ids=[p[0] for p in _pairs()])
def test_the_local_rule_computed_where_needed_gives_the_whole_map_s_figures(
    name: str, a: np.ndarray, b: np.ndarray, probes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One probe leaves the most windows to the bound alone: the hardest case for the pruning.
    monkeypatch.setattr(colour, "_PEAK_PROBES", probes)
    whole = local_map(a, b, local_threshold=5)
    result = colour_difference(a, b, local_threshold=5)
    rows, cols = np.nonzero(whole > 5)
    assert result.local == float(whole.max())
    assert result.local_windows == len(rows)
    if len(rows):
        assert result.local_box is not None
        assert result.local_box[:2] == (int(cols.min()) * BLOCK, int(rows.min()) * BLOCK)


def test_the_peak_is_found_where_the_bound_is_not_largest(monkeypatch: pytest.MonkeyPatch) -> None:
    # A saturated green moved by 2 in G has the largest bound (chroma differences count less in
    # CIEDE2000) but a grey lightened by 2 the largest difference: the floor from the first
    # must not hide the second.
    a = np.full((64, 64, 3), 118, np.uint8)
    a[:, :16] = (40, 200, 30)
    b = a.copy()
    b[:, :16, 1] += 2
    b[:, 16:] += 2
    monkeypatch.setattr(colour, "_PEAK_PROBES", 1)
    whole = local_map(a, b, local_threshold=5)
    assert float(whole[:, :3].max()) < float(whole[:, -6:].max())  # green is not the peak
    assert colour_difference(a, b, local_threshold=5).local == float(whole.max())


@pytest.mark.parametrize("size", [(256, 256), (131, 203), (9, 300), (3, 5), (30, 30), (7, 1)])
def test_windows_moved_near_and_everywhere_have_the_same_sums(size: tuple[int, int]) -> None:
    image = np.random.default_rng(size[0]).integers(0, 256, (*size, 3)).astype(np.uint8)
    means = colour._block_means(image)
    side = colour._window_side(means)
    everywhere = colour._moved_everywhere(image, side)
    assert everywhere.shape[2:] == colour._windows(means).shape[1:]
    rows, cols = np.divmod(np.arange(everywhere[0, 0].size), everywhere.shape[3])
    near = colour._moved_near(image, rows, cols, side)
    assert np.array_equal(near, everywhere.reshape(near.shape))
    # Each is the sum of the window moved over the picture with its edges repeated.
    padded = np.pad(image.astype(np.int64), ((1, side), (1, side), (0, 0)), mode="edge")
    for index in np.random.default_rng(1).integers(0, len(rows), 20):
        top, left = rows[index] * BLOCK + 1, cols[index] * BLOCK + 1
        for shift, (dy, dx) in enumerate(colour._SHIFTS):
            window = padded[top + dy : top + dy + side, left + dx : left + dx + side]
            assert list(near[:, shift, index]) == list(window.sum(axis=(0, 1)))


def _reference_means(pixels: np.ndarray, side: int, stride: int) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(pixels.astype(np.float64), (side, side, 3))
    return windows[::stride, ::stride, 0].mean(axis=(2, 3))


def test_colour_figures_agree_with_a_float64_reference() -> None:
    a = scene(256, seed=12)
    rng = np.random.default_rng(12)
    shifted = a.astype(np.int16) + rng.integers(-4, 5, a.shape) + np.array([3, 0, -2])
    b = np.clip(shifted, 0, 255).astype(np.uint8)
    result = colour_difference(a, b, local_threshold=5)
    assert result.local_windows == 0  # no shift tolerance: the plain maximum
    ref = [rgb2lab(_reference_means(x, 32, 32) / 255) for x in (a, b)]
    assert result.cast == pytest.approx(float(deltaE_ciede2000(*ref).mean()), abs=2e-3)
    ref = [rgb2lab(_reference_means(x, 8, 4) / 255) for x in (a, b)]
    theirs = deltaE_ciede2000(*ref)
    # scikit-image's white and matrix differ from IEC 61966-2-1's in the 4th digit.
    assert result.local == pytest.approx(float(theirs.max()), abs=5e-3)
    assert np.abs(local_map(a, b, local_threshold=5) - theirs).max() < 5e-3


@pytest.mark.parametrize("size", [(1024, 1024), (768, 1536), (1536, 1536), (4608, 4608)])
def test_the_grey_for_ssim_is_pillow_s_reduce_bit_for_bit(size: tuple[int, int]) -> None:
    pixels = np.random.default_rng(size[0]).integers(0, 256, size).astype(np.uint8)
    gray = Image.fromarray(pixels)
    factor = max(1, round(min(size) / 256))
    expected = np.asarray(gray.convert("F").reduce(factor), dtype=np.float32)
    assert np.array_equal(small_gray(gray), expected)


def test_psnr_is_exact_for_the_largest_differences() -> None:
    black = np.zeros((300, 301, 3), np.uint8)
    white = black.copy()
    white[::2] = 255  # every other row: mse = 255^2 / 2 exactly
    metrics = pair_metrics(
        decode_image(png(black), max_pixels=10**7),
        decode_image(png(white), max_pixels=10**7),
        threshold=0.1,
    )
    assert metrics.psnr == pytest.approx(10 * math.log10(2), abs=1e-12)
