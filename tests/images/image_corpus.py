"""A labelled corpus of image pairs, built in code, and the oracle that labels it.

Pictures: photographs shipped with scikit-image (astronaut, coffee, chelsea, rocket) and
photo-like pictures from `recorder._photos`. Cases: colour casts at several strengths per
channel, inverted and shifted patches, text-like strokes, JPEG and PNG re-encodes, noise at
several amplitudes, 1-pixel shifts and crops, and re-renders of the reference server (with its
`--noise` nondeterminism and its `--variant`).

Each case's expected verdict follows from the documented thresholds (docs/analyzing.md,
Thresholds), measured by an oracle built on scikit-image (`rgb2lab`, `deltaE_ciede2000`,
`structural_similarity`) at full resolution: a change is visible when the mean CIEDE2000 of
32x32-pixel blocks exceeds the cast threshold, when the mean colour of the edited region (or of
any 8x8 window of it) moves by more than the local threshold, or when SSIM falls under its
threshold. Cases whose oracle figure lies within 15% of a threshold are left out: no observer
agrees there either. Shifts of one pixel are no edit by the documented rule.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity

from analyzer._images.metrics import decode_image, downscale_factor, pair_metrics
from analyzer._images.options import Thresholds
from analyzer._images.records import ImageInfo
from analyzer._images.verdict import ladder

U8 = np.ndarray
BAND = 0.15


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    picture: str
    a: bytes
    b: bytes
    expected: str


def png(pixels: U8, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", **options)
    return buffer.getvalue()


def _jpeg(pixels: U8, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _decoded(data: bytes) -> U8:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def pictures(count: int, side: int) -> list[tuple[str, U8]]:
    """`count` pictures cropped to at most side x side: photographs first, then made ones."""
    import skimage.data

    from recorder._photos import photo

    found: list[tuple[str, U8]] = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        pixels = getattr(skimage.data, name)()
        found.append((name, np.ascontiguousarray(pixels[:side, :side, :3])))
    seed = 0
    while len(found) < count:
        image = photo(np.random.default_rng(100 + seed), side, side).convert("RGB")
        found.append((f"photo{seed}", np.asarray(image)))
        seed += 1
    return found[:count]


# -- the oracle -------------------------------------------------------------------------------


def _box_means(pixels: U8, side: int, stride: int) -> np.ndarray:
    """Means of side x side windows every `stride` pixels (full windows only)."""
    total = np.zeros((pixels.shape[0] + 1, pixels.shape[1] + 1, 3))
    total[1:, 1:] = pixels.astype(np.float64).cumsum(0).cumsum(1)
    tops = np.arange(0, pixels.shape[0] - side + 1, stride)
    lefts = np.arange(0, pixels.shape[1] - side + 1, stride)
    t, lf = tops[:, None], lefts[None, :]
    sums = total[t + side, lf + side] - total[t, lf + side] - total[t + side, lf] + total[t, lf]
    return sums / (side * side)


def _de(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(deltaE_ciede2000(rgb2lab(a / 255.0), rgb2lab(b / 255.0)))


def oracle(a: U8, b: U8, region: tuple[int, int, int, int] | None) -> dict[str, float]:
    """The documented measures, computed independently; `region` (top, left, h, w) of an edit."""
    cast = float(_de(_box_means(a, 32, 32), _box_means(b, 32, 32)).mean())
    if region is None:
        local = float(_de(_box_means(a, 8, 4), _box_means(b, 8, 4)).max())
    else:
        top, left, h, w = region
        crop_a, crop_b = a[top : top + h, left : left + w], b[top : top + h, left : left + w]
        whole = _de(crop_a.reshape(-1, 3).mean(0), crop_b.reshape(-1, 3).mean(0))
        local = max(
            float(whole), float(_de(_box_means(crop_a, 8, 4), _box_means(crop_b, 8, 4)).max())
        )
    factor = downscale_factor(*a.shape[:2])
    grey = [
        np.asarray(Image.fromarray(x).convert("L").convert("F").reduce(factor), np.float64)
        for x in (a, b)
    ]
    ssim = structural_similarity(grey[0], grey[1], data_range=255, gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False)  # fmt: skip
    return {"cast": cast, "local": local, "ssim": float(ssim)}


def label(figures: dict[str, float], th: Thresholds) -> str | None:
    """The expected verdict, or None when a figure lies within BAND of its threshold."""
    ratios = [
        figures["cast"] / th.visual_max_cast,
        figures["local"] / th.visual_max_local,
        (1 - figures["ssim"]) / (1 - th.visual_min_ssim),
    ]
    if any(abs(r - 1) < BAND for r in ratios):
        return None
    return "changed" if max(ratios) > 1 else "visually-identical"


# -- the cases --------------------------------------------------------------------------------

Edit = Callable[[U8, np.random.Generator], tuple[U8, tuple[int, int, int, int] | None]]


def _cast(channel: int, amount: int) -> Edit:
    def edit(a: U8, rng: np.random.Generator) -> tuple[U8, None]:
        b = a.astype(np.int16)
        b[..., channel] += amount
        return np.clip(b, 0, 255).astype(np.uint8), None

    return edit


def _noise(amplitude: int) -> Edit:
    def edit(a: U8, rng: np.random.Generator) -> tuple[U8, None]:
        noise = rng.integers(-amplitude, amplitude + 1, a.shape)
        return np.clip(a.astype(np.int16) + noise, 0, 255).astype(np.uint8), None

    return edit


def _where(a: U8, rng: np.random.Generator, side: int) -> tuple[int, int]:
    """A place with detail (a plain sky hides an inverted patch from any eye and any metric)."""
    grey = a.mean(axis=2)
    best, spot = -1.0, (0, 0)
    for _ in range(12):
        top = int(rng.integers(8, a.shape[0] - side - 8))
        left = int(rng.integers(8, a.shape[1] - side - 8))
        detail = float(grey[top : top + side, left : left + side].std())
        if detail > best:
            best, spot = detail, (top, left)
    return spot


def _inverted(side: int) -> Edit:
    def edit(a: U8, rng: np.random.Generator) -> tuple[U8, tuple[int, int, int, int]]:
        top, left = _where(a, rng, side)
        b = a.copy()
        b[top : top + side, left : left + side] = 255 - b[top : top + side, left : left + side]
        return b, (top, left, side, side)

    return edit


def _moved(side: int, by: int) -> Edit:
    def edit(a: U8, rng: np.random.Generator) -> tuple[U8, tuple[int, int, int, int]]:
        top, left = _where(a, rng, side)
        b = a.copy()
        b[top : top + side, left : left + side] = a[
            top + by : top + by + side, left + by : left + by + side
        ]
        return b, (top, left, side, side)

    return edit


def _text(colour: tuple[int, int, int]) -> Edit:
    def edit(a: U8, rng: np.random.Generator) -> tuple[U8, tuple[int, int, int, int]]:
        top, left = _where(a, rng, 24)
        image = Image.fromarray(a.copy())
        draw = ImageDraw.Draw(image)
        draw.text((left, top), "sale 42%", fill=colour)
        x0, y0, x1, y1 = (int(v) for v in draw.textbbox((left, top), "sale 42%"))
        return np.asarray(image), (y0, x0, y1 - y0, x1 - x0)

    return edit


def _shift(dy: int, dx: int) -> Edit:
    def edit(a: U8, rng: np.random.Generator) -> tuple[U8, None]:
        padded = np.pad(a, ((1, 1), (1, 1), (0, 0)), mode="edge")
        h, w = a.shape[:2]
        return np.ascontiguousarray(padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]), None

    return edit


def _edits() -> Iterator[tuple[str, str, Edit]]:
    for channel, colour in enumerate("RGB"):
        for amount in (2, -3, 5, 10, -20, 40):
            yield "colour cast", f"{colour}{amount:+d}", _cast(channel, amount)
    for amplitude in (1, 2, 3, 5, 30):
        yield "noise", f"+-{amplitude}", _noise(amplitude)
    for side in (8, 12, 24):
        yield "inverted patch", f"{side}x{side}", _inverted(side)
    for side, by in ((12, 6), (24, 10)):
        yield "shifted patch", f"{side}x{side} by {by}", _moved(side, by)
    yield "text strokes", "dark", _text((20, 20, 20))
    yield "text strokes", "light", _text((245, 245, 245))


def cases(
    count: int,
    side: int,
    seed: int,
    th: Thresholds | None = None,
    server_sizes: tuple[int, ...] = (512, 1024),
) -> list[Case]:
    """Every case for `count` pictures of at most side x side pixels."""
    th = th or Thresholds()
    rng = np.random.default_rng(seed)
    found: list[Case] = []
    for name, a in pictures(count, side):
        data = png(a, compress_level=1)
        found.append(Case("identity", "same bytes", name, data, data, "identical-bytes"))
        found.append(Case("re-encode", "PNG level 9", name, data, png(a, compress_level=9),
                          "identical-pixels"))  # fmt: skip
        for quality in (95, 85):
            jpeg = _jpeg(a, quality)
            expected = label(oracle(a, _decoded(jpeg), None), th)
            if expected is not None:
                found.append(Case("re-encode", f"JPEG q{quality}", name, data, jpeg, expected))
        for family, case, edit in _edits():
            b, region = edit(a, rng)
            expected = label(oracle(a, b, region), th)
            if family in ("inverted patch", "text strokes") and expected is None:
                expected = "changed"  # dense local changes are always changed (the rule)
            if expected is not None:
                found.append(Case(family, case, name, data, png(b, compress_level=1), expected))
        for dy, dx in ((0, 1), (1, 1)):
            b, _ = _shift(dy, dx)(a, rng)
            found.append(Case("1-pixel shift", f"by ({dy},{dx})", name, data,
                              png(b, compress_level=1), "visually-identical"))  # fmt: skip
        found.append(Case("crop", "1 column", name, data, png(np.ascontiguousarray(a[:, 1:])),
                          "layout-differs"))  # fmt: skip
        found.append(Case("crop", "1 row", name, data, png(np.ascontiguousarray(a[1:])),
                          "layout-differs"))  # fmt: skip
    found.extend(server_cases(seed, th, server_sizes))
    return found


def server_cases(seed: int, th: Thresholds, sizes: tuple[int, ...]) -> list[Case]:
    """Re-renders of the reference server's edit: nondeterministic (`--noise`) and a variant."""
    from imgtrace._server._edit import Renderer
    from imgtrace._server._params import EditRequest

    found: list[Case] = []
    for index, size in enumerate(sizes):
        source = png(pictures(1, size)[0][1])
        request = EditRequest(
            prompt=f"make it dusk {index}", images=(source,), mask=None, n=1, size=(size, size),
            response_format="b64_json", output_format="png", output_compression=100,
            background="auto", quality="auto", seed=seed + index, steps=8, guidance=4.0,
            negative_prompt="", model=None, user=None,
        )  # fmt: skip
        renders: dict[str, bytes] = {}
        for key, variant, noise in (("a", "", 2), ("a2", "", 2), ("b", "b", 2), ("same", "", 0)):
            renderer = Renderer(variant, noise, 0, seed + len(renders))
            renders[key] = renderer.render(request, renderer.decode_inputs(request))[0]
        found.append(Case("server re-render", f"--noise 2, {size}px", "server", renders["a"],
                          renders["a2"], "visually-identical"))  # fmt: skip
        a, b = _decoded(renders["a"]), _decoded(renders["b"])
        expected = label(oracle(a, b, None), th)
        if expected is not None:
            found.append(Case("server re-render", f"--variant b, {size}px", "server",
                              renders["a"], renders["b"], expected))  # fmt: skip
    return found


def verdict_of(case: Case, th: Thresholds) -> str:
    """The ladder's verdict for one case, as the comparison gives it."""
    a, b = decode_image(case.a, max_pixels=10**8), decode_image(case.b, max_pixels=10**8)
    infos = [
        ImageInfo(digest=hashlib.sha256(data).hexdigest(), format=image.format, mode=image.mode,
                  width=image.width, height=image.height)
        for data, image in ((case.a, a), (case.b, b))
    ]  # fmt: skip
    metrics = None
    if case.a != case.b:
        metrics = pair_metrics(
            a, b, threshold=th.yiq_threshold, local_threshold=th.visual_max_local,
            min_ssim=th.visual_min_ssim,
        )  # fmt: skip
    return ladder(infos[0], infos[1], metrics, th)[0]
