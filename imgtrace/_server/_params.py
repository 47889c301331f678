"""Request fields -> one checked `EditRequest`, from a multipart form or a JSON body.

Both OpenAI and SGLang field names are accepted; unknown fields are ignored, as SGLang does.
Every problem becomes a 400 naming the field (`param`), so a client sees what to fix.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from traces import FormPartData

from ._errors import ApiError

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_STEPS",
    "MAX_IMAGES",
    "MAX_PROMPT_CHARS",
    "EditRequest",
    "parse_edit_form",
    "parse_generation_json",
]

DEFAULT_SEED = 1024  # SGLang's default: identical requests give identical images
DEFAULT_STEPS = 4  # FLUX.2-Klein's default number of denoising steps
DEFAULT_GUIDANCE = 1.0
MAX_PROMPT_CHARS = 32000
MAX_IMAGES = 16
MAX_SIDE = 4096
MIN_SIDE = 16
MAX_STEPS = 1000

_IMAGE_FIELDS = ("image", "image[]")
_URL_FIELDS = ("url", "url[]")
_SIZE_RE = re.compile(r"^\s*(\d{1,6})\s*[x*×]\s*(\d{1,6})\s*$", re.IGNORECASE)
_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "webp": "webp"}
_BACKGROUNDS = ("auto", "opaque", "transparent")
_QUALITIES = ("auto", "low", "medium", "high", "standard", "hd")
_EXTRA_DICTS = ("extra_body", "extra_json", "extra_args", "extra_params")


@dataclass(frozen=True)
class EditRequest:
    """One checked request; `size` None means `auto` (the first input's size)."""

    prompt: str
    images: tuple[bytes, ...]
    mask: bytes | None
    n: int
    size: tuple[int, int] | None
    response_format: str
    output_format: str
    output_compression: int
    background: str
    quality: str
    seed: int
    steps: int
    guidance: float
    negative_prompt: str
    model: str | None
    user: str | None


def parse_edit_form(parts: list[FormPartData]) -> EditRequest:
    """The request of a multipart `/v1/images/edits` body."""
    fields: dict[str, str] = {}
    images: list[bytes] = []
    mask: bytes | None = None
    for part in parts:
        if part.name in _IMAGE_FIELDS:
            data = part.data
            images.append(
                _data_url(data.decode("latin-1"), part.name) if _is_data_url(data) else data
            )
        elif part.name in _URL_FIELDS:
            images.append(_data_url(_text(part), part.name))
        elif part.name in ("mask", "mask[]"):
            if mask is not None:
                raise ApiError(400, "send at most one mask", param="mask")
            mask = _data_url(_text(part), "mask") if _is_data_url(part.data) else part.data
        else:
            # Repeated scalar fields: the last one wins, as in most form decoders.
            fields[part.name] = _text(part)
    if not images:
        raise ApiError(
            400,
            "no input image: send one or more files as 'image' or 'image[]' "
            "(or data: URLs as 'url'/'url[]')",
            param="image",
            code="missing_image",
        )
    return _build(fields, tuple(images), mask, default_size=None)


def parse_generation_json(body: object) -> EditRequest:
    """The request of a JSON `/v1/images/generations` body (no input images)."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", code="invalid_json")
    merged: dict[str, object] = {}
    for key in _EXTRA_DICTS:
        extra = body.get(key)
        if isinstance(extra, dict):
            merged.update(extra)
    merged.update(body)
    fields = {
        k: _json_text(k, v) for k, v in merged.items() if v is not None and k not in _EXTRA_DICTS
    }
    if "size" not in fields and "width" in fields and "height" in fields:
        fields["size"] = f"{fields['width']}x{fields['height']}"
    return _build(fields, (), None, default_size=(1024, 1024))


def _build(
    fields: Mapping[str, str],
    images: tuple[bytes, ...],
    mask: bytes | None,
    default_size: tuple[int, int] | None,
) -> EditRequest:
    if len(images) > MAX_IMAGES:
        raise ApiError(
            400, f"too many input images: {len(images)} (at most {MAX_IMAGES})", param="image"
        )
    prompt = fields.get("prompt", "")
    if not prompt.strip():
        raise ApiError(
            400, "'prompt' is required", param="prompt", code="missing_required_parameter"
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ApiError(
            400,
            f"'prompt' is too long: {len(prompt)} characters (at most {MAX_PROMPT_CHARS})",
            param="prompt",
            code="string_above_max_length",
        )
    response_format = _choice(
        fields, "response_format", {"b64_json": "b64_json", "url": "url"}, "b64_json"
    )
    output_format = _choice(fields, "output_format", _FORMATS, "png")
    background = _choice(fields, "background", {b: b for b in _BACKGROUNDS}, "auto")
    if background == "transparent" and output_format == "jpeg":
        raise ApiError(
            400, "background 'transparent' needs output_format png or webp", param="background"
        )
    return EditRequest(
        prompt=prompt,
        images=images,
        mask=mask,
        n=_int(fields, "n", 1, 1, 10),
        size=_size(fields.get("size"), default_size),
        response_format=response_format,
        output_format=output_format,
        output_compression=_int(fields, "output_compression", 100, 0, 100),
        background=background,
        quality=_choice(fields, "quality", {q: q for q in _QUALITIES}, "auto"),
        seed=_int(fields, "seed", DEFAULT_SEED, -(2**63), 2**64 - 1),
        steps=_int(fields, "num_inference_steps", DEFAULT_STEPS, 1, MAX_STEPS),
        guidance=_float(fields, "guidance_scale", DEFAULT_GUIDANCE, 0.0, 100.0),
        negative_prompt=fields.get("negative_prompt", ""),
        model=fields.get("model"),
        user=fields.get("user"),
    )


def _size(text: str | None, default: tuple[int, int] | None) -> tuple[int, int] | None:
    if text is None or text.strip().lower() == "auto":
        return default
    match = _SIZE_RE.match(text)
    if match is None:
        raise ApiError(
            400,
            f"'size' must be WIDTHxHEIGHT (e.g. 1024x1024) or 'auto', got {text!r}",
            param="size",
            code="invalid_size",
        )
    width, height = int(match.group(1)), int(match.group(2))
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ApiError(
            400,
            f"'size' {width}x{height} is out of range: each side must be "
            f"{MIN_SIDE}..{MAX_SIDE} pixels",
            param="size",
            code="invalid_size",
        )
    return width, height


def _int(fields: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = fields.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        value = int(text.strip())
    except ValueError:
        try:
            as_float = float(text)
        except ValueError:
            as_float = math.nan
        if not as_float.is_integer():
            raise ApiError(400, f"'{name}' must be an integer, got {text!r}", param=name) from None
        value = int(as_float)
    if not low <= value <= high:
        raise ApiError(
            400,
            f"'{name}' must be between {low} and {high}, got {value}",
            param=name,
            code="integer_out_of_range",
        )
    return value


def _float(fields: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    text = fields.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, f"'{name}' must be a number, got {text!r}", param=name) from None
    if not low <= value <= high:  # also false for NaN
        raise ApiError(400, f"'{name}' must be between {low} and {high}, got {text}", param=name)
    return value


def _choice(fields: Mapping[str, str], name: str, allowed: Mapping[str, str], default: str) -> str:
    text = fields.get(name)
    if text is None or text.strip() == "":
        return default
    value = allowed.get(text.strip().lower())
    if value is None:
        choices = ", ".join(sorted(set(allowed.values())))
        raise ApiError(400, f"'{name}' must be one of {choices}, got {text!r}", param=name)
    return value


def _text(part: FormPartData) -> str:
    try:
        return part.data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(
            400, f"form field '{part.name}' is not UTF-8 text", param=part.name
        ) from None


def _json_text(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return ""  # lists and objects: no field of ours takes them; ignored like unknown fields


def _is_data_url(data: bytes) -> bool:
    return data[:5].lower() == b"data:"


def _data_url(url: str, name: str) -> bytes:
    """The bytes of a base64 `data:` URL; any other URL is refused (no outbound network)."""
    head, comma, payload = url.strip().partition(",")
    if not head.lower().startswith("data:"):
        raise ApiError(
            400,
            f"'{name}' must be a data: URL; imgtrace serve fetches nothing from the network",
            param=name,
            code="invalid_url",
        )
    if not comma or not head.lower().endswith(";base64"):
        raise ApiError(400, f"'{name}' must be a base64 data: URL", param=name, code="invalid_url")
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            400, f"'{name}' holds invalid base64", param=name, code="invalid_url"
        ) from None
