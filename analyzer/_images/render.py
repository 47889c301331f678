"""The HTML report's pictures for the most severe rows: full-size files, masks, heatmaps."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from traces import (
    MissingBlobError,
    TraceError,
    TraceFormatError,
    extension_for,
    sniff_media_type,
)

from .colour import local_map
from .metrics import (
    DecodedImage,
    ImageDecodeError,
    decode_image,
)
from .options import Thresholds
from .pictures import encode_jpeg, encode_png, heatmap, mask_thumbnail, thumbnail
from .pixels import max_yiq_delta
from .records import Cell, Rendered, RenderJob, WorkerFailure
from .state import WorkerState, current

__all__ = ["THUMB_SIDE", "VIEW_SIDE", "render_in_worker", "render_rows"]

THUMB_SIDE = 240
# The longest side of a picture opened from the report; larger ones are downscaled for the eye.
VIEW_SIDE = 1024
VIEW_QUALITY = 90


def render_in_worker(jobs: list[RenderJob]) -> list[Rendered] | WorkerFailure:
    return render_rows(current(), jobs)


def _write_asset(directory: Path, name: str, data: bytes, *, replace: bool = False) -> str:
    target = directory / name
    if replace or not target.exists():
        # Several workers may write the same input: write whole files, then rename.
        temp = directory / f".{name}.{os.getpid()}.tmp"
        temp.write_bytes(data)
        os.replace(temp, target)
    return name


def _image_cell(
    directory: Path, name: str, data: bytes, th: Thresholds
) -> tuple[Cell | None, DecodedImage | None]:
    try:
        image = decode_image(data, max_pixels=th.max_pixels)
    except ImageDecodeError:
        return None, None
    if th.full_images:
        stored = _write_asset(directory, f"{name}.{extension_for(sniff_media_type(data))}", data)
    else:
        view = encode_jpeg(thumbnail(image.rgb, VIEW_SIDE), quality=VIEW_QUALITY)
        stored = _write_asset(directory, f"{name}-view.jpg", view)
    thumb = encode_jpeg(thumbnail(image.rgb, THUMB_SIDE))
    return Cell(thumb=thumb, href=stored, width=image.width, height=image.height), image


def _render_one(state: WorkerState, job: RenderJob) -> Rendered:
    assert state.assets_dir is not None
    directory = Path(state.assets_dir)
    cells: dict[str, Cell] = {}
    sources = [("a", "base", job.a), ("b", "cand", job.b), ("noise", "noise", job.noise)]
    sources += [(f"input{n}", "trace", digest) for n, digest in enumerate(job.inputs)]
    decoded: dict[str, DecodedImage] = {}
    for key, role, digest in sources:
        if digest is None or role not in state.paths:
            continue
        try:
            data = state.blob(role, digest)
        except MissingBlobError:
            continue
        # Files are named by digest: identical outputs and repeated inputs are stored once.
        cell, image = _image_cell(directory, digest[:20], data, state.thresholds)
        if cell is not None and image is not None:
            cells[key] = cell
            decoded[key] = image
    if job.diff and "a" in decoded and "b" in decoded:
        cells.update(
            _diff_cells(directory, job.index, decoded["a"], decoded["b"], state.thresholds)
        )
    return Rendered(index=job.index, cells=cells)


def _diff_cells(
    directory: Path, index: int, a: DecodedImage, b: DecodedImage, th: Thresholds
) -> dict[str, Cell]:
    b_rgb = b.rgb
    if b_rgb.shape != a.rgb.shape:
        resized = Image.fromarray(b.rgb).resize((a.width, a.height), Image.Resampling.BILINEAR)
        b_rgb = np.asarray(resized)
    full_mask, small_mask = mask_thumbnail(
        a.rgb, b_rgb, max_yiq_delta(th.yiq_threshold), THUMB_SIDE
    )
    local = local_map(a.rgb, b_rgb, local_threshold=th.visual_max_local)
    heat = heatmap(a.rgb, local, th.visual_max_local)
    mask_name = _write_asset(
        directory, f"row{index:05d}-mask.png", encode_png(full_mask), replace=True
    )
    # A smooth picture for the eye: JPEG is a fraction of the PNG's size and encoding time.
    view = heat if th.full_images else thumbnail(np.asarray(heat.convert("RGB")), VIEW_SIDE)
    heat_jpeg = encode_jpeg(view, quality=88)
    heat_name = _write_asset(directory, f"row{index:05d}-heatmap.jpg", heat_jpeg, replace=True)
    return {
        "mask": Cell(thumb=encode_png(small_mask), href=mask_name, width=a.width, height=a.height),
        "heatmap": Cell(
            thumb=encode_jpeg(heat.resize(small_mask.size, Image.Resampling.BOX)), href=heat_name,
            width=a.width, height=a.height,
        ),
    }  # fmt: skip


def render_rows(state: WorkerState, jobs: list[RenderJob]) -> list[Rendered] | WorkerFailure:
    """Write views (or, with `full_images`, the originals) and diff pictures into the assets
    folder; return thumbnails."""
    try:
        return [_render_one(state, job) for job in jobs]
    except TraceFormatError as exc:
        return WorkerFailure(exc.path, exc.offset, exc.problem)
    except TraceError as exc:
        return WorkerFailure("", None, str(exc))
