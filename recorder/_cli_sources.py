"""`imgtrace synth`, `imgtrace import aiperf-raw|aiperf-input|har`, `imgtrace export aiperf-input`.

Handlers import their modules lazily so that `imgtrace --help` does not load numpy or Pillow.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `synth`, `import` and `export` to `imgtrace`."""
    _register_synth(subparsers)
    _register_import(subparsers)
    _register_export(subparsers)


# -- shared helpers -------------------------------------------------------------------------------


def _add_output(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "-o", "--output", required=True, metavar="FILE", help=f"the {what} to write"
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite the output if it exists (else refused)"
    )
    parser.add_argument(
        "--json",
        metavar="FILE",
        help="also write a machine-readable summary as JSON to FILE (`-` for standard output)",
    )


def _write_json(target: str | None, value: Any, force: bool) -> None:
    if target is None:
        return
    import msgspec

    from ._source_io import atomic_text

    text = msgspec.json.format(msgspec.json.encode(value), indent=2).decode() + "\n"
    with atomic_text(target, force) as file:
        file.write(text)


@contextlib.contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr (only on a terminal); yields `update(done, total)`."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


# -- synth ----------------------------------------------------------------------------------------

_SYNTH_EPILOG = """\
value specs (for --size, --n, --steps, --guidance-scale, --output-format, --image-size,
--image-format, --images-per-request): a value (4), a list drawn uniformly (4,8,28), a weighted
list (512x512@3,1024x1024@1), uniform(LO,HI), normal(MEAN,SD), or none (field left out).
Same --seed and options give the same file, byte for byte. See docs/synthetic.md."""


def _register_synth(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write a synthetic trace: arrival process, photo-like images, prompts, parameters",
        description="Write a synthetic image-edit trace, reproducible from --seed.",
        epilog=_SYNTH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_output(parser, "trace file")
    size = parser.add_argument_group("how many")
    size.add_argument(
        "--count", type=int, metavar="N", help="number of requests (default 100 without --duration)"
    )
    size.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="stop at this offset (with --count: whichever comes first)",
    )
    timing = parser.add_argument_group("arrivals")
    timing.add_argument(
        "--arrival",
        choices=("constant", "poisson", "gamma"),
        default="poisson",
        help="arrival process (default poisson)",
    )
    timing.add_argument("--rate", type=float, metavar="R", help="requests per second (default 1)")
    timing.add_argument(
        "--schedule",
        metavar="T:R,...",
        help="piecewise-constant rate instead of --rate: START_S:RATE pairs, e.g. 0:2,60:10,120:2",
    )
    timing.add_argument(
        "--burstiness",
        type=float,
        metavar="B",
        default=1.0,
        help="gamma shape: 1 = Poisson, <1 burstier, >1 smoother (coefficient of variation "
        "1/sqrt(B)); only with --arrival gamma",
    )
    timing.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="generator seed; same seed, same file (default: random, recorded)",
    )
    images = parser.add_argument_group("reference images")
    images.add_argument(
        "--image-size", default="512x512", metavar="SPEC", help="WxH spec (default 512x512)"
    )
    images.add_argument(
        "--image-format", default="png", metavar="SPEC", help="png, jpeg, webp spec (default png)"
    )
    images.add_argument(
        "--images-per-request", default="1", metavar="SPEC", help="images per request (default 1)"
    )
    images.add_argument(
        "--reuse",
        type=float,
        default=0.0,
        metavar="P",
        help="probability a request edits an earlier request's image again (default 0)",
    )
    images.add_argument(
        "--mask", type=float, default=0.0, metavar="P", help="probability a request has a mask"
    )
    images.add_argument(
        "--images", metavar="DIR", help="draw reference images from the image files in DIR"
    )
    images.add_argument(
        "--image-field",
        default="auto",
        choices=("auto", "image", "image[]"),
        metavar="NAME",
        help="form field of the images: auto (image for one, image[] for several), image, image[]",
    )
    params = parser.add_argument_group("request parameters")
    params.add_argument(
        "--prompts", metavar="FILE", help="prompts, one per line (default: built-in corpus)"
    )
    params.add_argument(
        "--model",
        default="black-forest-labs/FLUX.2-klein-4B",
        help="model field (`none` leaves it out; default black-forest-labs/FLUX.2-klein-4B)",
    )
    params.add_argument(
        "--size", default="512x512", metavar="SPEC", help="output size (default 512x512)"
    )
    params.add_argument("--n", default="1", metavar="SPEC", help="images per response (default 1)")
    params.add_argument(
        "--steps", default="4", metavar="SPEC", help="num_inference_steps (default 4)"
    )
    params.add_argument(
        "--guidance-scale", default="1.0", metavar="SPEC", help="guidance_scale (default 1.0)"
    )
    params.add_argument(
        "--output-format", default="none", metavar="SPEC", help="png/jpeg/webp spec (default none)"
    )
    params.add_argument(
        "--request-seed",
        default="per-request",
        metavar="POLICY",
        help="seed field: per-request (random non-zero, default), fixed:N, or none",
    )
    params.add_argument(
        "--path", default="/v1/images/edits", help="request path (default /v1/images/edits)"
    )
    parser.set_defaults(handler=_synth)


def _synth(args: argparse.Namespace) -> int:
    from traces import UsageError

    from ._prompts import BUILTIN_PROMPTS, load_prompts
    from ._synth import ArrivalProcess, SynthOptions, parse_schedule, synthesize

    if args.rate is not None and args.schedule is not None:
        raise UsageError("give --rate or --schedule, not both")
    if args.rate is not None and not args.rate > 0:
        raise UsageError("--rate must be positive")
    if args.burstiness <= 0:
        raise UsageError("--burstiness must be positive")
    if args.burstiness != 1.0 and args.arrival != "gamma":
        raise UsageError("--burstiness needs --arrival gamma")
    schedule = parse_schedule(args.schedule) if args.schedule else [(0.0, args.rate or 1.0)]
    count = args.count
    if count is None and args.duration is None:
        count = 100
    options = SynthOptions(
        count=count,
        duration=args.duration,
        arrival=ArrivalProcess(
            kind=args.arrival, schedule=tuple(schedule), burstiness=args.burstiness
        ),
        seed=args.seed,
        image_size=args.image_size,
        image_format=args.image_format,
        images_per_request=args.images_per_request,
        reuse=args.reuse,
        mask=args.mask,
        images_dir=args.images,
        prompts=load_prompts(args.prompts) if args.prompts else BUILTIN_PROMPTS,
        prompts_source=args.prompts or "built-in",
        model=None if args.model.lower() == "none" else args.model,
        size=args.size,
        n=args.n,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        output_format=args.output_format,
        request_seed=args.request_seed,
        path=args.path,
        image_field=args.image_field,
    )
    with _progress("synthesizing") as update:
        result = synthesize(options, args.output, force=args.force, progress=update)
    rate = result.get("rate")
    shape = f"{result['arrival']} at {rate:g} req/s" if rate else f"{result['arrival']} schedule"
    print(
        f"wrote {result['count']} requests ({result['images_generated']} new images) to "
        f"{args.output}: {shape}, seed {result['seed']}",
        file=sys.stderr,
    )
    _write_json(args.json, result, args.force)
    return 0


# -- import / export ------------------------------------------------------------------------------


def _add_import_common(parser: argparse.ArgumentParser) -> None:
    _add_output(parser, "trace file")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip lines or entries that cannot be imported (counted) instead of stopping",
    )


def _register_import(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "import",
        help="turn an AIPerf export or input file, or a HAR capture, into a trace",
        description="Turn other tools' traces into imgtrace trace files. See docs/importing.md.",
    )
    formats = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    raw = formats.add_parser(
        "aiperf-raw",
        help="AIPerf profile_export_raw.jsonl (--export-level raw) of an image_edit run",
        description="Import an AIPerf raw export: original send times and recorded responses.",
    )
    raw.add_argument("source", metavar="FILE", help="profile_export_raw.jsonl")
    _add_import_common(raw)
    raw.add_argument(
        "--include-warmup",
        action="store_true",
        help="keep warmup requests (benchmark_phase=warmup), which are skipped by default",
    )
    raw.set_defaults(handler=_import_aiperf_raw)
    turn = formats.add_parser(
        "aiperf-input",
        help="AIPerf single_turn JSONL input file (text, image, timestamp/delay, extra)",
        description="Import an AIPerf single_turn input file as AIPerf's image_edit would send it.",
    )
    turn.add_argument("source", metavar="FILE", help="the .jsonl input file")
    _add_import_common(turn)
    turn.add_argument("--model", help="model field for lines that do not name one")
    turn.add_argument(
        "--rate",
        type=float,
        help="lines without timestamp or delay follow the previous one at this rate (req/s); "
        "default: at the same time",
    )
    turn.add_argument(
        "--extra-inputs",
        action="append",
        default=[],
        metavar="KEY:VALUE",
        help="a form field for every request, like aiperf --extra-inputs (repeatable; a "
        "line's `extra` wins)",
    )
    turn.set_defaults(handler=_import_aiperf_input)
    har = formats.add_parser(
        "har",
        help="HAR 1.2 capture (browser devtools, mitmproxy) with request bodies",
        description="Import the image-edit requests of a HAR 1.2 file, with their responses.",
    )
    har.add_argument("source", metavar="FILE", help="the .har file")
    _add_import_common(har)
    har.add_argument(
        "--path-suffix",
        default="/images/edits",
        help="entries whose URL path ends with this are image edits (default /images/edits)",
    )
    har.set_defaults(handler=_import_har)


def _report(stats: Any, args: argparse.Namespace) -> int:
    print(stats.summary(), file=sys.stderr)
    for problem in stats.problems[:5]:
        print(f"  skipped: {problem}", file=sys.stderr)
    import msgspec

    _write_json(args.json, msgspec.to_builtins(stats), args.force)
    return 0


def _import_aiperf_raw(args: argparse.Namespace) -> int:
    from ._aiperf import import_aiperf_raw

    stats = import_aiperf_raw(
        args.source,
        args.output,
        force=args.force,
        skip_bad=args.skip_bad,
        include_warmup=args.include_warmup,
    )
    return _report(stats, args)


def _import_aiperf_input(args: argparse.Namespace) -> int:
    from traces import UsageError

    from ._aiperf import import_aiperf_input

    extra: dict[str, str] = {}
    for item in args.extra_inputs:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise UsageError(f"--extra-inputs {item!r}: expected KEY:VALUE")
        extra[key] = value
    if args.rate is not None and not args.rate > 0:
        raise UsageError("--rate must be positive")
    stats = import_aiperf_input(
        args.source,
        args.output,
        force=args.force,
        skip_bad=args.skip_bad,
        model=args.model,
        rate=args.rate,
        extra_inputs=extra,
    )
    return _report(stats, args)


def _import_har(args: argparse.Namespace) -> int:
    from ._har import import_har

    stats = import_har(
        args.source,
        args.output,
        force=args.force,
        skip_bad=args.skip_bad,
        path_suffix=args.path_suffix,
    )
    return _report(stats, args)


def _register_export(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export",
        help="turn a trace into another tool's input (AIPerf single_turn JSONL)",
        description="Write a trace in another tool's input format. See docs/importing.md.",
    )
    formats = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    turn = formats.add_parser(
        "aiperf-input",
        help="AIPerf single_turn JSONL with timestamps (aiperf ... --fixed-schedule)",
        description="Write a trace as an AIPerf single_turn input file with ms timestamps.",
    )
    turn.add_argument("trace", metavar="TRACE", help="the trace file to export")
    _add_output(turn, "JSONL file (`-` for standard output)")
    turn.add_argument(
        "--images-dir",
        metavar="DIR",
        help="write the images as files in DIR (named by digest) instead of inline data URLs",
    )
    turn.add_argument(
        "--absolute-paths",
        action="store_true",
        help="with --images-dir, write absolute image paths (default: relative to the output)",
    )
    turn.set_defaults(handler=_export_aiperf_input)


def _export_aiperf_input(args: argparse.Namespace) -> int:
    from ._aiperf_export import export_aiperf_input

    stats = export_aiperf_input(
        args.trace,
        args.output,
        force=args.force,
        images_dir=args.images_dir,
        absolute_paths=args.absolute_paths,
    )
    return _report(stats, args)
