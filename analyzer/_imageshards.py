"""The image comparison spread over machines: one shard of the pairs each, merged exactly.

Shard I of N compares the outputs of the requests whose (request id, loop) falls to it
(`pair_part`, a stable hash, so BASE, CAND and the noise run agree without talking) and writes
a *partial image result*: a JSON file with its pairs as compared, the thresholds and the three
runs' names. Merging checks that the partials are the shards of one comparison, complete and
disjoint, and decides the noise rule again over all the pairs (it is per request today, so this
changes nothing; a rule over the whole run would be decided here, never per shard). Everything
run-level (the noise summary, the paired test, the gate, the tables) is computed from the
merged pairs. The merged result then stands in for the image part of `compare`
(`--images-from`), verdicts and `--fail-on` rules included.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from traces import UsageError, copy_part

from ._images.noise import summarize_noise
from ._images.options import Thresholds
from ._images.records import PairResult, RequestInfo
from ._images.report import ImageReport, severity_key

__all__ = [
    "PartialImages",
    "compare_images_part",
    "is_partial",
    "merge_partials",
    "pair_part",
    "read_partial",
    "report_from_partial",
    "write_partial",
]

FORMAT = "imgtrace-partial-images"


class PartialImages(msgspec.Struct, kw_only=True):
    """Shard `index` of `count` of an image comparison (both None once merged)."""

    format: str = FORMAT
    version: int = 1
    base: str
    cand: str
    noise: str | None = None
    index: int | None = None
    count: int | None = None
    thresholds: Thresholds
    pairs: list[PairResult] = []
    requests: dict[str, RequestInfo] = {}
    notes: list[str] = []


def pair_part(request_id: str, loop: int, count: int) -> int:
    """The shard that compares the outputs of (request id, loop)."""
    return zlib.crc32(f"{request_id}\0{loop}".encode()) % count


def compare_images_part(
    base: Path,
    cand: Path,
    noise: Path | None,
    *,
    index: int,
    count: int,
    thresholds: Thresholds,
    jobs: int,
    force: bool = False,
    salvage: bool = False,
) -> PartialImages:
    """Compare shard `index` of `count` of the image pairs (the runs' parts are copied aside)."""
    from ._images.compare import compare_run_images

    def keep(request_id: str, loop: int) -> bool:
        return pair_part(request_id, loop, count) == index

    with tempfile.TemporaryDirectory(prefix="imgtrace-images-") as folder:
        parts: list[Path | None] = []
        for role, path in (("base", base), ("cand", cand), ("noise", noise)):
            if path is None:
                parts.append(None)
                continue
            part = Path(folder) / f"{role}.imgtrace"
            copy_part(path, part, keep)
            parts.append(part)
        report = compare_run_images(
            parts[0] or base,
            parts[1] or cand,
            parts[2],
            thresholds=thresholds,
            jobs=jobs,
            assets_dir=None,
            force=force,
            salvage=salvage,
        )
    return PartialImages(
        base=_name(base),
        cand=_name(cand),
        noise=_name(noise) if noise is not None else None,
        index=index,
        count=count,
        thresholds=thresholds,
        pairs=report.pairs,
        requests=report.requests,
        notes=report.notes,
    )


def _name(path: Path) -> str:
    return os.fspath(path)


def write_partial(partial: PartialImages, path: Path) -> None:
    path.write_bytes(msgspec.json.encode(partial))


def read_partial(path: Path) -> PartialImages:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        partial = msgspec.json.decode(data, type=PartialImages)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UsageError(f"{path}: not a partial image result ({exc})") from None
    if partial.format != FORMAT:
        raise UsageError(f"{path}: not a partial image result")
    return partial


def is_partial(path: Path) -> bool:
    """Whether `path` looks like a partial image result (JSON), not a trace or run file."""
    try:
        with open(path, "rb") as file:
            return file.read(1) == b"{"
    except OSError:
        return False


def merge_partials(paths: Sequence[Path]) -> PartialImages:
    """The shards of one image comparison as one complete result; checks they fit together."""
    partials = [read_partial(path) for path in paths]
    head, first = partials[0], paths[0]
    for path, partial in zip(paths, partials, strict=True):
        if partial.index is None or partial.count is None:
            raise UsageError(f"{path}: already a complete image result, not a shard")
        for field in ("base", "cand", "noise", "thresholds", "count"):
            if getattr(partial, field) != getattr(head, field):
                raise UsageError(
                    f"{first} and {path} are shards of different comparisons ({field} differs)"
                )
    assert head.count is not None
    seen: dict[int, Path] = {}
    for path, partial in zip(paths, partials, strict=True):
        assert partial.index is not None
        if partial.index in seen:
            raise UsageError(
                f"image shard {partial.index}/{head.count} is given twice: "
                f"{seen[partial.index]} and {path}"
            )
        seen[partial.index] = path
    missing = [f"{i}/{head.count}" for i in range(head.count) if i not in seen]
    if missing:
        raise UsageError(f"image shard {', '.join(missing)} missing: merge every shard")
    pairs: list[PairResult] = []
    requests: dict[str, RequestInfo] = {}
    notes: list[str] = []
    for partial in partials:
        pairs += partial.pairs
        requests.update(partial.requests)
        notes += [note for note in partial.notes if note not in notes]
    for pair in pairs:
        if pair.verdict == "within-noise":
            pair.verdict = "changed"  # decided again below, with the band of every pair
    return PartialImages(
        base=head.base,
        cand=head.cand,
        noise=head.noise,
        thresholds=head.thresholds,
        pairs=_with_noise(pairs, head.thresholds, head.noise is not None),
        requests=requests,
        notes=notes,
    )


def _with_noise(pairs: list[PairResult], thresholds: Thresholds, noise: bool) -> list[PairResult]:
    from ._images.verdict import apply_noise

    return apply_noise(pairs, thresholds, noise)


def report_from_partial(
    partial: PartialImages, base: Path, cand: Path, noise: Path | None
) -> ImageReport:
    """The image part of `compare BASE CAND` from a merged result of the same three runs."""
    if partial.index is not None:
        raise UsageError(
            f"the image result is shard {partial.index}/{partial.count}: merge every shard "
            "first (imgtrace merge)"
        )
    given: dict[str, Any] = {"BASE": base, "CAND": cand, "--noise": noise}
    stored = {"BASE": partial.base, "CAND": partial.cand, "--noise": partial.noise}
    for role, path in given.items():
        named = None if path is None else os.fspath(path)
        if named != stored[role] and not _same_file(named, stored[role]):
            raise UsageError(
                f"the image result compares {role} {stored[role]}, not {named}: give the runs "
                "it was computed from"
            )
    pairs = sorted(partial.pairs, key=severity_key)
    return ImageReport(
        base=partial.base,
        cand=partial.cand,
        noise=partial.noise,
        thresholds=partial.thresholds,
        pairs=pairs,
        requests=partial.requests,
        noise_summary=summarize_noise(pairs, partial.thresholds) if partial.noise else None,
        notes=partial.notes,
    )


def _same_file(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
