"""The deterministic "edit": cheap, clearly visible, and a pure function of the request.

The work happens at a reduced resolution (at most `WORK_SIDE` pixels on the long side) and is
scaled up only at the end, so a 1024x1024 edit costs a few milliseconds of CPU: the simulated
GPU time is slept, never burned, and this server shares its machine with the replayer.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from ._errors import ApiError
from ._params import EditRequest
from ._png import encode_png

__all__ = ["WORK_SIDE", "DecodedImage", "Renderer", "decode_image", "decode_mask"]

WORK_SIDE = 256
MAX_INPUT_PIXELS = 40_000_000  # ~6300x6300; Pillow's own bomb limit (89M) warns first
MAX_INPUT_SIDE = 16384
_INPUT_FORMATS = ("PNG", "JPEG", "WEBP")
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)

# Float arithmetic widens dtypes freely; only the uint8 arrays keep a precise type.
FloatArray = npt.NDArray[Any]
ByteArray = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class DecodedImage:
    """An input at its declared size, with its pixels reduced to at most WORK_SIDE."""

    width: int
    height: int
    rgb: ByteArray
    alpha: ByteArray | None


def _reduction(width: int, height: int) -> int:
    return max(1, math.ceil(max(width, height) / WORK_SIDE))


def _open(data: bytes, param: str, what: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
        if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            size = _declared_size(data)
            detail = f"it declares {size[0]}x{size[1]} pixels" if size else str(exc)
            raise _too_large(param, what, detail) from None
        raise ApiError(
            422,
            f"{what} is not an image (send PNG, JPEG or WebP)",
            param=param,
            code="invalid_image",
        ) from None
    width, height = image.size
    if width * height > MAX_INPUT_PIXELS or max(width, height) > MAX_INPUT_SIDE:
        raise _too_large(param, what, f"it declares {width}x{height} pixels")
    return image


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """The size in the header of an image Pillow's `open` refused as a bomb, if readable.

    A format's own image class reads only the header, and the bomb check lives in `open`.
    """
    Image.init()
    for name in _INPUT_FORMATS:
        factory, accept = Image.OPEN[name]
        if accept is None or accept(data[:16]):
            try:
                return factory(io.BytesIO(data), "").size
            except _DECODE_ERRORS:
                continue
    return None


def _too_large(param: str, what: str, detail: str) -> ApiError:
    return ApiError(
        422,
        f"{what} is too large: {detail} (at most {MAX_INPUT_PIXELS:,} pixels, "
        f"{MAX_INPUT_SIDE} per side)",
        param=param,
        code="image_too_large",
    )


def decode_image(data: bytes, param: str = "image", what: str = "image 1") -> DecodedImage:
    """Decode one input image; ApiError 422 if it is not a usable PNG, JPEG or WebP."""
    image = _open(data, param, what)
    if image.format not in _INPUT_FORMATS:
        raise ApiError(
            422,
            f"{what} is {image.format}; send PNG, JPEG or WebP",
            param=param,
            code="unsupported_image_format",
        )
    width, height = image.size
    factor = _reduction(width, height)
    try:
        if image.format == "JPEG" and factor > 1:
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: most of the decode cost disappears.
            image.draft("RGB", (width // factor, height // factor))
        image.load()
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        small_factor = _reduction(*image.size)
        if small_factor > 1:
            image = image.reduce(small_factor)
    except _DECODE_ERRORS as exc:
        raise ApiError(
            422, f"{what} could not be decoded: {exc}", param=param, code="invalid_image"
        ) from None
    pixels = np.asarray(image)
    rgb = np.ascontiguousarray(pixels[:, :, :3])
    alpha = np.ascontiguousarray(pixels[:, :, 3]) if has_alpha else None
    return DecodedImage(width, height, rgb, alpha)


def decode_mask(data: bytes, first: DecodedImage) -> ByteArray:
    """The mask's alpha at work resolution; alpha 0 marks the area to edit (as OpenAI)."""
    image = _open(data, "mask", "mask")
    if image.format != "PNG":
        raise ApiError(
            422, f"mask is {image.format}; send a PNG", param="mask", code="invalid_mask"
        )
    if image.size != (first.width, first.height):
        raise ApiError(
            422,
            f"mask is {image.size[0]}x{image.size[1]} but the first image is "
            f"{first.width}x{first.height}; they must be the same size",
            param="mask",
            code="invalid_mask",
        )
    try:
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        if not has_alpha:
            raise ApiError(
                422,
                "mask has no alpha channel; alpha 0 marks the area to edit",
                param="mask",
                code="invalid_mask",
            )
        alpha = image.convert("RGBA").getchannel("A")
        factor = _reduction(*alpha.size)
        if factor > 1:
            alpha = alpha.reduce(factor)
    except _DECODE_ERRORS as exc:
        raise ApiError(422, f"mask could not be decoded: {exc}", param="mask") from None
    return np.asarray(alpha)


def _digest(*parts: object) -> bytes:
    h = hashlib.blake2b(digest_size=32)
    for part in parts:
        data = part if isinstance(part, bytes) else repr(part).encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


def _unit(digest: bytes, start: int, count: int) -> FloatArray:
    """`count` floats in [0, 1) taken from digest bytes."""
    return np.frombuffer(digest[start : start + count], dtype=np.uint8).astype(np.float32) / 255


def work_size(width: int, height: int) -> tuple[int, int]:
    factor = _reduction(width, height)
    return max(1, math.ceil(width / factor)), max(1, math.ceil(height / factor))


def _resized(pixels: ByteArray, size: tuple[int, int]) -> FloatArray:
    if pixels.shape[1] == size[0] and pixels.shape[0] == size[1]:
        return pixels.astype(np.float32)
    image = Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image).astype(np.float32)


def _generated_base(prompt: str, size: tuple[int, int]) -> FloatArray:
    """A text-to-image "base": a prompt-coloured gradient with soft waves."""
    digest = _digest("generate", prompt)
    first, second = _unit(digest, 0, 3) * 255, _unit(digest, 3, 3) * 255
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (x / max(width - 1, 1) + y / max(height - 1, 1)) / 2
    waves = np.sin(x * (0.05 + 0.1 * float(digest[6]) / 255)) * np.cos(y * 0.07) * 20
    base: FloatArray = first * (1 - t[..., None]) + second * t[..., None] + waves[..., None]
    return base


def _box_blur(pixels: FloatArray) -> FloatArray:
    padded = np.pad(pixels, ((1, 1), (1, 1), (0, 0)), mode="edge")
    total = np.zeros_like(pixels)
    for dy in range(3):
        for dx in range(3):
            total += padded[dy : dy + pixels.shape[0], dx : dx + pixels.shape[1]]
    return total / 9


@dataclass(frozen=True)
class RenderInputs:
    """What one render needs besides the request: decoded inputs and server knobs."""

    images: tuple[DecodedImage, ...]
    mask: ByteArray | None
    size: tuple[int, int]
    variant: str


def render_pixels(request: EditRequest, inputs: RenderInputs, index: int) -> Image.Image:
    """The `index`-th output image at full size (before noise and encoding)."""
    size = work_size(*inputs.size)
    if inputs.images:
        original = _resized(inputs.images[0].rgb, size)
        base = original
        if len(inputs.images) > 1:
            refs = np.mean([_resized(i.rgb, size) for i in inputs.images[1:]], axis=0)
            base = 0.75 * base + 0.25 * refs
    else:
        original = base = _generated_base(request.prompt, size)
    look = _digest("grade", request.prompt, request.negative_prompt)
    graded = base * (0.65 + 0.7 * _unit(look, 0, 3)) + (_unit(look, 3, 3) - 0.5) * 80
    strength = request.steps / (request.steps + 2)  # more steps, further from the input
    out = base + strength * (graded - base)
    sharpen = min(max(request.guidance - 1.0, -1.0), 10.0) * 0.6
    if sharpen:
        out = out + sharpen * (out - _box_blur(out))
    out = _draw_shape(out, request, look, index, inputs.variant)
    if inputs.variant:
        # A "new build": every pixel a little off, systematically: 1.5 to 3 levels per channel,
        # enough to survive rounding for any name, never enough to look different.
        shift = _digest("variant", inputs.variant)
        signs = np.where(np.frombuffer(shift[3:6], dtype=np.uint8) % 2 == 0, 1.0, -1.0)
        out = out + signs * (1.5 + 1.5 * _unit(shift, 0, 3))
    if inputs.mask is not None:
        keep = _resized(inputs.mask, size)[..., None] >= 128
        out = np.where(keep, original, out)
    pixels = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    if request.background == "transparent":
        first = inputs.images[0] if inputs.images else None
        if first is not None and first.alpha is not None:
            alpha = Image.fromarray(first.alpha).resize(size, Image.Resampling.BILINEAR)
        else:
            alpha = Image.new("L", size, 255)
        image.putalpha(alpha)
    # Nearest-neighbour keeps upscaling and PNG encoding cheap (flat runs compress fast).
    return image.resize(inputs.size, Image.Resampling.NEAREST)


def _draw_shape(
    out: FloatArray, request: EditRequest, look: bytes, index: int, variant: str
) -> FloatArray:
    """A disc placed by the seed (and the image's index among n), coloured by the prompt."""
    height, width = out.shape[:2]
    rng = np.random.default_rng(list(_digest("shape", request.seed + index)[:16]))
    cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
    radius = rng.uniform(0.08, 0.2) * min(width, height)
    if variant:
        shift = _digest("variant-shift", variant)
        cx += 1 + shift[0] % 2
        cy += 1 + shift[1] % 2
    colour = (_unit(look, 6, 3) * 0.5 + rng.uniform(0, 0.5, 3).astype(np.float32)) * 255
    y, x = np.ogrid[0:height, 0:width]
    disc = (x - cx) ** 2 + (y - cy) ** 2 <= radius**2
    out = out.copy()
    out[disc] = 0.35 * out[disc] + 0.65 * colour
    return out


def add_noise(image: Image.Image, amplitude: int, rng: np.random.Generator) -> Image.Image:
    """±`amplitude` LSB of uniform noise per channel: nondeterminism like a GPU's."""
    pixels = np.asarray(image).astype(np.int16)
    noise = rng.integers(-amplitude, amplitude + 1, size=pixels.shape, dtype=np.int16)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def encode(image: Image.Image, output_format: str, compression: int) -> bytes:
    """Encode with fixed settings, so equal pixels always give equal bytes."""
    if output_format == "png":
        return encode_png(np.asarray(image))
    buffer = io.BytesIO()
    if output_format == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=compression)
    else:
        image.save(buffer, "WEBP", quality=compression, method=0)
    return buffer.getvalue()


class Renderer:
    """Decodes, renders and encodes, with small LRU caches (inputs and outputs repeat)."""

    def __init__(self, variant: str, noise: int, cache_bytes: int, seed: int | None) -> None:
        self.variant = variant
        self.noise = noise
        self._cache_bytes = cache_bytes
        self._lock = threading.Lock()
        self._inputs: OrderedDict[bytes, DecodedImage] = OrderedDict()
        self._outputs: OrderedDict[bytes, list[bytes]] = OrderedDict()
        self._output_bytes = 0
        self._rng = np.random.default_rng(seed)

    def decode_inputs(self, request: EditRequest) -> RenderInputs:
        """Decode and check every input (ApiError 422 on bad ones); runs in a worker thread."""
        images = tuple(
            self._decoded(data, f"image {i + 1}") for i, data in enumerate(request.images)
        )
        mask = decode_mask(request.mask, images[0]) if request.mask and images else None
        size = request.size or ((images[0].width, images[0].height) if images else (1024, 1024))
        return RenderInputs(images, mask, size, self.variant)

    def _decoded(self, data: bytes, what: str) -> DecodedImage:
        key = hashlib.sha256(data).digest()
        with self._lock:
            cached = self._inputs.get(key)
            if cached is not None:
                self._inputs.move_to_end(key)
                return cached
        decoded = decode_image(data, "image", what)
        with self._lock:
            self._inputs[key] = decoded
            while len(self._inputs) > 256:
                self._inputs.popitem(last=False)
        return decoded

    def render(self, request: EditRequest, inputs: RenderInputs) -> list[bytes]:
        """The n encoded outputs; runs in a worker thread."""
        pixels = [
            _digest(i.rgb.tobytes(), b"" if i.alpha is None else i.alpha.tobytes())
            for i in inputs.images
        ]
        key = _digest(
            request.prompt,
            request.negative_prompt,
            *pixels,
            b"" if inputs.mask is None else inputs.mask.tobytes(),
            inputs.size,
            request.seed,
            request.steps,
            request.guidance,
            request.n,
            request.output_format,
            request.output_compression,
            request.background,
            inputs.variant,
        )
        if self.noise == 0:
            with self._lock:
                cached = self._outputs.get(key)
                if cached is not None:
                    self._outputs.move_to_end(key)
                    return cached
        outputs = []
        for index in range(request.n):
            image = render_pixels(request, inputs, index)
            if self.noise:
                with self._lock:
                    rng = self._rng.spawn(1)[0]
                image = add_noise(image, self.noise, rng)
            outputs.append(encode(image, request.output_format, request.output_compression))
        if self.noise == 0:
            self._remember(key, outputs)
        return outputs

    def _remember(self, key: bytes, outputs: list[bytes]) -> None:
        size = sum(len(o) for o in outputs)
        if size > self._cache_bytes:
            return
        with self._lock:
            if key in self._outputs:
                return
            self._outputs[key] = outputs
            self._output_bytes += size
            while self._output_bytes > self._cache_bytes:
                _, dropped = self._outputs.popitem(last=False)
                self._output_bytes -= sum(len(o) for o in dropped)
