"""The records that cross between the main process and the workers: small, picklable structs."""

from __future__ import annotations

import msgspec

from .metrics import (
    PairMetrics,
)

__all__ = [
    "VERDICTS",
    "RequestInfo",
    "Cell",
    "ImageInfo",
    "Job",
    "PairResult",
    "RenderJob",
    "Rendered",
    "WorkerFailure",
]


VERDICTS = (
    "identical-bytes",
    "identical-pixels",
    "visually-identical",
    "within-noise",
    "changed",
    "layout-differs",
    "missing",
    "undecodable",
)
"""Every verdict an output pair can get, from the mildest to the most severe."""


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


class RequestInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What the trace says about a request: its prompt, parameters and input image digests."""

    prompt: str = ""
    params: dict[str, str] = {}
    inputs: tuple[str, ...] = ()
    path: str = ""
