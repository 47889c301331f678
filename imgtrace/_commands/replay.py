"""Subcommands contributed by the replayer package: `imgtrace replay`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from traces import UsageError

from ._shared import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    Subparsers,
    add_deprecated_alias,
    refuse_existing,
    write_json,
)

if TYPE_CHECKING:
    from replayer import DryRun, ReplayConfig, ReplayResult

__all__ = ["register"]

DESCRIPTION = """\
Replay the requests of a trace against a server and write a run file (the trace format, kind
run) with, per request, the intended, sent, upload-done, first-byte and done times, status,
errors, bytes and the returned images.

Timing (one of): the trace's own offsets (default), scaled with --speed; a re-timed arrival
process with --rate; or a closed loop with --concurrency. Every send is scheduled at an absolute
time and is never early; how late each went out (the lag) is recorded and summarized in the
lag-health line. docs/replaying.md explains the modes and measurements."""

EPILOG = """\
exit codes: 0 done (a warning is printed if some requests could not connect); 2 usage or input
error, or every request failed the same way: none could connect, all were refused with 401
or 403, or all got the same 4xx status such as 404 from a doubled path prefix; or a dispatch
worker died (the run file is still written; after a dying worker, marked interrupted);
130 interrupted (the run file is written and marked interrupted)."""


def register(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    """Add `replay` to `imgtrace`."""
    parser = subparsers.add_parser(
        "replay",
        help="replay a trace against a server with original or scaled timing",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(handler=_replay)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `replay`."""
    parser.add_argument("trace", type=Path, metavar="TRACE", help="the trace file to replay")
    parser.add_argument(
        "--target",
        action="append",
        metavar="URL|NAME=URL",
        help="base URL of the server; a path is a prefix (http://gw/sglang sends "
        "/v1/images/edits to /sglang/v1/images/edits). Repeat as NAME=URL to send every "
        "request to every target side by side (interleaved), one run each in -o DIR",
    )
    parser.add_argument(
        "-o", "--output", type=Path, metavar="RUN|DIR", help="run file (directory) to write"
    )
    parser.add_argument(
        "--order-seed",
        type=int,
        metavar="N",
        help="with NAME=URL targets: seed of the per-request order among them (default drawn; "
        "recorded in every run)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")

    timing = parser.add_argument_group("timing (original timing unless one is given)")
    timing.add_argument(
        "--speed",
        type=float,
        metavar="K",
        help="divide the trace's offsets by K (2 = twice as fast)",
    )
    timing.add_argument(
        "--rate",
        type=float,
        metavar="R",
        help="re-time the requests (order kept) to R per second with --arrival",
    )
    timing.add_argument(
        "--arrival",
        metavar="PROCESS",
        help="with --rate: constant (default), poisson, or gamma:B (B < 1 burstier, B > 1 "
        "smoother than Poisson)",
    )
    timing.add_argument(
        "--arrival-seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the poisson/gamma arrival draws (default 0): same seed, same schedule",
    )
    timing.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="closed loop: keep N requests in flight, each sent as soon as one finishes",
    )
    timing.add_argument(
        "--max-inflight",
        type=int,
        metavar="M",
        help="with original timing or --rate: at most M requests in flight; a send that waits "
        "for a slot is late, and its wait counts as lag",
    )

    selection = parser.add_argument_group("selection")
    selection.add_argument(
        "--window",
        metavar="START:END",
        help="only requests whose trace offset is in [START, END) seconds (either may be empty)",
    )
    selection.add_argument(
        "--limit", type=int, metavar="N", help="only the first N selected requests (per pass)"
    )
    selection.add_argument(
        "--loop", type=int, default=1, metavar="K", help="send the selection K times (default 1)"
    )
    selection.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="replay the whole selection K times (fresh connections, the same schedule) into "
        "one run file; says how often each failure reproduced",
    )
    selection.add_argument(
        "--reset",
        metavar="'COMMAND'",
        help="with --repeat: shell command run before each repetition (restart a container, "
        "clear a cache); a non-zero exit status stops the replay",
    )
    selection.add_argument(
        "--warmup",
        type=int,
        default=0,
        metavar="N",
        help="flag the first N sends as warmup: sent and recorded, excluded from reports",
    )
    selection.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=PATTERN",
        help="only requests whose path, method or form field KEY matches the glob PATTERN "
        "(e.g. path=/v1/images/edits, size=512x*); repeatable, all must match",
    )

    shaping = parser.add_argument_group("request shaping")
    shaping.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="set a request header; ${VAR} is taken from the environment. Values are never "
        "written to the run file. Repeatable",
    )
    shaping.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="'NAME=VALUE'",
        help="set a query parameter (e.g. one the recording redacted: 'api_key=${API_KEY}'); "
        "${VAR} is taken from the environment. Values are never written to the run file. "
        "Repeatable",
    )
    shaping.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a form field (or JSON key) in every request, e.g. "
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
    scale.add_argument(
        "--start-grace",
        type=float,
        metavar="S",
        help="refuse to start when --start-at passed more than S seconds ago (default 1)",
    )
    scale.add_argument(
        "--group",
        metavar="ID",
        help="the id shared by the shards of one replay (default: from the trace and "
        "--start-at); merge checks it",
    )

    sending = parser.add_argument_group("sending and output")
    sending.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="give up on a request after S seconds in total (default 300); recorded as a timeout",
    )
    sending.add_argument(
        "--drain",
        type=float,
        default=10.0,
        metavar="S",
        help="on Ctrl-C, wait up to S seconds for requests in flight (default 10)",
    )
    sending.add_argument(
        "--salvage",
        action="store_true",
        help="replay a damaged trace's requests up to the damage (with a warning naming how "
        "many were kept) instead of refusing it",
    )
    sending.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="dispatch processes that send (default 1): send k goes to worker k mod N, each "
        "sending on time and nothing else; 0 sends from the main process",
    )
    sending.add_argument(
        "--no-images",
        action="store_true",
        help="do not store returned images (their digests are kept)",
    )
    sending.add_argument(
        "--dry-run",
        action="store_true",
        help="print the schedule's duration, mean and peak rate and request mix; send nothing",
    )
    sending.add_argument(
        "--json", metavar="FILE", help="also write the summary as JSON to FILE ('-' for stdout)"
    )
    sending.add_argument(
        "--no-progress", action="store_true", help="no live progress bar (summary only)"
    )


def config_from_args(
    args: argparse.Namespace, environ: dict[str, str] | None = None
) -> ReplayConfig:
    """Check the options and build a `ReplayConfig`; bad options raise `UsageError`.

    Each option type checks its own values; here are only the rules about which flags go
    together.
    """
    from replayer import (
        ReplayConfig,
        Selection,
        Targets,
        Timing,
        parse_arrival,
        parse_filter,
        parse_header,
        parse_query,
        parse_set,
        parse_window,
    )

    env = dict(os.environ) if environ is None else environ
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
        timing = Timing(
            "rate",
            rate=args.rate,
            arrival=arrival,
            shape=shape,
            arrival_seed=args.arrival_seed,
            max_inflight=args.max_inflight,
        )
    elif args.concurrency is not None:
        timing = Timing("closed", concurrency=args.concurrency, max_inflight=args.max_inflight)
    else:
        speed = 1.0 if args.speed is None else args.speed
        timing = Timing("original", speed=speed, max_inflight=args.max_inflight)
    selection = Selection(
        window=parse_window(args.window) if args.window else (None, None),
        limit=args.limit,
        loop=args.loop,
        warmup=args.warmup,
        filters=tuple(parse_filter(text) for text in args.filter),
    )
    headers = [parse_header(text, env) for text in args.header]
    queries = [parse_query(text, env) for text in args.query]
    sets = [parse_set(text) for text in args.set]
    targets = Targets.parse(args.target or [])
    config = ReplayConfig(
        targets=targets.named,
        order_seed=args.order_seed,
        trace=args.trace,
        target="" if targets.named else targets.url or "http://127.0.0.1",
        output=args.output,
        timing=timing,
        selection=selection,
        headers=headers,
        queries=queries,
        sets=sets,
        seed=args.request_seed,
        model=args.model,
        timeout=args.timeout,
        drain=args.drain,
        keep_images=not args.no_images,
        force=args.force,
        handle_signals=True,
        salvage=args.salvage,
        workers=args.workers,
        **_scale_out(args),
    )
    if not args.dry_run:
        if not args.target:
            raise UsageError("replay needs --target URL (the server to send to)")
        if args.output is None:
            raise UsageError("replay needs -o RUN (the run file to write; -o DIR for NAME=URL)")
    refuse_existing(args.json, args.force)
    return config


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


def _replay(args: argparse.Namespace) -> int:
    from rich.console import Console

    from replayer import dry_run, replay

    config = config_from_args(args)
    console = Console(stderr=True, highlight=False)
    if args.dry_run:
        plan = dry_run(config)
        # With --json -, stdout is for the JSON alone.
        _print_dry_run(plan, config, sys.stderr if args.json == "-" else sys.stdout)
        write_json(args.json, _dry_run_dict(plan))
        return EXIT_OK
    if not args.no_progress:
        config.console = console
    else:
        config.console = Console(stderr=True, highlight=False, force_terminal=False)
    if args.repeat != 1 or args.reset:
        if config.targets:
            raise UsageError("--repeat and --reset replay one --target, not interleaved targets")
        from ._repeat import repeat_command

        return repeat_command(config, args.repeat, console, args.json, args.reset)
    if config.targets:
        return _replay_interleaved(args, config, console)
    result = replay(config)
    _print_summary(console, result)
    write_json(args.json, result.as_dict())
    target = config.shaper().url
    hint = _diagnosis(result, target)
    if hint is not None:
        from replayer import ReplayError

        raise ReplayError(f"{hint} (the run file {result.output} was written anyway)")
    connect_errors = result.stats.error_kinds.get("connect", 0)
    if connect_errors:
        from replayer._shaping import public_target

        console.print(
            f"imgtrace: warning: {connect_errors} of {result.stats.done} requests could not "
            f"connect to {public_target(target)}",
            markup=False,
        )
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK


def _replay_interleaved(args: argparse.Namespace, config: ReplayConfig, console: Any) -> int:
    import httpx

    from replayer import ReplayError, replay_interleaved

    group = replay_interleaved(config)
    for result in group.runs.values():
        _print_summary(console, result)
    write_json(args.json, group.as_dict())
    error, warnings = group.problems()
    for line in warnings:
        console.print(f"imgtrace: warning: {line}", markup=False)
    if error is not None:
        raise ReplayError(error)
    refused = [name for name, result in group.runs.items() if _refused_credentials(result.stats)]
    if refused:
        what = f"the requests to {', '.join(refused)}"
        raise ReplayError(_refused_message(what, "the run files were"))
    for name, result in group.runs.items():
        hint = _diagnosis(result, httpx.URL(result.target))
        if hint is not None:
            raise ReplayError(f"target {name}: {hint} (the run file {result.output} was written)")
    return EXIT_INTERRUPTED if group.interrupted else EXIT_OK


def _refused_message(what: str, written: str) -> str:
    return (
        f"every one of {what} was refused with HTTP 401 or 403: the target wants credentials, "
        "and a trace's credentials are redacted when it is recorded; supply them with --header "
        f"'Authorization: Bearer ${{TOKEN}}' (or --query 'api_key=${{KEY}}'); {written} written "
        "anyway"
    )


def _refused_credentials(stats: Any) -> int:
    """How many requests were sent, when every one of them got a 401 or 403; else 0."""
    refused = stats.statuses.get("401", 0) + stats.statuses.get("403", 0)
    return refused if refused and refused == stats.done else 0


def _diagnosis(result: ReplayResult, target: Any) -> str | None:
    """The likely mistake when every request failed the same way (`replayer._diagnose`)."""
    from replayer._diagnose import diagnose
    from replayer._shaping import public_target

    stats = result.stats
    return diagnose(
        stats.statuses,
        stats.error_kinds,
        stats.done,
        connected=stats.connected,
        target=public_target(target),
        target_path=target.path.rstrip("/"),
    )


def _print_summary(console: Any, result: ReplayResult) -> None:
    from rich.table import Table

    from replayer._progress import summary_table

    title = "replay " + ("interrupted" if result.interrupted else "summary")
    table = Table(title=f"{title}: {result.output}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    rows = summary_table(result.stats, result.achieved_rate, result.duration_s, result.planned_rate)
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
    console.print(result.lag.line())
    if result.not_stored:
        console.print(
            f"imgtrace: warning: {result.not_stored} responses were not stored (storing fell "
            "behind the sends; their timings, statuses and headers are in the run)",
            markup=False,
        )
    warning = result.lag.warning(result.planned_rate, result.achieved_rate)
    if warning:
        console.print(f"[bold red]{warning}[/]")


def _dry_run_dict(plan: DryRun) -> dict[str, Any]:
    return {
        "sends": plan.sends,
        "warmup": plan.warmup,
        "duration_s": plan.duration_s,
        "mean_rate": plan.mean_rate,
        "peak_rate": plan.peak_rate,
        "mix": {name: dict(counts.most_common()) for name, counts in plan.mix.items()},
    }


def _print_dry_run(plan: DryRun, config: ReplayConfig, out: TextIO) -> None:
    print(f"dry run of {config.trace}: {config.timing.describe()}; nothing sent", file=out)
    print(f"  sends         {plan.sends} ({plan.warmup} warmup)", file=out)
    if config.timing.closed:
        print("  duration      set by the server (closed loop)", file=out)
    else:
        print(f"  duration      {plan.duration_s:.3f} s", file=out)
        print(f"  mean rate     {plan.mean_rate:.2f} req/s", file=out)
        print(f"  peak rate     {plan.peak_rate:.0f} req/s (busiest 1 s window)", file=out)
    print("  request mix", file=out)
    for name, counts in plan.mix.items():
        cells = ", ".join(f"{value}: {count}" for value, count in counts.most_common(8))
        more = f", … ({len(counts) - 8} more)" if len(counts) > 8 else ""
        print(f"    {name:<20} {cells}{more}", file=out)
