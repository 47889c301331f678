"""The per-request work of the image comparison, run in worker processes (or in-process).

A worker opens the run files itself (readers are not picklable and each process needs its own
file handles), fetches only the blobs of the request it is given, decodes them, matches outputs
and returns small result records; no image outlives its request, so memory stays bounded.
"""

from __future__ import annotations

import io
import itertools
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np
from PIL import Image

from traces import (
    MissingBlobError,
    TraceError,
    TraceFormatError,
    TraceReader,
    extension_for,
    sniff_media_type,
)

from ._imagediff import encode_jpeg, encode_png, heatmap, mask_thumbnail, thumbnail
from ._imagemetrics import (
    DecodedImage,
    ImageDecodeError,
    PairMetrics,
    decode_image,
    hamming,
    max_yiq_delta,
    pair_metrics,
    small_gray,
)
from ._imageoptions import Thresholds

__all__ = [
    "ImageInfo",
    "Job",
    "PairResult",
    "RenderJob",
    "Rendered",
    "Thresholds",
    "WorkerFailure",
    "WorkerState",
    "compare_jobs",
    "ladder",
    "render_rows",
]

THUMB_SIDE = 240


class ImageInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One output image as returned: its blob digest and what its header says."""

    digest: str
    bytes: int = 0
    format: str = ""
    mode: str = ""
    width: int = 0
    height: int = 0
    problem: str = ""
    """Why it cannot be compared (undecodable, a decompression bomb, a missing blob)."""


class PairResult(msgspec.Struct, kw_only=True):
    """The comparison of one output of A with its match in B (and in A', the noise run)."""

    request_id: str
    loop: int = 0
    request_class: str = ""
    output: int = 0
    """Index of the output in A's data[] (in B's when A has none)."""
    output_b: int | None = None
    output_noise: int | None = None
    verdict: str = ""
    reason: str = ""
    a: ImageInfo | None = None
    b: ImageInfo | None = None
    noise: ImageInfo | None = None
    metrics: PairMetrics | None = None
    noise_metrics: PairMetrics | None = None
    raw_verdict: str = ""
    """The verdict before the noise run was considered."""
    noise_verdict: str | None = None
    """The ladder applied to A against A' (for the determinism line and the gate)."""

    @property
    def d_ab(self) -> float | None:
        """1 - SSIM between A and B (0 for identical bytes; None when not comparable)."""
        return _distance(self.a, self.b, self.metrics)

    @property
    def d_aa(self) -> float | None:
        """1 - SSIM between A and A', the noise run."""
        return _distance(self.a, self.noise, self.noise_metrics)


def _distance(
    a: ImageInfo | None, b: ImageInfo | None, metrics: PairMetrics | None
) -> float | None:
    if metrics is not None:
        return metrics.distance
    if a is not None and b is not None and a.digest == b.digest:
        return 0.0
    return None


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """One request to compare: the output digests on each side, or why a side has none."""

    request_id: str
    loop: int
    request_class: str
    a: tuple[str, ...]
    b: tuple[str, ...]
    noise: tuple[str, ...] | None = None
    b_problem: str = ""
    """Why B has no outputs to compare (the A/A comparison still runs)."""


class WorkerFailure(msgspec.Struct, frozen=True):
    """A damaged file found inside a worker (exceptions with custom arguments do not pickle)."""

    path: str
    offset: int | None
    problem: str


@dataclass
class WorkerState:
    """Open readers of one process; lazily opened, closed by `close()`."""

    paths: dict[str, str]
    thresholds: Thresholds
    assets_dir: str | None = None
    salvage: bool = False
    readers: dict[str, TraceReader] = field(default_factory=dict)

    def reader(self, role: str) -> TraceReader:
        reader = self.readers.get(role)
        if reader is None:
            with warnings.catch_warnings():
                # The main process already told the user about a torn tail.
                warnings.simplefilter("ignore")
                reader = TraceReader(self.paths[role], salvage=self.salvage)
            self.readers[role] = reader
        return reader

    def blob(self, role: str, digest: str) -> bytes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.reader(role).blob(digest)

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
        self.readers.clear()


_STATE: WorkerState | None = None


def init_worker(
    paths: dict[str, str], thresholds: Thresholds, assets_dir: str | None, salvage: bool
) -> None:
    """Process-pool initializer."""
    global _STATE
    _STATE = WorkerState(paths, thresholds, assets_dir, salvage)


def compare_in_worker(jobs: list[Job]) -> list[PairResult] | WorkerFailure:
    assert _STATE is not None
    return compare_jobs(_STATE, jobs)


def render_in_worker(jobs: list[RenderJob]) -> list[Rendered] | WorkerFailure:
    assert _STATE is not None
    return render_rows(_STATE, jobs)


# -- comparing ------------------------------------------------------------------------------


class _Side:
    """The outputs of one run for one request: bytes fetched and decoded only when needed."""

    def __init__(self, state: WorkerState, role: str, digests: tuple[str, ...]) -> None:
        self.state = state
        self.role = role
        self.digests = digests
        self.infos: list[ImageInfo] = [self._probe(d) for d in digests]
        self._decoded: dict[int, DecodedImage | None] = {}

    def _probe(self, digest: str) -> ImageInfo:
        try:
            data = self.state.blob(self.role, digest)
        except MissingBlobError:
            return ImageInfo(digest=digest, problem=f"blob {digest[:12]} is missing from the file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image = Image.open(io.BytesIO(data))
                width, height = image.size
                fmt, mode = image.format or "unknown", image.mode
        except Exception:
            return ImageInfo(digest=digest, bytes=len(data))
        return ImageInfo(
            digest=digest, bytes=len(data), format=fmt, mode=mode, width=width, height=height
        )

    def decoded(self, index: int) -> DecodedImage | None:
        if index in self._decoded:
            return self._decoded[index]
        info = self.infos[index]
        image: DecodedImage | None = None
        if not info.problem:
            try:
                image = decode_image(
                    self.state.blob(self.role, info.digest),
                    max_pixels=self.state.thresholds.max_pixels,
                )
            except ImageDecodeError as exc:
                self.infos[index] = msgspec.structs.replace(info, problem=str(exc))
        self._decoded[index] = image
        return image


def _cost(a: _Side, i: int, b: _Side, j: int) -> int:
    if a.digests[i] == b.digests[j]:
        return 0
    image_a, image_b = a.decoded(i), b.decoded(j)
    if image_a is None or image_b is None:
        return 65  # worse than any real hash distance: undecodable outputs pair up last
    return hamming(image_a.phash, image_b.phash)


def match_outputs(a: _Side, b: _Side) -> list[tuple[int, int]]:
    """Pairs (i, j) with the least total pHash distance; brute force for small n, else greedy."""
    na, nb = len(a.digests), len(b.digests)
    if na == 0 or nb == 0:
        return []
    if na == 1 and nb == 1:
        return [(0, 0)]
    costs = [[_cost(a, i, b, j) for j in range(nb)] for i in range(na)]
    if min(na, nb) <= 4 and max(na, nb) <= 6:
        best: list[tuple[int, int]] = []
        best_cost = None
        if na <= nb:
            for perm in itertools.permutations(range(nb), na):
                total = sum(costs[i][j] for i, j in enumerate(perm))
                if best_cost is None or total < best_cost:
                    best_cost, best = total, list(enumerate(perm))
        else:
            for perm in itertools.permutations(range(na), nb):
                total = sum(costs[i][j] for j, i in enumerate(perm))
                if best_cost is None or total < best_cost:
                    best_cost, best = total, [(i, j) for j, i in enumerate(perm)]
        return sorted(best)
    taken_a: set[int] = set()
    taken_b: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for _, i, j in sorted((costs[i][j], i, j) for i in range(na) for j in range(nb)):
        if i not in taken_a and j not in taken_b:
            taken_a.add(i)
            taken_b.add(j)
            pairs.append((i, j))
    return sorted(pairs)


def ladder(
    a: ImageInfo, b: ImageInfo, metrics: PairMetrics | None, thresholds: Thresholds
) -> tuple[str, str]:
    """(verdict, reason) for one pair, without the noise run."""
    if a.digest == b.digest:
        return "identical-bytes", ""
    problems = [f"{side}: {info.problem}" for side, info in (("A", a), ("B", b)) if info.problem]
    if problems or metrics is None:
        return "undecodable", "; ".join(problems) or "not decodable"
    if (a.width, a.height) != (b.width, b.height):
        return "layout-differs", f"size {a.width}x{a.height} vs {b.width}x{b.height}"
    if a.mode != b.mode:
        return "layout-differs", f"mode {a.mode} vs {b.mode}"
    note = f"format {a.format} vs {b.format}" if a.format != b.format else ""
    if metrics.pixels_equal:
        return "identical-pixels", note
    if (
        metrics.max_block_ratio <= thresholds.visual_max_block_ratio
        and metrics.ssim >= thresholds.visual_min_ssim
        and metrics.phash <= thresholds.visual_max_phash
    ):
        return "visually-identical", note
    return "changed", note


def _metrics(a: _Side, i: int, b: _Side, j: int, thresholds: Thresholds) -> PairMetrics | None:
    if a.digests[i] == b.digests[j]:
        return None
    image_a, image_b = a.decoded(i), b.decoded(j)
    if image_a is None or image_b is None:
        return None
    return pair_metrics(image_a, image_b, threshold=thresholds.yiq_threshold)


def _with_noise(
    result: PairResult, side_a: _Side, side_n: _Side | None, noise_match: dict[int, int]
) -> PairResult:
    """Attach the A/A' comparison of the pair's A output (B plays no part in it)."""
    i = result.output
    if side_n is None or result.a is None or i not in noise_match:
        return result
    th = side_a.state.thresholds
    k = noise_match[i]
    result.output_noise = k
    result.noise_metrics = _metrics(side_a, i, side_n, k, th)
    result.noise = side_n.infos[k]
    result.noise_verdict = ladder(side_a.infos[i], side_n.infos[k], result.noise_metrics, th)[0]
    return result


def _compare_job(state: WorkerState, job: Job) -> list[PairResult]:
    th = state.thresholds
    side_a = _Side(state, "base", job.a)
    side_b = _Side(state, "cand", job.b)
    side_n = _Side(state, "noise", job.noise) if job.noise else None
    noise_match = dict(match_outputs(side_a, side_n)) if side_n is not None else {}
    if job.b_problem:
        # B has nothing to compare, but A against A' still tells how deterministic A is.
        return [
            _with_noise(PairResult(request_id=job.request_id, loop=job.loop,
                                   request_class=job.request_class, output=i, verdict="missing",
                                   raw_verdict="missing", reason=job.b_problem,
                                   a=side_a.infos[i]), side_a, side_n, noise_match)
            for i in range(len(job.a))
        ]  # fmt: skip
    pairs = match_outputs(side_a, side_b)
    results: list[PairResult] = []
    for i, j in pairs:
        metrics = _metrics(side_a, i, side_b, j, th)
        verdict, reason = ladder(side_a.infos[i], side_b.infos[j], metrics, th)
        result = PairResult(
            request_id=job.request_id, loop=job.loop, request_class=job.request_class,
            output=i, output_b=j, verdict=verdict, raw_verdict=verdict, reason=reason,
            a=side_a.infos[i], b=side_b.infos[j], metrics=metrics,
        )  # fmt: skip
        results.append(_with_noise(result, side_a, side_n, noise_match))
    results.extend(
        _with_noise(extra, side_a, side_n, noise_match)
        for extra in _unmatched(job, side_a, side_b, pairs)
    )
    return results


def _unmatched(job: Job, a: _Side, b: _Side, pairs: list[tuple[int, int]]) -> list[PairResult]:
    """Outputs without a partner: the two runs returned different numbers of images."""
    matched_a = {i for i, _ in pairs}
    matched_b = {j for _, j in pairs}
    count = len(a.digests)
    reason = f"count: A returned {count} image{'s' if count != 1 else ''}, B {len(b.digests)}"
    extra = [
        PairResult(request_id=job.request_id, loop=job.loop, request_class=job.request_class,
                   output=i, verdict="layout-differs", raw_verdict="layout-differs",
                   reason=reason, a=a.infos[i])
        for i in range(len(a.digests)) if i not in matched_a
    ]  # fmt: skip
    extra += [
        PairResult(request_id=job.request_id, loop=job.loop, request_class=job.request_class,
                   output=j, output_b=j, verdict="layout-differs", raw_verdict="layout-differs",
                   reason=reason, b=b.infos[j])
        for j in range(len(b.digests)) if j not in matched_b
    ]  # fmt: skip
    return extra


def compare_jobs(state: WorkerState, jobs: list[Job]) -> list[PairResult] | WorkerFailure:
    """Compare a batch of requests; a damaged file comes back as a `WorkerFailure`."""
    try:
        return [result for job in jobs for result in _compare_job(state, job)]
    except TraceFormatError as exc:
        return WorkerFailure(exc.path, exc.offset, exc.problem)
    except TraceError as exc:
        return WorkerFailure("", None, str(exc))


# -- rendering ------------------------------------------------------------------------------


class RenderJob(msgspec.Struct, frozen=True, kw_only=True):
    """Pictures to draw for one row of the HTML grid."""

    index: int
    a: str | None = None
    b: str | None = None
    noise: str | None = None
    inputs: tuple[str, ...] = ()
    diff: bool = False
    """Draw the mask and heatmap (both sides decodable and not pixel-identical)."""


class Cell(msgspec.Struct, frozen=True, kw_only=True):
    """One picture of a grid row: an embedded thumbnail and the full-size file beside the report."""

    thumb: bytes
    href: str
    width: int
    height: int


class Rendered(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    cells: dict[str, Cell]
    """Keys: input0.., a, b, noise, mask, heatmap."""


def _write_asset(directory: Path, name: str, data: bytes, *, replace: bool = False) -> str:
    target = directory / name
    if replace or not target.exists():
        # Several workers may write the same input: write whole files, then rename.
        temp = directory / f".{name}.{os.getpid()}.tmp"
        temp.write_bytes(data)
        os.replace(temp, target)
    return name


def _image_cell(
    directory: Path, name: str, data: bytes, max_pixels: int
) -> tuple[Cell | None, DecodedImage | None]:
    stored = _write_asset(directory, f"{name}.{extension_for(sniff_media_type(data))}", data)
    try:
        image = decode_image(data, max_pixels=max_pixels)
    except ImageDecodeError:
        return None, None
    thumb = encode_jpeg(thumbnail(image.rgb, THUMB_SIDE))
    return Cell(thumb=thumb, href=stored, width=image.width, height=image.height), image


def _render_one(state: WorkerState, job: RenderJob) -> Rendered:
    assert state.assets_dir is not None
    directory = Path(state.assets_dir)
    limit = state.thresholds.max_pixels
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
        cell, image = _image_cell(directory, digest[:20], data, limit)
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
    b_rgb, b_gray = b.rgb, b.small_gray
    if b_rgb.shape != a.rgb.shape:
        resized = Image.fromarray(b.rgb).resize((a.width, a.height), Image.Resampling.BILINEAR)
        b_rgb, b_gray = np.asarray(resized), small_gray(resized.convert("L"))
    full_mask, small_mask = mask_thumbnail(
        a.rgb, b_rgb, max_yiq_delta(th.yiq_threshold), THUMB_SIDE
    )
    heat = heatmap(a.rgb, a.small_gray, b_gray)
    mask_name = _write_asset(
        directory, f"row{index:05d}-mask.png", encode_png(full_mask), replace=True
    )
    # A smooth picture for the eye: JPEG is a fraction of the PNG's size and encoding time.
    heat_jpeg = encode_jpeg(heat, quality=88)
    heat_name = _write_asset(directory, f"row{index:05d}-heatmap.jpg", heat_jpeg, replace=True)
    return {
        "mask": Cell(thumb=encode_png(small_mask), href=mask_name, width=a.width, height=a.height),
        "heatmap": Cell(
            thumb=encode_jpeg(heat.resize(small_mask.size, Image.Resampling.BOX)), href=heat_name,
            width=a.width, height=a.height,
        ),
    }  # fmt: skip


def render_rows(state: WorkerState, jobs: list[RenderJob]) -> list[Rendered] | WorkerFailure:
    """Write full-size files and diff pictures into the assets folder; return thumbnails."""
    try:
        return [_render_one(state, job) for job in jobs]
    except TraceFormatError as exc:
        return WorkerFailure(exc.path, exc.offset, exc.problem)
    except TraceError as exc:
        return WorkerFailure("", None, str(exc))
