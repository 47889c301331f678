"""The perceptual colour difference and the rules built on it: casts, local changes, noise."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import numpy as np
import pytest
from images_support import png, scene, write_run
from skimage.color import deltaE_ciede2000, rgb2lab

from analyzer._images.colour import ciede2000, colour_difference, srgb_to_lab
from analyzer._images.metrics import decode_image, pair_metrics
from analyzer._images.options import Thresholds
from analyzer._images.records import ImageInfo, PairResult
from analyzer._images.verdict import ladder, within_noise
from traces import UsageError

Run = Callable[..., CompletedProcess[str]]


def test_cielab_and_ciede2000_agree_with_scikit_image() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (4000, 3)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 6, a.shape), 0, 255)
    # It works in float32 (as it would convert them itself); the oracle gets the float64s.
    lab_a, lab_b = srgb_to_lab(a.astype(np.float32)), srgb_to_lab(b.astype(np.float32))
    # scikit-image's D65 white and matrix differ from IEC 61966-2-1's in the 4th digit.
    assert np.abs(lab_a - rgb2lab(a[None] / 255)[0]).max() < 0.01
    ours = ciede2000(lab_a, lab_b)
    theirs = deltaE_ciede2000(lab_a.astype(np.float64), lab_b.astype(np.float64))
    assert np.abs(ours - theirs).max() < 1e-3


def test_ciede2000_on_sharma_s_published_pairs() -> None:
    # Pairs 1, 7 and 17 of Sharma, Wu and Dalal's test data (2005), with their published values.
    pairs = [
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ]
    first = np.array([p[0] for p in pairs], dtype=np.float32)
    second = np.array([p[1] for p in pairs], dtype=np.float32)
    assert ciede2000(first, second) == pytest.approx([p[2] for p in pairs], abs=2e-3)


def _cast(pixels: np.ndarray, channel: int, amount: int) -> np.ndarray:
    out = pixels.astype(np.int16)
    out[..., channel] += amount
    return np.clip(out, 0, 255).astype(np.uint8)


def test_casts_above_the_threshold_change_and_below_do_not() -> None:
    a = scene(256, seed=3)
    for channel in range(3):
        assert colour_difference(a, _cast(a, channel, 30), local_threshold=5).cast > 4
        assert colour_difference(a, _cast(a, channel, -1), local_threshold=5).cast < 1


def test_a_one_pixel_shift_is_forgiven_an_inverted_patch_is_not() -> None:
    a = scene(256, seed=4)
    shifted = np.pad(a, ((1, 0), (1, 0), (0, 0)), mode="edge")[:256, :256]
    assert colour_difference(a, shifted, local_threshold=5).local_windows == 0
    patched = shifted.copy()
    patched[101:109, 57:65] = 255 - patched[101:109, 57:65]
    result = colour_difference(a, patched, local_threshold=5)
    assert result.local > 10 and 1 <= result.local_windows <= 9


def _pair(a: np.ndarray, b: np.ndarray, th: Thresholds) -> tuple[str, str]:
    data_a, data_b = png(a), png(b)
    image_a = decode_image(data_a, max_pixels=10**8)
    image_b = decode_image(data_b, max_pixels=10**8)
    metrics = pair_metrics(image_a, image_b, threshold=th.yiq_threshold)
    infos = [
        ImageInfo(digest=hashlib.sha256(d).hexdigest(), format="PNG", mode="RGB", width=256,
                  height=256)
        for d in (data_a, data_b)
    ]  # fmt: skip
    return ladder(infos[0], infos[1], metrics, th)


def test_the_reason_names_the_broken_rule() -> None:
    a = scene(256, seed=5)
    patched = a.copy()
    patched[40:48, 40:48] = 255 - patched[40:48, 40:48]
    verdict, reason = _pair(a, patched, Thresholds())
    assert verdict == "changed" and reason.startswith("local dE00 ") and "> 5" in reason
    verdict, reason = _pair(a, _cast(a, 2, 40), Thresholds())
    assert verdict == "changed" and "colour cast dE00" in reason


def _noisy(pixels: np.ndarray, amplitude: int, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-amplitude, amplitude + 1, pixels.shape)
    return np.clip(pixels.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _result(a: np.ndarray, b: np.ndarray, a2: np.ndarray, th: Thresholds) -> PairResult:
    decoded = [decode_image(png(x), max_pixels=10**8) for x in (a, b, a2)]
    ab = pair_metrics(decoded[0], decoded[1], threshold=th.yiq_threshold)
    aa = pair_metrics(decoded[0], decoded[2], threshold=th.yiq_threshold)
    noise_verdict = "changed" if aa.local > th.visual_max_local or aa.cast > th.visual_max_cast \
        else "visually-identical"  # fmt: skip
    return PairResult(request_id="r", verdict="changed", raw_verdict="changed", metrics=ab,
                      noise_metrics=aa, noise_verdict=noise_verdict)  # fmt: skip


def test_noise_is_judged_per_request_and_per_rule() -> None:
    th = Thresholds()
    a = scene(256, seed=6)
    patched = a.copy()
    patched[60:76, 60:76] = 255 - patched[60:76, 60:76]
    # A' of this request is a faint cast plus grain: it excuses neither a local edit...
    faint = _noisy(_cast(a, 0, 12), 3, 1)
    assert not within_noise(_result(a, patched, faint, th), th)
    # ... nor a stronger cast than its own.
    assert not within_noise(_result(a, _cast(a, 0, 40), faint, th), th)
    # A model that redraws the same detail differently each time excuses a redraw of it.
    redrawn = a.copy()
    redrawn[60:76, 60:76] = 255 - redrawn[60:76, 60:76] // 2
    assert within_noise(_result(a, patched, redrawn, th), th)


@pytest.mark.parametrize(
    ("field", "value"),
    [("visual_max_cast", -1.0), ("visual_max_local", 1000.0), ("noise_margin", 0.5)],
)
def test_thresholds_validate_themselves(field: str, value: float) -> None:
    with pytest.raises(UsageError, match=f"{field}={value}"):
        Thresholds(**{field: value})  # type: ignore[arg-type]


def test_an_out_of_range_colour_flag_is_one_clear_error(tmp_path: Path, imgtrace: Run) -> None:
    a = write_run(tmp_path / "a.run", {"r0": [png(scene(64))]})
    result = imgtrace("compare", str(a), str(a), "--visual-local", "-3")
    assert result.returncode == 2
    assert result.stderr.startswith("imgtrace: error: --visual-local -3.0 is out of range")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(("height", "width"), [(1, 1), (3, 5), (8, 8), (9, 300)])
def test_tiny_and_thin_pictures_are_measured(height: int, width: int) -> None:
    a = np.random.default_rng(1).integers(0, 256, (height, width, 3)).astype(np.uint8)
    same = colour_difference(a, a.copy(), local_threshold=5)
    assert same.cast == pytest.approx(0, abs=1e-3) and same.local == pytest.approx(0, abs=1e-3)
    inverted = colour_difference(a, 255 - a, local_threshold=5)
    assert inverted.local > 5 and inverted.local_windows >= 1


def test_the_local_change_says_where_it_is() -> None:
    a = scene(256, seed=8)
    b = a.copy()
    b[101:117, 57:73] = 255 - b[101:117, 57:73]
    box = colour_difference(a, b, local_threshold=5).local_box
    assert box is not None
    left, top, right, bottom = box
    assert left <= 57 and right >= 73 and top <= 101 and bottom >= 117
    assert right - left <= 16 + 16 and bottom - top <= 16 + 16
    assert colour_difference(a, a.copy(), local_threshold=5).local_box is None


def test_the_heatmap_shows_what_the_local_rule_sees() -> None:
    from analyzer._images.colour import local_map
    from analyzer._images.pictures import heatmap

    a = scene(256, seed=9)
    b = a.copy()
    b[96:128, 64:96] = 255 - b[96:128, 64:96]
    picture = np.asarray(heatmap(a, local_map(a, b, local_threshold=5), 5.0)).astype(int)
    assert picture.shape == a.shape
    red, green, blue = picture[112, 80]
    assert red > 220 and green > 220 and blue < 200  # the top of the scale: bright yellow
    assert picture[10:40, 180:240, 1].max() < 200  # alike: a dark tint over faded grey
