"""`imgtrace synth`: a synthetic trace, reproducible from its seed."""

from __future__ import annotations

import argparse
import sys

from traces import UsageError

from ._shared import Command, add_number, add_output_flags, progress, refuse_existing, write_json

__all__ = ["register"]

_SYNTH_EPILOG = """\
value specs (for --size, --n, --steps, --guidance-scale, --output-format, --image-size,
--image-format, --images-per-request): a value (4), a list drawn uniformly (4,8,28), a weighted
list (512x512@3,1024x1024@1), uniform(LO,HI), normal(MEAN,SD), or none (field left out).
Same --seed and options give the same file, byte for byte. See docs/synthetic.md."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `synth`."""
    add_output_flags(parser, "trace file")
    size = parser.add_argument_group("how many")
    add_number(size, "--count", int, "N", "number of requests (default 100 without --duration)")
    add_number(
        size,
        "--duration",
        float,
        "SECONDS",
        "stop at this offset (with --count: whichever comes first)",
    )
    timing = parser.add_argument_group("arrivals")
    timing.add_argument(
        "--arrival",
        choices=("constant", "poisson", "gamma"),
        default="poisson",
        help="arrival process (default poisson)",
    )
    add_number(timing, "--rate", float, "R", "requests per second (default 1)")
    timing.add_argument(
        "--schedule",
        metavar="T:R,...",
        help="piecewise-constant rate instead of --rate: START_S:RATE pairs, e.g. 0:2,60:10,120:2",
    )
    add_number(
        timing,
        "--burstiness",
        float,
        "B",
        "gamma shape: 1 = Poisson, <1 burstier, >1 smoother (coefficient of variation 1/sqrt(B)); "
        "only with --arrival gamma",
        default=1.0,
    )
    add_number(
        timing,
        "--seed",
        int,
        "S",
        "generator seed; same seed, same file (default: random, recorded)",
    )
    images = parser.add_argument_group("reference images")
    _value_spec(images, "--image-size", "512x512", "WxH spec")
    _value_spec(images, "--image-format", "png", "png, jpeg, webp spec")
    _value_spec(images, "--images-per-request", "1", "images per request")
    add_number(
        images,
        "--reuse",
        float,
        "P",
        "probability a request edits an earlier request's image again (default 0)",
        default=0.0,
    )
    add_number(images, "--mask", float, "P", "probability a request has a mask", default=0.0)
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
    _value_spec(params, "--size", "512x512", "output size")
    _value_spec(params, "--n", "1", "images per response")
    _value_spec(params, "--steps", "4", "num_inference_steps")
    _value_spec(params, "--guidance-scale", "1.0", "guidance_scale")
    _value_spec(params, "--output-format", "none", "png/jpeg/webp spec")
    params.add_argument(
        "--request-seed",
        default="per-request",
        metavar="POLICY",
        help="seed field: per-request (random non-zero, default), fixed:N, or none",
    )
    params.add_argument(
        "--path", default="/v1/images/edits", help="request path (default /v1/images/edits)"
    )


_AS_GIVEN = (
    "duration",
    "seed",
    "image_size",
    "image_format",
    "images_per_request",
    "reuse",
    "mask",
    "size",
    "n",
    "guidance_scale",
    "output_format",
    "request_seed",
    "path",
    "image_field",
)
"""The flags `SynthOptions` takes as they are, under the same names."""


def _value_spec(group: argparse._ArgumentGroup, flag: str, default: str, what: str) -> None:
    """A flag that takes a value spec (the epilog's syntax)."""
    group.add_argument(flag, default=default, metavar="SPEC", help=f"{what} (default {default})")


def _synth(args: argparse.Namespace) -> int:
    from recorder import (
        BUILTIN_PROMPTS,
        ArrivalProcess,
        SynthOptions,
        load_prompts,
        parse_schedule,
        synthesize,
    )

    if args.rate is not None and args.schedule is not None:
        raise UsageError("give --rate or --schedule, not both")
    if args.burstiness != 1.0 and args.arrival != "gamma":
        raise UsageError("--burstiness needs --arrival gamma")
    refuse_existing(args.json, args.force)
    rate = 1.0 if args.rate is None else args.rate
    schedule = parse_schedule(args.schedule) if args.schedule else [(0.0, rate)]
    count = args.count
    if count is None and args.duration is None:
        count = 100
    options = SynthOptions(
        **{name: getattr(args, name) for name in _AS_GIVEN},
        count=count,
        arrival=ArrivalProcess(
            kind=args.arrival, schedule=tuple(schedule), burstiness=args.burstiness
        ),
        images_dir=args.images,
        prompts=load_prompts(args.prompts) if args.prompts else BUILTIN_PROMPTS,
        prompts_source=args.prompts or "built-in",
        model=None if args.model.lower() == "none" else args.model,
        num_inference_steps=args.steps,
    )
    with progress("synthesizing") as update:
        result = synthesize(options, args.output, force=args.force, progress=update)
    rate = result.get("rate")
    shape = f"{result['arrival']} at {rate:g} req/s" if rate else f"{result['arrival']} schedule"
    print(
        f"wrote {result['count']} requests ({result['images_generated']} new images) to "
        f"{args.output}: {shape}, seed {result['seed']}",
        file=sys.stderr,
    )
    write_json(args.json, result)
    return 0


register = Command(
    "synth",
    "write a synthetic trace: arrival process, photo-like images, prompts, parameters",
    "Write a synthetic image-edit trace, reproducible from --seed.",
    add_arguments,
    _synth,
    _SYNTH_EPILOG,
)
