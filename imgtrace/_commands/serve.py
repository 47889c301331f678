"""`imgtrace serve`: the command-line face of the reference server."""

from __future__ import annotations

import argparse
import dataclasses

from .._server._config import DEFAULT_PORT, ServerConfig, parse_bytes
from .._server._planted import parse_plant
from ._shared import Command, add_switch, argument_type

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

_DEFAULTS = ServerConfig()

_Settings = tuple[tuple[str, str, str], ...]

_LATENCY_MODEL = (
    (
        "--speed",
        "F",
        "divide all simulated time by F: 2 is twice as fast, 0.8 is 25%% slower, 'inf' removes "
        "it (default: 1, real time)",
    ),
    ("--gpus", "K", "simulated GPUs (executors) behind one FIFO queue (default: 1)"),
    (
        "--max-batch",
        "B",
        "most output images one executor runs together; queued same-shape requests join a "
        "batch (default: 1, no batching)",
    ),
    (
        "--batch-window",
        "S",
        "simulated seconds an executor waits for more work before a batch that is not full "
        "(default: 0)",
    ),
    (
        "--batch-gain",
        "G",
        "per-image saving of a full batch: b images cost (1 - G(1 - 1/b)) of b single ones "
        "(default: 0.01, as measured; a memory-bound model would be ~0.5)",
    ),
    (
        "--cold-start",
        "S",
        "extra simulated seconds on each executor's first batch, like torch.compile (default: "
        "1; 0 disables)",
    ),
    (
        "--load-time",
        "S",
        "simulated seconds of model loading before /health answers 200 (default: 1)",
    ),
    ("--jitter", "J", "log-normal spread (sigma) of every batch's service time (default: 0.03)"),
)

_OUTPUTS_AND_FAULTS = (
    (
        "--variant",
        "NAME",
        "a small systematic change in every output image, like a new model build",
    ),
    ("--noise", "A", "add nondeterministic uniform noise of +-A per pixel channel (default: 0)"),
    (
        "--error-rate",
        "R",
        "fraction of image requests that fail with 500 after their compute (default: 0)",
    ),
    ("--timeout-rate", "R", "fraction of image requests that are never answered (default: 0)"),
    (
        "--slow-rate",
        "R",
        "fraction of image requests that take --slow-factor times their compute time (default: 0)",
    ),
    ("--slow-factor", "X", "how much slower a slow request is (default: 10)"),
    (
        "--random-seed",
        "N",
        "seed the server's own randomness (jitter, noise, fault draws) for reproducible runs",
    ),
    (
        "--cache-mb",
        "MB",
        "memory for caching encoded outputs of repeated requests, and again for the images of "
        "response_format=url responses (default: 64; 0 disables the cache)",
    ),
)

_PLANT_RATE = (
    (
        "--plant-rate",
        "P",
        "a planted bug fires with probability P when its condition holds (default: 1)",
    ),
)


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
    add_switch(net, "--access-log", "log every request on stderr")
    net.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug", "trace"),
        help="uvicorn's log level (default: %(default)s)",
    )
    _add_settings(parser.add_argument_group("latency model"), _LATENCY_MODEL)
    knobs = parser.add_argument_group("outputs and faults (for A/B studies and tests)")
    _add_settings(knobs, _OUTPUTS_AND_FAULTS)
    knobs.add_argument(
        "--plant",
        action="append",
        default=[],
        metavar="BUG",
        help="plant a bug that fails only under an interaction of requests: "
        "mask-after-size[:W], slow-after-concurrent:N[:X], image-after-seed:S; repeatable "
        "(docs/reference-server.md)",
    )
    _add_settings(knobs, _PLANT_RATE)


def _add_settings(group: argparse._ArgumentGroup, settings: _Settings) -> None:
    """Flags (`--flag`, metavar, help) of `ServerConfig` fields, with the field's default."""
    for flag, metavar, text in settings:
        default = getattr(_DEFAULTS, flag.removeprefix("--").replace("-", "_"))
        kind = int if default is None else type(default)
        group.add_argument(flag, type=kind, default=default, metavar=metavar, help=text)


def run(args: argparse.Namespace) -> int:
    """Build the config (UsageError on bad values) and serve in the foreground."""
    settings = {field.name: getattr(args, field.name) for field in dataclasses.fields(ServerConfig)}
    settings["plant"] = tuple(parse_plant(text) for text in args.plant)
    config = ServerConfig(**settings)
    from .._server import serve

    return serve(config)


register = Command(
    "serve", "run the bundled reference image-edit server", DESCRIPTION, add_arguments, run, EPILOG
)
