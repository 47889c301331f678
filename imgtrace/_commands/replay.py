"""`imgtrace replay`: replay a trace and say what the run measured, or why it measured nothing.

The flags and the `ReplayConfig` they build are in `_replay_options`.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, TextIO

from traces import UsageError

from ._replay_options import add_arguments, config_from_args
from ._shared import EXIT_INTERRUPTED, EXIT_OK, Command, write_json

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
    from replayer._diagnose import credentials_hint, refused_credentials

    group = replay_interleaved(config)
    for result in group.runs.values():
        _print_summary(console, result)
    write_json(args.json, group.as_dict())
    error, warnings = group.problems()
    for line in warnings:
        console.print(f"imgtrace: warning: {line}", markup=False)
    if error is not None:
        raise ReplayError(error)
    refused = [
        name
        for name, result in group.runs.items()
        if refused_credentials(result.stats.statuses, result.stats.done)
    ]
    if refused:
        message = credentials_hint(f"the requests to {', '.join(refused)}")
        raise ReplayError(f"{message} (the run files were written anyway)")
    for name, result in group.runs.items():
        hint = _diagnosis(result, httpx.URL(result.target))
        if hint is not None:
            raise ReplayError(f"target {name}: {hint} (the run file {result.output} was written)")
    return EXIT_INTERRUPTED if group.interrupted else EXIT_OK


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

    from replayer._priority import NOT_ASKED, REALTIME
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
    if result.workers and result.scheduling not in (REALTIME, NOT_ASKED):
        console.print(
            f"imgtrace: note: the dispatch ran at {result.scheduling}; on a machine whose cores "
            'are busy, some sends may be a few ms late (docs/replaying.md, "Dispatch priority")',
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


register = Command(
    "replay",
    "replay a trace against a server with original or scaled timing",
    DESCRIPTION,
    add_arguments,
    _replay,
    EPILOG,
)
