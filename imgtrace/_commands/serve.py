"""`imgtrace serve`: the command-line face of the reference server."""

from __future__ import annotations

import argparse

from .._server._config import DEFAULT_PORT, ServerConfig, parse_bytes
from .._server._planted import parse_plant
from ._shared import Command, argument_type

__all__ = ["register"]

DESCRIPTION = """\
Run the bundled reference server: an OpenAI/SGLang-compatible image-edit API
(POST /v1/images/edits, /v1/images/generations) that behaves like a GPU diffusion
server - FIFO queue, dynamic batching, cold start, per-step cost by resolution -
while doing only cheap, deterministic image work. Prints one line on stdout when
ready; GET /health answers 503 until then. Stop it with Ctrl-C or SIGTERM."""

EPILOG = """\
examples:
  imgtrace serve                                   # like one H100, real time, port 30000
  imgtrace serve --port 8000 --speed 20 --gpus 2   # 20x faster, two simulated GPUs
  imgtrace serve --variant b --noise 1             # a "new build" with GPU-like noise
docs/reference-server.md explains the latency model and every option."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `serve`."""
    net = parser.add_argument_group("network")
    net.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    net.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port to listen on; 0 picks a free one (default: %(default)s, as SGLang)",
    )
    net.add_argument(
        "--max-body",
        type=argument_type(parse_bytes),
        default=64 * 1024 * 1024,
        metavar="BYTES",
        help="largest request body; bigger uploads get 413 before they are read whole "
        "(e.g. 1048576, 500k, 64MiB; default: 64MiB)",
    )
    net.add_argument(
        "--max-header-size",
        type=argument_type(parse_bytes),
        default=64 * 1024,
        metavar="BYTES",
        help="longest request head (request line and headers); a longer one gets 431 "
        "(default: 64KiB)",
    )
    net.add_argument(
        "--max-queue",
        type=int,
        default=0,
        metavar="N",
        help="answer 429 when N requests already wait for a GPU (default: 0 = unlimited)",
    )
    net.add_argument(
        "--model",
        default="imgtrace-reference",
        help="model id in /v1/models (default: %(default)s)",
    )
    net.add_argument("--access-log", action="store_true", help="log every request on stderr")
    net.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug", "trace"),
        help="uvicorn's log level (default: %(default)s)",
    )
    lat = parser.add_argument_group("latency model")
    lat.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="F",
        help="divide all simulated time by F: 2 is twice as fast, 0.8 is 25%% slower, "
        "'inf' removes it (default: 1, real time)",
    )
    lat.add_argument(
        "--gpus",
        type=int,
        default=1,
        metavar="K",
        help="simulated GPUs (executors) behind one FIFO queue (default: 1)",
    )
    lat.add_argument(
        "--max-batch",
        type=int,
        default=1,
        metavar="B",
        help="most output images one executor runs together; queued same-shape requests "
        "join a batch (default: 1, no batching)",
    )
    lat.add_argument(
        "--batch-window",
        type=float,
        default=0.0,
        metavar="S",
        help="simulated seconds an executor waits for more work before a batch that is "
        "not full (default: 0)",
    )
    lat.add_argument(
        "--batch-gain",
        type=float,
        default=0.01,
        metavar="G",
        help="per-image saving of a full batch: b images cost (1 - G(1 - 1/b)) of b single "
        "ones (default: 0.01, as measured; a memory-bound model would be ~0.5)",
    )
    lat.add_argument(
        "--cold-start",
        type=float,
        default=1.0,
        metavar="S",
        help="extra simulated seconds on each executor's first batch, like torch.compile "
        "(default: 1; 0 disables)",
    )
    lat.add_argument(
        "--load-time",
        type=float,
        default=1.0,
        metavar="S",
        help="simulated seconds of model loading before /health answers 200 (default: 1)",
    )
    lat.add_argument(
        "--jitter",
        type=float,
        default=0.03,
        metavar="J",
        help="log-normal spread (sigma) of every batch's service time (default: 0.03)",
    )
    knobs = parser.add_argument_group("outputs and faults (for A/B studies and tests)")
    knobs.add_argument(
        "--variant",
        default="",
        metavar="NAME",
        help="a small systematic change in every output image, like a new model build",
    )
    knobs.add_argument(
        "--noise",
        type=int,
        default=0,
        metavar="A",
        help="add nondeterministic uniform noise of +-A per pixel channel (default: 0)",
    )
    knobs.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="fraction of image requests that fail with 500 after their compute (default: 0)",
    )
    knobs.add_argument(
        "--timeout-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="fraction of image requests that are never answered (default: 0)",
    )
    knobs.add_argument(
        "--slow-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="fraction of image requests that take --slow-factor times their compute time "
        "(default: 0)",
    )
    knobs.add_argument(
        "--slow-factor",
        type=float,
        default=10.0,
        metavar="X",
        help="how much slower a slow request is (default: 10)",
    )
    knobs.add_argument(
        "--random-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed the server's own randomness (jitter, noise, fault draws) for reproducible runs",
    )
    knobs.add_argument(
        "--cache-mb",
        type=float,
        default=64.0,
        metavar="MB",
        help="memory for caching encoded outputs of repeated requests, and again for the "
        "images of response_format=url responses (default: 64; 0 disables the cache)",
    )
    knobs.add_argument(
        "--plant",
        action="append",
        default=[],
        metavar="BUG",
        help="plant a bug that fails only under an interaction of requests: "
        "mask-after-size[:W], slow-after-concurrent:N[:X], image-after-seed:S; repeatable "
        "(docs/reference-server.md)",
    )
    knobs.add_argument(
        "--plant-rate",
        type=float,
        default=1.0,
        metavar="P",
        help="a planted bug fires with probability P when its condition holds (default: 1)",
    )


def run(args: argparse.Namespace) -> int:
    """Build the config (UsageError on bad values) and serve in the foreground."""
    config = ServerConfig(
        host=args.host,
        port=args.port,
        speed=args.speed,
        gpus=args.gpus,
        max_batch=args.max_batch,
        batch_window=args.batch_window,
        batch_gain=args.batch_gain,
        cold_start=args.cold_start,
        load_time=args.load_time,
        jitter=args.jitter,
        variant=args.variant,
        noise=args.noise,
        error_rate=args.error_rate,
        timeout_rate=args.timeout_rate,
        slow_rate=args.slow_rate,
        slow_factor=args.slow_factor,
        max_body=args.max_body,
        max_header_size=args.max_header_size,
        max_queue=args.max_queue,
        model=args.model,
        random_seed=args.random_seed,
        cache_mb=args.cache_mb,
        access_log=args.access_log,
        log_level=args.log_level,
        plant=tuple(parse_plant(text) for text in args.plant),
        plant_rate=args.plant_rate,
    )
    from .._server import serve

    return serve(config)


register = Command(
    "serve", "run the bundled reference image-edit server", DESCRIPTION, add_arguments, run, EPILOG
)
