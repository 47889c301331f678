"""`imgtrace reduce`: the command line of the regression search."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .._commands._shared import (
    add_force_flag,
    add_number,
    add_path,
    add_switch,
    parse_duration,
    write_json,
)

if TYPE_CHECKING:
    from ._search import Progress, ReduceConfig, ReduceResult

__all__ = ["register"]

DESCRIPTION = """\
Shrink a trace that makes a server fail to the few requests that still do: delta debugging
over the trace's requests, keeping their relative timing, replaying each candidate against
--target until the smallest sub-trace that satisfies --until is found.

Predicates (combine with and, or, not, parentheses; --until may be repeated, all must hold):
  status>=500   status==429   error=timeout|reset|connect|invalid-response
  latency>2s    latency[r-0412]>2s    image:changed (against --baseline RUN)
Send lag is not a predicate by design: it is imgtrace's lateness, not the server's.

The result is an ordinary trace (replay, show or export it) that is rewritten each time a
smaller reproducer is found, so Ctrl-C keeps the smallest one so far. docs/reproducing.md is a
tutorial."""

EPILOG = """\
exit codes: 0 a reproducer was written; 2 usage or input error (a predicate that does not
parse, a full trace that does not reproduce, a target that is down, a failing --reset);
130 interrupted (the smallest reproducer so far is kept)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `reduce` to `imgtrace`."""
    parser = subparsers.add_parser(
        "reduce",
        help="shrink a failing trace to the few requests that still reproduce the failure",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("trace", type=Path, metavar="TRACE", help="the failing trace")
    parser.add_argument("--target", required=True, metavar="URL", help="the server to replay to")
    parser.add_argument(
        "--until",
        action="append",
        required=True,
        metavar="PREDICATE",
        help="when a replay reproduces the failure, e.g. 'status>=500'; repeatable (all hold)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="MIN", help="the reduced trace"
    )
    add_force_flag(parser, "overwrite the output file")
    add_path(
        parser,
        "--baseline",
        "RUN",
        "for image:changed: a run (or trace with responses) of a good server",
    )
    replay = parser.add_argument_group("replaying each candidate")
    add_number(
        replay,
        "--speed",
        float,
        "K",
        "replay candidates K times faster than recorded (default 1)",
        1.0,
    )
    replay.add_argument(
        "--compress-gaps",
        metavar="TIME",
        help="shrink idle gaps between consecutive requests to at most TIME (e.g. 1s)",
    )
    replay.add_argument(
        "--timeout",
        default="60s",
        metavar="TIME",
        help="give up on a request after TIME (default 60s); counts as error=timeout",
    )
    replay.add_argument(
        "--reset",
        metavar="'COMMAND'",
        help="shell command run before every attempt (restart a container, clear a cache); "
        "a non-zero exit status stops the search",
    )
    flaky = parser.add_argument_group("flaky failures")
    add_number(
        flaky,
        "--tries",
        int,
        "K",
        "replay each candidate up to K times; it reproduces if the predicate holds once "
        "(the full trace, checked first: up to 2K times)",
        1,
    )
    add_number(
        flaky,
        "--min-rate",
        float,
        "P",
        "instead: it reproduces if the predicate holds in at least a fraction P of the "
        "K tries (the full trace: in either of two rounds of K)",
    )
    add_number(
        flaky,
        "--confirm",
        int,
        "N",
        "replays of the result that measure its reproduction rate (default 3)",
        3,
    )
    bounds = parser.add_argument_group("bounds and output")
    bounds.add_argument("--budget", metavar="TIME", help="stop after TIME (e.g. 30m)")
    add_number(bounds, "--max-attempts", int, "N", "stop after N replays")
    bounds.add_argument(
        "--json", metavar="FILE", help="also write the summary as JSON to FILE ('-' for stdout)"
    )
    add_switch(bounds, "--no-progress", "no progress line")
    parser.set_defaults(handler=_reduce)


def config_from_args(args: argparse.Namespace, argv: list[str] | None = None) -> ReduceConfig:
    """Check the options and build the search's config; UsageError when bad."""
    from traces import UsageError

    from ._attempts import RunnerOptions
    from ._predicate import parse_predicate
    from ._search import ReduceConfig

    predicate = parse_predicate(args.until)
    if not args.trace.is_file():
        raise UsageError(f"{args.trace}: no such trace file")
    if args.json and args.json != "-" and Path(args.json).exists() and not args.force:
        raise UsageError(f"{args.json} already exists: choose another --json file or pass --force")
    runner = RunnerOptions(
        target=args.target,
        speed=args.speed,
        compress_gaps_s=(
            parse_duration(args.compress_gaps, "--compress-gaps") if args.compress_gaps else None
        ),
        timeout_s=parse_duration(args.timeout, "--timeout"),
        reset=args.reset,
        baseline=args.baseline,
    )
    words = sys.argv[1:] if argv is None else argv
    return ReduceConfig(
        trace=args.trace,
        output=args.output,
        predicate=predicate,
        runner=runner,
        tries=args.tries,
        min_rate=args.min_rate,
        confirm=args.confirm,
        budget_s=parse_duration(args.budget, "--budget") if args.budget else None,
        max_attempts=args.max_attempts,
        force=args.force,
        command=shlex.join(["imgtrace", *words]),
    )


class _ProgressLine:
    """One line per attempt on stderr; rewritten in place on a terminal."""

    def __init__(self) -> None:
        self.terminal = sys.stderr.isatty()

    def __call__(self, progress: Progress) -> None:
        last = progress.last
        verdict = ""
        if last is not None:
            outcome = "reproduced" if last.reproduced else "did not reproduce"
            verdict = f"{last.size} of {progress.original} requests {outcome}; "
        minutes, seconds = divmod(int(progress.elapsed_s), 60)
        line = (
            f"reduce {progress.phase}: attempt {progress.attempts}: {verdict}"
            f"smallest so far {progress.best}; {minutes}:{seconds:02d}"
        )
        if self.terminal:
            sys.stderr.write(f"\r\x1b[2K{line}")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def end(self) -> None:
        if self.terminal:
            sys.stderr.write("\n")


def _reduce(args: argparse.Namespace) -> int:
    from ._search import reduce_trace

    config = config_from_args(args)
    progress = None if args.no_progress else _ProgressLine()
    try:
        result = reduce_trace(config, progress)
    finally:
        if progress is not None:
            progress.end()
    _print_summary(result, config, args.json == "-")
    write_json(args.json, result.as_dict())
    return 130 if result.stopped == "interrupted" else 0


def _print_summary(result: ReduceResult, config: ReduceConfig, json_to_stdout: bool) -> None:
    # With --json -, stdout is for the JSON alone.
    out = sys.stderr if json_to_stdout else sys.stdout
    kept = ", ".join(result.kept[:12]) + (", …" if len(result.kept) > 12 else "")
    print(
        f"reduced {config.trace}: {result.original} -> {len(result.kept)} requests ({kept}) "
        f"in {result.attempts} attempts, {result.elapsed_s:.1f} s",
        file=out,
    )
    if result.stopped:
        why = {"budget": "--budget", "max-attempts": "--max-attempts", "interrupted": "Ctrl-C"}
        print(
            f"stopped early by {why.get(result.stopped, result.stopped)}: the smallest "
            "reproducer so far is kept; it may not be minimal",
            file=out,
        )
    if result.rate is not None and result.rate_interval is not None:
        low, high = result.rate_interval
        print(
            f"reproduction rate: {result.reproduced} of {result.confirmations} replays "
            f"({result.rate:.0%}; 95% interval {low:.0%}-{high:.0%}) satisfy "
            f"{str(config.predicate)!r}",
            file=out,
        )
    if result.hits:
        print(f"failing requests: {', '.join(result.hits[:12])}", file=out)
    print(f"written: {result.output} (an ordinary trace: replay, show or export it)", file=out)
    print("reproduce with:", file=out)
    print(f"  {result.reproduce_command}", file=out)
    run = config.output.with_name(config.output.stem + "-run.imgtrace")
    print(f"  imgtrace report {shlex.quote(str(run))}", file=out)
