"""Compare the output images of two runs (and an A/A noise run): verdicts, statistics, pictures.

`compare_run_images` pairs requests by (id, loop), hands each request to a worker process that
fetches and decodes only that request's blobs, and collects small result records. The noise run
turns raw differences into "within noise" when the base configuration differs as much from
itself; the Diffy-style gate and a paired test decide whether B changed outputs at all.
"""

from __future__ import annotations

import multiprocessing
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from traces import (
    MultipartBody,
    Request,
    TextField,
    TraceError,
    TraceFormatError,
    TraceRecoveryWarning,
    UsageError,
    input_images,
    request_classes,
)

from .._errors import AnalysisError
from .._load import FileContents, read_contents
from .noise import summarize_noise
from .options import Thresholds
from .records import Job, PairResult, Rendered, RenderJob, RequestInfo, WorkerFailure
from .render import render_in_worker, render_rows
from .report import ImageReport, severity_key
from .state import WorkerState, init_worker
from .verdict import apply_noise
from .work import compare_in_worker, compare_jobs

__all__ = ["compare_run_images"]

_BATCH = 4  # requests per worker task: enough to amortise the IPC, small enough to balance
_T = TypeVar("_T")
ImageProgress = Callable[[str, int, int], None]
"""`progress(step, done, total)`: how far a step of the image comparison has come."""


# -- reading the runs -----------------------------------------------------------------------


class _Entry(msgspec.Struct, frozen=True):
    images: tuple[str, ...]
    problem: str
    """Empty when the request succeeded; else why it has no outputs (status, error)."""


def _entries(reader: FileContents, label: str) -> dict[tuple[str, int], _Entry]:
    """Outputs per (request id, loop): from outcomes of a run, from responses of a trace."""
    found: dict[tuple[str, int], _Entry] = {}
    for exchange in reader.exchanges():
        if not exchange.warmup:
            found[(exchange.request_id, exchange.loop)] = _entry(
                exchange.status, exchange.error, exchange.images
            )
    if reader.kind == "trace" and not found:
        raise AnalysisError(
            f"{label} {reader.path} is a trace without recorded responses: replay it "
            "(imgtrace replay) and compare the run files"
        )
    return found


def _entry(status: int | None, error: Any, images: tuple[str, ...]) -> _Entry:
    if error is not None:
        return _Entry(images, f"{error.kind}: {error.message}".rstrip(": "))
    if status is None or not 200 <= status < 300:
        return _Entry(images, f"HTTP {status}")
    return _Entry(images, "")


def _trace_path(reader: FileContents) -> Path | None:
    """The trace a run replayed, when its file is still where the header says (or beside)."""
    if reader.kind == "trace":
        return reader.path
    named = reader.header.trace_path
    if not named:
        return None
    for candidate in (
        Path(named),
        reader.path.parent / named,
        reader.path.parent / Path(named).name,
    ):
        if candidate.is_file():
            return candidate
    return None


def _request_infos(
    trace: Path, expected_digest: str | None
) -> tuple[dict[str, RequestInfo], dict[str, str], str]:
    """Prompt, parameters and input images of each request, and its request class (the
    latency analysis's, `traces.request_classes`); ({}, {}, note) when unusable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            contents = read_contents(trace)
    except TraceError as exc:
        return {}, {}, f"inputs not shown: {exc}"
    if expected_digest and contents.trace_digest != expected_digest:
        return {}, {}, f"inputs not shown: {trace} is not the trace this run replayed"
    infos = {request.id: _request_info(request) for request in contents.requests}
    return infos, request_classes(contents.requests), ""


def _request_info(request: Request) -> RequestInfo:
    prompt = ""
    params: dict[str, str] = {}
    if isinstance(request.body, MultipartBody):
        for part in request.body.parts:
            if isinstance(part, TextField):
                if part.name == "prompt":
                    prompt = part.value
                elif len(params) < 12:
                    params[part.name] = part.value[:80]
    inputs = tuple(part.blob for part in input_images(request.body))[:4]
    return RequestInfo(prompt=prompt, params=params, inputs=inputs, path=request.path)


# -- the comparison -------------------------------------------------------------------------


def compare_run_images(
    base: Path,
    cand: Path,
    noise: Path | None,
    *,
    thresholds: Thresholds,
    jobs: int,
    assets_dir: Path | None,
    force: bool,
    salvage: bool = False,
    progress: ImageProgress | None = None,
) -> ImageReport:
    """Compare the outputs of `cand` (B) with `base` (A), calibrated by `noise` (A') if given.

    With `assets_dir`, full-size outputs, inputs and diff pictures of the `render_limit` most
    severe outputs are written there (refused if it holds files, unless `force`). `salvage`
    reads damaged files up to the damage, as `--salvage` does for the latency analysis.
    `progress(step, done, total)` hears of each finished batch of work.
    """
    if assets_dir is not None:
        _check_assets(assets_dir, force)
    paths = {
        role: str(path) for role, path in (("base", base), ("cand", cand), ("noise", noise)) if path
    }
    entries, trace, infos, classes, note = _read_runs(paths, salvage)
    if trace is not None and infos:
        paths["trace"] = str(trace)
    pairs, work = _plan(entries, classes)
    if assets_dir is not None:
        assets_dir.mkdir(parents=True, exist_ok=True)
    state = WorkerState(paths, thresholds, str(assets_dir) if assets_dir else None, salvage)
    with _Runner(state, jobs) as runner:
        batches = [work[i : i + _BATCH] for i in range(0, len(work), _BATCH)]
        for result in runner.run(
            compare_in_worker, compare_jobs, batches, "comparing images", progress
        ):
            pairs.extend(result)
        pairs = apply_noise(pairs, thresholds, noise is not None)
        pairs.sort(key=severity_key)
        rendered: dict[int, Rendered] = {}
        if assets_dir is not None:
            render = _render_jobs(pairs, infos, thresholds.render_limit)
            chunks = [render[i : i + _BATCH] for i in range(0, len(render), _BATCH)]
            drawn = runner.run(
                render_in_worker, render_rows, chunks, "drawing diff pictures", progress
            )
            for done in drawn:
                rendered.update((row.index, row) for row in done)
    return ImageReport(
        base=str(base), cand=str(cand), noise=str(noise) if noise else None,
        thresholds=thresholds, pairs=pairs, requests=infos, rendered=rendered,
        assets_dir=assets_dir,
        noise_summary=summarize_noise(pairs, thresholds) if noise is not None else None,
        notes=[note] if note else [],
    )  # fmt: skip


def _check_assets(assets_dir: Path, force: bool) -> None:
    if assets_dir.exists() and not assets_dir.is_dir():
        raise UsageError(f"{assets_dir} exists and is not a folder: choose another report name")
    if assets_dir.is_dir() and any(assets_dir.iterdir()) and not force:
        raise UsageError(f"{assets_dir} already exists: choose another output or pass --force")


_Entries = dict[tuple[str, int], _Entry]


def _read_runs(
    paths: dict[str, str], salvage: bool
) -> tuple[dict[str, _Entries], Path | None, dict[str, RequestInfo], dict[str, str], str]:
    """The outputs of each run, the trace they replayed, what it says about each request and
    the request classes (each file is read once per command: `read_contents`)."""
    labels = {"base": "BASE", "cand": "CAND", "noise": "--noise"}
    with warnings.catch_warnings():
        # A torn tail is reported once, by the latency analysis that reads the same files.
        warnings.simplefilter("ignore", TraceRecoveryWarning)
        contents = {role: read_contents(path, salvage=salvage) for role, path in paths.items()}
    entries = {role: _entries(c, labels[role]) for role, c in contents.items()}
    trace = _trace_path(contents["base"])
    note = "" if trace else "inputs not shown: the trace this run replayed was not found"
    infos: dict[str, RequestInfo] = {}
    classes: dict[str, str] = {}
    if trace is not None:
        infos, classes, note = _request_infos(trace, contents["base"].header.trace_digest)
    return entries, trace, infos, classes, note


def _plan(
    entries: dict[str, _Entries], classes: dict[str, str]
) -> tuple[list[PairResult], list[Job]]:
    """Jobs for requests with outputs on both sides; 'missing' results for the others."""
    base, cand = entries["base"], entries["cand"]
    noise = entries.get("noise")
    missing: list[PairResult] = []
    jobs: list[Job] = []
    keys = list(base) + [key for key in cand if key not in base]
    for key in keys:
        request_class = classes.get(key[0], "all")
        a, b = base.get(key), cand.get(key)
        problem = _missing_reason(a, b)
        if problem == "":
            continue  # neither side returned images (e.g. response_format=url)
        n = noise.get(key) if noise is not None else None
        noise_images = n.images if n is not None and not n.problem and n.images else None
        if a is not None and not a.problem and a.images and (problem is None or noise_images):
            jobs.append(
                Job(
                    request_id=key[0],
                    loop=key[1],
                    request_class=request_class,
                    a=a.images,
                    b=b.images if b is not None else (),
                    noise=noise_images,
                    b_problem=problem or "",
                )
            )
            continue
        assert problem is not None
        count = max(len(a.images) if a else 0, len(b.images) if b else 0, 1)
        missing.extend(
            PairResult(request_id=key[0], loop=key[1], request_class=request_class, output=i,
                       verdict="missing", raw_verdict="missing", reason=problem)
            for i in range(count)
        )  # fmt: skip
    return missing, jobs


def _missing_reason(a: _Entry | None, b: _Entry | None) -> str | None:
    """None when both sides can be compared; "" when neither has images; else the reason."""
    if a is None:
        return "not in the base run"
    if b is None:
        return "not in the candidate run"
    if a.problem and b.problem:
        return f"failed in both runs (A {a.problem}; B {b.problem})"
    if a.problem:
        return f"failed in A: {a.problem}"
    if b.problem:
        return f"failed in B: {b.problem}"
    if not a.images and not b.images:
        return ""
    if not a.images or not b.images:
        side = "A" if not a.images else "B"
        return f"{side} returned no images"
    return None


def _render_jobs(
    pairs: list[PairResult], infos: dict[str, RequestInfo], limit: int
) -> list[RenderJob]:
    jobs = []
    for index, pair in enumerate(pairs[:limit]):
        info = infos.get(pair.request_id)
        drawable = pair.metrics is not None and not pair.metrics.pixels_equal
        jobs.append(RenderJob(
            index=index,
            a=pair.a.digest if pair.a else None,
            b=pair.b.digest if pair.b else None,
            noise=pair.noise.digest if pair.noise else None,
            inputs=info.inputs if info else (),
            diff=drawable,
        ))  # fmt: skip
    return jobs


class _Runner:
    """Runs batches in a process pool (jobs > 1) or in this process, with a progress bar."""

    def __init__(self, state: WorkerState, jobs: int) -> None:
        self.state = state
        self.pool: ProcessPoolExecutor | None = None
        if jobs > 1:
            # spawn: forking a process that runs threads (progress bars, writers) is unsafe.
            self.pool = ProcessPoolExecutor(
                max_workers=jobs,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(state.paths, state.thresholds, state.assets_dir, state.salvage),
            )
        self.window = 4 * max(1, jobs)

    def __enter__(self) -> _Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        self.state.close()

    def run(
        self,
        remote: Callable[[list[Any]], list[_T] | WorkerFailure],
        local: Callable[[WorkerState, list[Any]], list[_T] | WorkerFailure],
        batches: Sequence[list[Any]],
        description: str,
        progress: ImageProgress | None,
    ) -> Iterator[list[_T]]:
        total = len(batches)
        if progress is not None:
            progress(description, 0, total)
        for done, result in enumerate(self._results(remote, local, batches), 1):
            if isinstance(result, WorkerFailure):
                if result.path:
                    raise TraceFormatError(result.path, result.offset, result.problem)
                raise AnalysisError(result.problem)
            if progress is not None:
                progress(description, done, total)
            yield result

    def _results(
        self,
        remote: Callable[[list[Any]], list[_T] | WorkerFailure],
        local: Callable[[WorkerState, list[Any]], list[_T] | WorkerFailure],
        batches: Sequence[list[Any]],
    ) -> Iterator[list[_T] | WorkerFailure]:
        if self.pool is None:
            for batch in batches:
                yield local(self.state, batch)
            return
        # A bounded window of tasks in flight keeps memory flat for any number of requests.
        pending: list[Future[list[_T] | WorkerFailure]] = []
        try:
            for batch in batches:
                pending.append(self.pool.submit(remote, batch))
                if len(pending) >= self.window:
                    yield pending.pop(0).result()
            for future in pending:
                yield future.result()
        except BrokenProcessPool:
            raise AnalysisError(
                "an image comparison worker died (out of memory?): rerun with --jobs 1, or "
                "lower --image-max-pixels"
            ) from None
