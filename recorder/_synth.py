"""Synthetic traces: an arrival process, photo-like images, edit prompts and request parameters.

Everything random comes from one `--seed` through independent numpy streams (one per aspect), so
the same seed and options give the same file byte for byte, and changing, say, the image format
leaves the arrival times and prompts as they were. See docs/synthetic.md.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from traces import (
    ArrivalProcess,
    FilePart,
    FormPart,
    Header,
    MultipartBody,
    Request,
    TextField,
    UsageError,
    sniff_media_type,
)

from ._prompts import BUILTIN_PROMPTS
from ._source_io import atomic_path, open_trace_output
from ._valuespec import ValueSpec, parse_size

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "ArrivalProcess",
    "SYNTH_EPOCH_NS",
    "SynthOptions",
    "parse_schedule",
    "synthesize",
]

SYNTH_EPOCH_NS = 1_767_225_600 * 10**9
"""Creation time written when `--seed` is given and SOURCE_DATE_EPOCH is not: 2026-01-01 UTC."""

# One independent stream per aspect (the order of this tuple is part of the file format of
# reproducibility: append, never reorder).
_STREAMS = ("arrivals", "prompts", "params", "images", "reuse", "masks", "seeds", "boundary")
MAX_REQUESTS = 10_000_000
"""The largest trace `synth` writes; arrival times are planned in memory before writing."""


# -- arrival processes --------------------------------------------------------------------------


def parse_schedule(text: str) -> list[tuple[float, float]]:
    """`0:2,60:10,120:2` as [(start_s, rate_per_s), ...]: piecewise-constant rates."""
    segments: list[tuple[float, float]] = []
    for item in text.split(","):
        start, sep, rate = item.strip().partition(":")
        try:
            if not sep:
                raise ValueError
            segment = (float(start), float(rate))
        except ValueError:
            raise UsageError(
                f"--schedule {text!r}: expected START:RATE pairs such as 0:2,60:10,120:2"
            ) from None
        if not all(math.isfinite(v) and v >= 0 for v in segment):
            raise UsageError(f"--schedule {text!r}: times and rates must be >= 0")
        segments.append(segment)
    if segments[0][0] != 0:
        raise UsageError(f"--schedule {text!r}: the first segment must start at 0")
    if any(b[0] <= a[0] for a, b in zip(segments, segments[1:], strict=False)):
        raise UsageError(f"--schedule {text!r}: segment start times must increase")
    if all(rate == 0 for _, rate in segments):
        raise UsageError(f"--schedule {text!r}: every rate is 0")
    return segments


# -- synthesis ----------------------------------------------------------------------------------


class SynthOptions(msgspec.Struct, kw_only=True):
    """Everything `imgtrace synth` takes; the defaults are the command's defaults."""

    count: int | None = None
    duration: float | None = None
    arrival: ArrivalProcess = ArrivalProcess()
    seed: int | None = None
    image_size: str = "512x512"
    image_format: str = "png"
    images_per_request: str = "1"
    reuse: float = 0.0
    mask: float = 0.0
    images_dir: str | None = None
    prompts: tuple[str, ...] = BUILTIN_PROMPTS
    prompts_source: str = "built-in"
    model: str | None = "black-forest-labs/FLUX.2-klein-4B"
    size: str = "512x512"
    n: str = "1"
    num_inference_steps: str = "4"
    guidance_scale: str = "1.0"
    output_format: str = "none"
    request_seed: str = "per-request"
    path: str = "/v1/images/edits"
    image_field: str = "auto"


class _Ref(msgspec.Struct, frozen=True):
    digest: str
    size: int
    media_type: str
    width: int
    height: int


class _Synthesizer:
    def __init__(self, options: SynthOptions, seed: int) -> None:
        self.options = options
        self.seed = seed
        import numpy as np

        children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
        self.rngs = {
            name: np.random.default_rng(child)
            for name, child in zip(_STREAMS, children, strict=True)
        }
        self.image_seq = children[_STREAMS.index("images")]
        self.image_size = ValueSpec(options.image_size, "size", "--image-size")
        self.image_format = ValueSpec(options.image_format, "str", "--image-format")
        for fmt in self.image_format.values:
            if fmt not in ("png", "jpeg", "webp"):
                raise UsageError(f"--image-format {fmt!r}: choose png, jpeg or webp")
        self.per_request = ValueSpec(options.images_per_request, "int", "--images-per-request")
        if self.per_request.absent or any(int(v) < 1 for v in self.per_request.values):
            raise UsageError("--images-per-request: every request needs at least one image")
        self.params = [
            ("n", ValueSpec(options.n, "int", "--n")),
            # Checked as WxH (or OpenAI's "auto"): a malformed size would have the server
            # reject every request of the trace.
            ("size", ValueSpec(options.size, "output_size", "--size")),
            ("output_format", ValueSpec(options.output_format, "str", "--output-format")),
            ("num_inference_steps", ValueSpec(options.num_inference_steps, "int", "--steps")),
            ("guidance_scale", ValueSpec(options.guidance_scale, "float", "--guidance-scale")),
        ]
        self.seed_policy = _parse_seed_policy(options.request_seed)
        if not 0 <= options.reuse <= 1 or not 0 <= options.mask <= 1:
            raise UsageError("--reuse and --mask are probabilities between 0 and 1")
        if options.image_field not in ("auto", "image", "image[]"):
            raise UsageError("--image-field: choose auto, image or image[]")
        self.user_images = _list_images(options.images_dir) if options.images_dir else []
        self.refs: list[_Ref] = []
        self.images_made = 0
        boundary_rng = self.rngs["boundary"]
        self.boundary = "imgtrace-" + boundary_rng.bytes(12).hex()

    def metadata(self, times: Sequence[float]) -> dict[str, Any]:
        o = self.options
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        synth: dict[str, Any] = {
            "seed": self.seed,
            **o.arrival.describe(),
            "count": len(times),
            "duration_s": o.duration,
            "span_s": span,
            "realized_rate": (len(times) - 1) / span if span > 0 else None,
            "images": {
                "source": f"dir:{o.images_dir}" if o.images_dir else "photo",
                "size": self.image_size.describe(),
                "format": self.image_format.describe(),
                "per_request": self.per_request.describe(),
                "reuse": o.reuse,
                "mask": o.mask,
            },
            "prompts": f"{o.prompts_source} ({len(o.prompts)})",
            "params": {
                "model": o.model,
                **{name: spec.describe() for name, spec in self.params},
                "seed": o.request_seed,
            },
            "path": o.path,
        }
        return {"synth": synth}

    def _new_image(self) -> tuple[bytes, int, int]:
        import numpy as np

        from ._photos import photo_bytes

        index = self.images_made
        self.images_made += 1
        if self.user_images:
            path = self.user_images[int(self.rngs["images"].integers(len(self.user_images)))]
            return path.read_bytes(), 0, 0
        # Each image has its own stream (its size and format too), so images could be made in
        # any order, and changing --image-format changes nothing but the images.
        image_rng = np.random.default_rng(
            np.random.SeedSequence(
                self.image_seq.entropy, spawn_key=(_STREAMS.index("images"), index)
            )
        )
        size = self.image_size.draw(image_rng)
        fmt = self.image_format.draw(image_rng)
        assert size is not None and fmt is not None
        width, height = parse_size(size)
        return photo_bytes(image_rng, width, height, fmt), width, height

    def _image(self, add_blob: Callable[[bytes, str | None], str]) -> _Ref:
        rngs = self.rngs
        if self.refs and rngs["reuse"].random() < self.options.reuse:
            return self.refs[int(rngs["reuse"].integers(len(self.refs)))]
        data, width, height = self._new_image()
        if not width:
            width, height = _image_dims(data)
        media = sniff_media_type(data)
        ref = _Ref(add_blob(data, media), len(data), media, width, height)
        self.refs.append(ref)
        return ref

    def request(
        self, index: int, offset_s: float, add_blob: Callable[[bytes, str | None], str]
    ) -> Request:
        o = self.options
        rngs = self.rngs
        prompt = o.prompts[int(rngs["prompts"].integers(len(o.prompts)))]
        count = int(self.per_request.draw(rngs["params"]) or 1)
        refs = [self._image(add_blob) for _ in range(max(1, count))]
        field = o.image_field if o.image_field != "auto" else ("image" if count == 1 else "image[]")
        parts: list[FormPart] = []
        if o.model is not None:
            parts.append(TextField(name="model", value=o.model))
        parts.append(TextField(name="prompt", value=prompt))
        for i, ref in enumerate(refs):
            ext = ref.media_type.split("/")[1].replace("jpeg", "jpg")
            parts.append(
                FilePart(
                    name=field,
                    blob=ref.digest,
                    size=ref.size,
                    filename=f"image{'' if i == 0 else i}.{ext}",
                    content_type=ref.media_type,
                )
            )
        if o.mask and rngs["masks"].random() < o.mask:
            from ._photos import edit_mask

            mask = edit_mask(rngs["masks"], refs[0].width, refs[0].height)
            digest = add_blob(mask, "image/png")
            parts.append(
                FilePart(
                    name="mask",
                    blob=digest,
                    size=len(mask),
                    filename="mask.png",
                    content_type="image/png",
                )
            )
        parts.append(TextField(name="response_format", value="b64_json"))
        for name, spec in self.params:
            value = spec.draw(rngs["params"])
            if value is not None:
                parts.append(TextField(name=name, value=value))
        seed = self.seed_policy(rngs["seeds"])
        if seed is not None:
            parts.append(TextField(name="seed", value=str(seed)))
        body = MultipartBody(parts=tuple(parts), boundary=self.boundary)
        return Request(
            id=f"synth-{index:06d}",
            offset_ns=round(offset_s * 1e9),
            path=o.path,
            headers=(
                ("content-type", f"multipart/form-data; boundary={self.boundary}"),
                ("accept", "application/json"),
            ),
            body=body,
        )


def _parse_seed_policy(text: str) -> Callable[[np.random.Generator], int | None]:
    policy = text.strip().lower()
    if policy in ("none", "absent"):
        return lambda rng: None
    if policy in ("per-request", "random"):
        # Non-zero: some servers treat seed 0 as "pick one at random".
        return lambda rng: int(rng.integers(1, 2**31))
    if policy.startswith("fixed:"):
        try:
            fixed = int(policy[len("fixed:") :])
        except ValueError:
            fixed = -1
        if fixed >= 0:
            return lambda rng: fixed
    raise UsageError(f"--request-seed {text!r}: choose per-request, fixed:N or none")


def _list_images(directory: str) -> list[Path]:
    folder = Path(directory)
    if not folder.is_dir():
        raise UsageError(f"--images {directory}: not a directory")
    found: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.is_file():
            with open(path, "rb") as file:
                head = file.read(64)
            if sniff_media_type(head).startswith("image/"):
                found.append(path)
    if not found:
        raise UsageError(f"--images {directory}: holds no image files (png, jpeg, webp, ...)")
    return found


def _image_dims(data: bytes) -> tuple[int, int]:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            return int(width), int(height)
    except (UnidentifiedImageError, OSError):
        return 512, 512


def creation_time(seed_given: bool) -> int:
    """Header creation time: SOURCE_DATE_EPOCH, else fixed when seeded (reproducible), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return int(epoch) * 10**9
        except ValueError:
            raise UsageError(f"SOURCE_DATE_EPOCH={epoch!r} is not an integer") from None
    return SYNTH_EPOCH_NS if seed_given else time.time_ns()


def synthesize(
    options: SynthOptions,
    output: str | os.PathLike[str],
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write a synthetic trace to `output`; returns the `synth` metadata written in its header.

    With `options.seed` set the file is reproducible byte for byte (see `creation_time`); without
    it a seed is drawn from the OS and recorded in the metadata, so the run can be repeated.
    """
    import numpy as np

    if options.seed is not None:
        if options.seed < 0:
            raise UsageError("--seed must be a non-negative integer")
        seed = options.seed
    else:
        seed = int(np.random.SeedSequence().entropy) % 2**63  # type: ignore[arg-type]
    if options.count is not None and not 1 <= options.count <= MAX_REQUESTS:
        raise UsageError(f"--count must be between 1 and {MAX_REQUESTS:,}")
    if options.duration is not None and options.duration <= 0:
        raise UsageError("--duration must be positive")
    if options.count is None and options.duration is None:
        raise UsageError("give --count or --duration")
    if options.count is None and options.duration is not None:
        expected = options.arrival.expected_count(options.duration)
        if expected > MAX_REQUESTS:
            raise UsageError(
                f"--duration {options.duration:g} at this rate means about {expected:.3g} "
                f"requests (more than {MAX_REQUESTS:,}): shorten it or cap it with --count"
            )
    synth = _Synthesizer(options, seed)
    times = options.arrival.times(synth.rngs["arrivals"], options.count, options.duration)
    if not times:
        raise UsageError("the arrival process produced no request within --duration")
    metadata = synth.metadata(times)
    header = Header(
        kind="trace",
        created_ns=creation_time(options.seed is not None),
        source="synthetic",
        metadata=metadata,
    )
    with atomic_path(output, force) as temporary, open_trace_output(temporary, header) as writer:
        for index, t in enumerate(times):
            writer.write(synth.request(index, t, writer.add_blob))
            if progress is not None:
                progress(index + 1, len(times))
    result: dict[str, Any] = metadata["synth"]
    result["images_generated"] = synth.images_made
    return result
