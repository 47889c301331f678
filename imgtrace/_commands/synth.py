"""`imgtrace synth`: a synthetic trace, reproducible from its seed."""

from __future__ import annotations

import argparse
import sys

from traces import UsageError

from ._shared import Command, add_output_flags, progress, refuse_existing, write_json

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
