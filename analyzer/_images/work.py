"""The per-request work of the image comparison, run in worker processes (or in-process).

A worker opens the run files itself (readers are not picklable and each process needs its own
file handles), fetches only the blobs of the request it is given, decodes them, matches outputs
and returns small result records; no image outlives its request, so memory stays bounded.
"""

from __future__ import annotations

import io
import itertools
import warnings

import msgspec
from PIL import Image

from traces import (
    MissingBlobError,
    TraceError,
    TraceFormatError,
)

from .metrics import (
    DecodedImage,
    ImageDecodeError,
    PairMetrics,
    decode_image,
    hamming,
    pair_metrics,
)
from .options import Thresholds
from .records import ImageInfo, Job, PairResult, WorkerFailure
from .state import WorkerState, current
from .verdict import ladder

__all__ = ["compare_in_worker", "compare_jobs", "match_outputs"]


def compare_in_worker(jobs: list[Job]) -> list[PairResult] | WorkerFailure:
    return compare_jobs(current(), jobs)


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


def _metrics(a: _Side, i: int, b: _Side, j: int, thresholds: Thresholds) -> PairMetrics | None:
    if a.digests[i] == b.digests[j]:
        return None
    image_a, image_b = a.decoded(i), b.decoded(j)
    if image_a is None or image_b is None:
        return None
    return pair_metrics(
        image_a,
        image_b,
        threshold=thresholds.yiq_threshold,
        local_threshold=thresholds.visual_max_local,
        min_ssim=thresholds.visual_min_ssim,
    )


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
