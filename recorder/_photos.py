"""Photo-like reference images for synthetic traces.

Uniform random pixels (what some load generators upload) compress to more than their raw size and
look like nothing a user sends, so a server's decode, resize and encode costs are unrealistic.
These images are built the way photographs are structured instead: a lit sky-and-ground gradient,
solid objects with soft edges, smooth fractal texture with more detail near the viewer, a vignette,
and a little sensor grain. They compress like photographs (a few bits per pixel as JPEG) and are
fully determined by the numpy Generator that draws them.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["IMAGE_FORMATS", "encode_image", "photo", "photo_bytes", "edit_mask"]

IMAGE_FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
"""Formats `photo_bytes` can write, with their media types."""

_F32 = np.float32


def _smooth_noise(
    rng: np.random.Generator, width: int, height: int, cells: int, channels: int = 1
) -> np.ndarray:
    """Bicubic-upsampled random grid: smooth variation at a scale of about `cells` per side."""
    from PIL import Image

    grid_w = max(2, cells)
    grid_h = max(2, round(cells * height / width))
    out = np.empty((height, width, channels), dtype=_F32)
    for channel in range(channels):
        grid = rng.standard_normal((grid_h, grid_w)).astype(_F32)
        layer = Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC)
        out[:, :, channel] = np.asarray(layer, dtype=_F32)
    return out


def _palette(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sky top, sky horizon, ground near and ground far colours of one scene (0..255 floats)."""
    sky_top = np.array([rng.uniform(40, 120), rng.uniform(90, 170), rng.uniform(160, 250)], _F32)
    sky_low = np.clip(sky_top + rng.uniform(40, 90), 0, 255).astype(_F32)
    if rng.random() < 0.3:  # dusk: warm horizon
        sky_low = np.array(
            [rng.uniform(200, 255), rng.uniform(120, 190), rng.uniform(80, 140)], _F32
        )
    ground_hue = rng.integers(0, 3)
    base = [
        (rng.uniform(50, 110), rng.uniform(90, 150), rng.uniform(30, 70)),  # grass
        (rng.uniform(120, 190), rng.uniform(100, 160), rng.uniform(60, 110)),  # sand, soil
        (rng.uniform(70, 120), rng.uniform(75, 125), rng.uniform(80, 130)),  # rock, city
    ][int(ground_hue)]
    ground_near = np.array(base, _F32)
    ground_far = np.clip(ground_near * 0.8 + sky_low * 0.2, 0, 255).astype(_F32)
    return sky_top, sky_low, ground_near, ground_far


def _scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """The gradients and texture of sky and ground, as a float HxWx3 array."""
    sky_top, sky_low, ground_near, ground_far = _palette(rng)
    horizon = rng.uniform(0.3, 0.7)
    y = (np.arange(height, dtype=_F32) / max(1, height - 1))[:, None, None]
    sky_t = np.clip(y / horizon, 0, 1)
    ground_t = np.clip((y - horizon) / (1 - horizon), 0, 1)
    sky = sky_top * (1 - sky_t) + sky_low * sky_t
    ground = ground_far * (1 - ground_t) + ground_near * ground_t
    image = np.where(y < horizon, sky, ground) * np.ones((1, width, 1), _F32)
    # Clouds in the sky, detail in the ground that grows towards the viewer.
    clouds = np.clip(_smooth_noise(rng, width, height, 5) * 1.2, 0, None) * 35
    detail = _smooth_noise(rng, width, height, 24) * 10 + _smooth_noise(rng, width, height, 96) * 7
    near = (ground_t * 0.7 + 0.3) * (y >= horizon)
    image += clouds * (y < horizon) + detail * near
    return image


def _draw_objects(rng: np.random.Generator, image: Image.Image) -> None:
    """Solid objects (buildings, trees, rocks) drawn in place, each with its own flat colour."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    width, height = image.size
    for _ in range(int(rng.integers(3, 9))):
        colour = tuple(int(c) for c in rng.integers(20, 235, size=3))
        cx, cy = rng.uniform(0, width), rng.uniform(height * 0.35, height)
        w = rng.uniform(0.05, 0.35) * width
        h = rng.uniform(0.05, 0.45) * height
        box = (cx - w / 2, cy - h, cx + w / 2, cy)
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.rectangle(box, fill=colour)
        elif kind == 1:
            draw.ellipse(box, fill=colour)
        else:
            points = [
                (cx + rng.uniform(-w, w) / 2, cy - rng.uniform(0, h))
                for _ in range(int(rng.integers(3, 7)))
            ]
            draw.polygon(points, fill=colour)


def photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A photo-like RGB image of `width` x `height` drawn from `rng`."""
    from PIL import Image

    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    # The scene is drawn at half resolution and enlarged: the enlargement softens edges the way
    # a lens does (no separate blur) and quarters the cost of everything before it.
    w, h = max(1, (width + 1) // 2), max(1, (height + 1) // 2)
    base = Image.fromarray(np.clip(_scene(rng, w, h), 0, 255).astype(np.uint8), "RGB")
    _draw_objects(rng, base)
    pixels = np.asarray(base, dtype=_F32)
    # Shading: light falls off towards the corners and varies smoothly across objects.
    yy = np.linspace(-1, 1, h, dtype=_F32)[:, None]
    xx = np.linspace(-1, 1, w, dtype=_F32)[None, :]
    vignette = 1 - 0.25 * (xx * xx + yy * yy)
    light = 1 + 0.08 * _smooth_noise(rng, w, h, 6)[:, :, 0]
    pixels *= (vignette * light)[:, :, None]
    # Surface texture on everything (bark, fabric, plaster).
    pixels += _smooth_noise(rng, w, h, max(8, width // 12)) * 5
    pixels += _smooth_noise(rng, w, h, max(16, width // 4)) * 3
    half = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "RGB")
    full = np.asarray(half.resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    # Sensor grain at full resolution: what keeps photographs from compressing to nothing.
    grain = rng.integers(-2, 3, (height, width, 1), dtype=np.int16)
    return Image.fromarray(np.clip(full + grain, 0, 255).astype(np.uint8), "RGB")


def encode_image(image: Image.Image, fmt: str) -> bytes:
    """`image` as png, jpeg (quality 90) or webp (quality 85) bytes; deterministic."""
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, "PNG", compress_level=1)  # fast; 7 % larger than level 3
    elif fmt == "jpeg":
        image.save(buffer, "JPEG", quality=90)
    elif fmt == "webp":
        image.save(buffer, "WEBP", quality=85, method=2)
    else:
        raise ValueError(f"unknown image format {fmt!r}: choose png, jpeg or webp")
    return buffer.getvalue()


def photo_bytes(rng: np.random.Generator, width: int, height: int, fmt: str) -> bytes:
    """A photo-like image encoded as `fmt` (png, jpeg or webp)."""
    return encode_image(photo(rng, width, height), fmt)


def edit_mask(rng: np.random.Generator, width: int, height: int) -> bytes:
    """A PNG mask the size of the image: transparent (alpha 0) where the edit goes."""
    from PIL import Image, ImageDraw

    mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    w = rng.uniform(0.2, 0.6) * width
    h = rng.uniform(0.2, 0.6) * height
    x = rng.uniform(0, width - w)
    y = rng.uniform(0, height - h)
    ImageDraw.Draw(mask).ellipse((x, y, x + w, y + h), fill=(0, 0, 0, 0))
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    return buffer.getvalue()
