"""The flags of `imgtrace replay` and the `ReplayConfig` they ask for.

Each option type checks its own values (`replayer`); the rules here are only about which flags
go together.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traces import UsageError

from ._shared import (
    add_deprecated_alias,
    add_force_flag,
    add_json_flag,
    add_list,
    add_number,
    add_salvage_flag,
    add_switch,
    refuse_existing,
)

if TYPE_CHECKING:
    from replayer import ReplayConfig

__all__ = ["add_arguments", "config_from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `replay`."""
    parser.add_argument("trace", type=Path, metavar="TRACE", help="the trace file to replay")
    add_list(
        parser,
        "--target",
        "URL|NAME=URL",
        "base URL of the server; a path is a prefix (http://gw/sglang sends "
        "/v1/images/edits to /sglang/v1/images/edits). Repeat as NAME=URL to send every "
        "request to every target side by side (interleaved), one run each in -o DIR",
    )
    parser.add_argument(
        "-o", "--output", type=Path, metavar="RUN|DIR", help="run file (directory) to write"
    )
    add_number(
        parser,
        "--order-seed",
        int,
        "N",
        "with NAME=URL targets: seed of the per-request order among them (default drawn; "
        "recorded in every run)",
    )
    add_force_flag(parser)

    timing = parser.add_argument_group("timing (original timing unless one is given)")
    add_number(timing, "--speed", float, "K", "divide the trace's offsets by K (2 = twice as fast)")
    add_number(
        timing,
        "--rate",
        float,
        "R",
        "re-time the requests (order kept) to R per second with --arrival",
    )
    timing.add_argument(
        "--arrival",
        metavar="PROCESS",
        help="with --rate: constant (default), poisson, or gamma:B (B < 1 burstier, B > 1 "
        "smoother than Poisson)",
    )
    add_number(
        timing,
        "--arrival-seed",
        int,
        "N",
        "seed of the poisson/gamma arrival draws (default 0): same seed, same schedule",
        default=0,
    )
    add_number(
        timing,
        "--concurrency",
        int,
        "N",
        "closed loop: keep N requests in flight, each sent as soon as one finishes",
    )
    add_number(
        timing,
        "--max-inflight",
        int,
        "M",
        "with original timing or --rate: at most M requests in flight; a send that waits "
        "for a slot is late, and its wait counts as lag",
    )

    selection = parser.add_argument_group("selection")
    selection.add_argument(
        "--window",
        metavar="START:END",
        help="only requests whose trace offset is in [START, END) seconds (either may be empty)",
    )
    add_number(selection, "--limit", int, "N", "only the first N selected requests (per pass)")
    add_number(selection, "--loop", int, "K", "send the selection K times (default 1)", default=1)
    add_number(
        selection,
        "--repeat",
        int,
        "K",
        "replay the whole selection K times (fresh connections, the same schedule) into "
        "one run file; says how often each failure reproduced",
        default=1,
    )
    selection.add_argument(
        "--reset",
        metavar="'COMMAND'",
        help="with --repeat: shell command run before each repetition (restart a container, "
        "clear a cache); a non-zero exit status stops the replay",
    )
    add_number(
        selection,
        "--warmup",
        int,
        "N",
        "flag the first N sends as warmup: sent and recorded, excluded from reports",
        default=0,
    )
    add_list(
        selection,
        "--filter",
        "KEY=PATTERN",
        "only requests whose path, method or form field KEY matches the glob PATTERN "
        "(e.g. path=/v1/images/edits, size=512x*); repeatable, all must match",
    )

    shaping = parser.add_argument_group("request shaping")
    add_list(
        shaping,
        "--header",
        "'NAME: VALUE'",
        "set a request header; ${VAR} is taken from the environment. Values are never "
        "written to the run file. Repeatable",
    )
    add_list(
        shaping,
        "--query",
        "'NAME=VALUE'",
        "set a query parameter (e.g. one the recording redacted: 'api_key=${API_KEY}'); "
        "${VAR} is taken from the environment. Values are never written to the run file. "
        "Repeatable",
    )
    add_list(
        shaping,
        "--set",
        "FIELD=VALUE",
        "override a form field (or JSON key) in every request, e.g. "
        "num_inference_steps=8; repeatable",
    )
    shaping.add_argument(
        "--request-seed",
        default="keep",
        metavar="keep|fixed:N|random:S",
        help="the requests' seed field: as recorded (keep, default), N everywhere, or drawn "
        "per request from S (reproducible); as in synth",
    )
    add_deprecated_alias(shaping, "--seed", "--request-seed", "request_seed")
    shaping.add_argument("--model", metavar="NAME", help="set the model field of every request")

    scale = parser.add_argument_group("scale-out (docs/scale-out.md)")
    scale.add_argument(
        "--shard",
        metavar="I/N",
        help="send only shard I of N (0-based): send k of the schedule goes to shard k mod N, "
        "at its unsharded time; join the N runs with `imgtrace merge`",
    )
    scale.add_argument(
        "--start-at",
        metavar="TIME",
        help="offset zero at this wall-clock time, ISO 8601 with a UTC offset "
        "(2026-12-01T10:00:00Z) or Unix seconds: every shard starts together",
    )
    add_number(
        scale,
        "--start-grace",
        float,
        "S",
        "refuse to start when --start-at passed more than S seconds ago (default 1)",
    )
    scale.add_argument(
        "--group",
        metavar="ID",
        help="the id shared by the shards of one replay (default: from the trace and "
        "--start-at); merge checks it",
    )

    sending = parser.add_argument_group("sending and output")
    add_number(
        sending,
        "--timeout",
        float,
        "S",
        "give up on a request after S seconds in total (default 300); recorded as a timeout",
        default=300.0,
    )
    add_number(
        sending,
        "--drain",
        float,
        "S",
        "on Ctrl-C, wait up to S seconds for requests in flight (default 10)",
        default=10.0,
    )
    add_salvage_flag(
        sending,
        "replay a damaged trace's requests up to the damage (with a warning naming how "
        "many were kept) instead of refusing it",
    )
    add_number(
        sending,
        "--workers",
        int,
        "N",
        "dispatch processes that send (default 1): send k goes to worker k mod N, each "
        "sending on time and nothing else; 0 sends from the main process",
        default=1,
    )
    add_switch(
        sending,
        "--no-realtime",
        "run the dispatch workers at normal priority; by default they ask for real-time "
        "scheduling (granted to root or CAP_SYS_NICE), so a busy machine cannot delay a send",
    )
    add_switch(sending, "--no-images", "do not store returned images (their digests are kept)")
    add_switch(
        sending,
        "--dry-run",
        "print the schedule's duration, mean and peak rate and request mix; send nothing",
    )
    add_json_flag(sending)
    add_switch(sending, "--no-progress", "no live progress bar (summary only)")


def config_from_args(
    args: argparse.Namespace, environ: dict[str, str] | None = None
) -> ReplayConfig:
    """Check the options and build a `ReplayConfig`; bad options raise `UsageError`.

    Each option type checks its own values; here are only the rules about which flags go
    together.
    """
    from replayer import ReplayConfig, Targets

    timing = _timing(args)
    selection = _selection(args)
    shaping = _shaping(args, dict(os.environ) if environ is None else environ)
    targets = Targets.parse(args.target or [])
    config = ReplayConfig(
        targets=targets.named,
        order_seed=args.order_seed,
        trace=args.trace,
        target="" if targets.named else targets.url or "http://127.0.0.1",
        output=args.output,
        timing=timing,
        selection=selection,
        **shaping,
        **_sending(args),
        **_scale_out(args),
    )
    if not args.dry_run:
        if not args.target:
            raise UsageError("replay needs --target URL (the server to send to)")
        if args.output is None:
            raise UsageError("replay needs -o RUN (the run file to write; -o DIR for NAME=URL)")
    refuse_existing(args.json, args.force)
    return config


def _timing(args: argparse.Namespace) -> Any:
    """--speed, --rate (with --arrival), --concurrency and --max-inflight as a `Timing`."""
    from replayer import Timing, parse_arrival

    modes = [
        flag
        for flag, value in (
            ("--speed", args.speed),
            ("--rate", args.rate),
            ("--concurrency", args.concurrency),
        )
        if value is not None
    ]
    if len(modes) > 1:
        raise UsageError(f"{' and '.join(modes)} are different timing modes: choose one")
    if args.arrival is not None and args.rate is None:
        raise UsageError("--arrival re-times requests and needs --rate R")
    if args.rate is not None:
        arrival, shape = parse_arrival(args.arrival or "constant")
        return Timing(
            "rate",
            rate=args.rate,
            arrival=arrival,
            shape=shape,
            arrival_seed=args.arrival_seed,
            max_inflight=args.max_inflight,
        )
    if args.concurrency is not None:
        return Timing("closed", concurrency=args.concurrency, max_inflight=args.max_inflight)
    speed = 1.0 if args.speed is None else args.speed
    return Timing("original", speed=speed, max_inflight=args.max_inflight)


def _selection(args: argparse.Namespace) -> Any:
    from replayer import Selection, parse_filter, parse_window

    return Selection(
        window=parse_window(args.window) if args.window else (None, None),
        limit=args.limit,
        loop=args.loop,
        warmup=args.warmup,
        filters=tuple(parse_filter(text) for text in args.filter),
    )


def _shaping(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """The request-shaping flags as `ReplayConfig` fields; ${VAR} is read from `env`."""
    from replayer import parse_header, parse_query, parse_set

    return {
        "headers": [parse_header(text, env) for text in args.header],
        "queries": [parse_query(text, env) for text in args.query],
        "sets": [parse_set(text) for text in args.set],
        "seed": args.request_seed,
        "model": args.model,
    }


def _sending(args: argparse.Namespace) -> dict[str, Any]:
    """The sending and output flags as `ReplayConfig` fields."""
    return {
        "timeout": args.timeout,
        "drain": args.drain,
        "keep_images": not args.no_images,
        "force": args.force,
        "handle_signals": True,
        "salvage": args.salvage,
        "workers": args.workers,
        "realtime": not args.no_realtime,
    }


def _scale_out(args: argparse.Namespace) -> dict[str, Any]:
    """--shard, --start-at, --start-grace and --group as `ReplayConfig` fields."""
    from replayer import DEFAULT_GRACE_S, StartAt, parse_shard, parse_start_at

    if args.start_grace is not None and args.start_at is None:
        raise UsageError("--start-grace applies to --start-at TIME")
    if args.group is not None and args.shard is None:
        raise UsageError("--group names the shards of one replay and needs --shard I/N")
    start_at = None
    if args.start_at is not None:
        grace = DEFAULT_GRACE_S if args.start_grace is None else args.start_grace
        start_at = StartAt(parse_start_at(args.start_at), grace)
    return {
        "shard": None if args.shard is None else parse_shard(args.shard),
        "start_at": start_at,
        "group": args.group,
    }
