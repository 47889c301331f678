"""`imgtrace compare`: paired A/B comparison of runs, with verdicts and a --fail-on gate."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from traces import UsageError

from ._analysis import add_common_arguments, refuse_outputs
from ._image_flags import add_image_arguments, thresholds_from_args
from ._shared import (
    EXIT_OK,
    EXIT_REGRESSION,
    Command,
    add_force_flag,
    add_path,
    add_switch,
    deprecation,
    progress,
    refuse_existing,
    write_json,
)

__all__ = ["register"]

COMPARE_DESCRIPTION = """\
Compare CAND runs against BASE, request by request (paired by request id and loop): the
typical per-request change (Hodges-Lehmann with a Wilcoxon-inverted CI), Wilcoxon signed-rank
and sign tests, McNemar for errors, p50/p90/p99 ratios with moving-block bootstrap CIs, a
decile shift function, and benchstat-style unpaired medians with Mann-Whitney U. p-values are
Holm-corrected across classes and candidates. Verdicts: faster, slower, ~ (no change that
matters) or inconclusive (with its reason, e.g. the noise band). Output images are compared
too unless --no-images."""

FAIL_ON_HELP = """\
comma-separated regression rules, e.g. 'p99:+10%%,median:+5%%,errors:+1%%,images:changed>5%%';
exit code 1 when a rule's regression is significant with its whole CI beyond the rule (see
docs/analyzing.md)"""


def add_arguments(compare: argparse.ArgumentParser) -> None:
    """The flags of `compare`."""
    compare.add_argument("base", type=Path, metavar="BASE", help="baseline run or trace")
    compare.add_argument("cands", type=Path, nargs="+", metavar="CAND", help="candidate runs")
    add_path(
        compare,
        "--noise",
        "BASE2",
        "a second replay of BASE's configuration: its difference from BASE is the A/A noise band "
        "that a change must exceed",
    )
    add_common_arguments(compare)
    compare.add_argument("--fail-on", metavar="RULES", help=FAIL_ON_HELP)
    add_switch(
        compare,
        "--allow-mixed-clients",
        "apply --fail-on's latency rules also to a CAND measured by another client than "
        "BASE (AIPerf vs imgtrace replay, a recording vs a replay, two replayer versions), whose "
        "latency difference holds the clients' difference too",
    )
    compare.add_argument(
        "--min-effect",
        default="2%",
        metavar="PCT",
        help="smallest change that counts as faster/slower, and the ~ band (default 2%%)",
    )
    compare.add_argument(
        "--alpha", type=float, default=0.05, help="significance level (default 0.05)"
    )
    compare.add_argument(
        "--resamples",
        type=int,
        default=2000,
        help="bootstrap resamples for quantile ratios (default 2000)",
    )
    compare.add_argument(
        "--seed", type=int, default=1, help="bootstrap random seed (default 1; results repeat)"
    )
    add_switch(
        compare,
        "--any-trace",
        "pair runs of different traces on the request ids they share (refused otherwise)",
    )
    add_force_flag(
        compare,
        "overwrite existing output files (pairing runs of different traces with it is "
        "deprecated: use --any-trace)",
    )
    add_image_arguments(compare)
    spread = compare.add_argument_group(
        "image comparison over several machines (docs/scale-out.md)"
    )
    spread.add_argument(
        "--shard",
        metavar="I/N",
        help="compare only shard I of N of the image pairs and write them to --images-out; "
        "no latency statistics",
    )
    add_path(spread, "--images-out", "FILE", "with --shard: the partial image result")
    add_path(
        spread,
        "--images-from",
        "FILE",
        "take the image comparison from FILE (the `imgtrace merge` of every shard's --images-out) "
        "instead of comparing images here",
    )


def _parse_min_effect(text: str) -> float:
    value = text.strip().rstrip("%")
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"--min-effect {text!r}: give a percentage such as 2%") from None
    if not 0 <= number < 100:
        raise UsageError(f"--min-effect {text!r}: give a percentage from 0 to 100")
    return number / 100.0


def _compare(args: argparse.Namespace) -> int:
    from analyzer import Settings, parse_rules

    rules = parse_rules(args.fail_on)
    settings = Settings(
        alpha=args.alpha,
        confidence=1.0 - args.alpha,
        min_effect=_parse_min_effect(args.min_effect),
        resamples=args.resamples,
        seed=args.seed,
        extra_quantiles=rules.quantiles(),
        equivalence=rules.thresholds(),
    )
    refuse_outputs(args, "json", "html")
    if rules.images and args.no_images:
        raise UsageError("--fail-on has image rules, but --no-images turns the comparison off")
    if args.shard is not None or args.images_out is not None:
        return _image_shard(args)
    if args.images_from is not None:
        if args.no_images:
            raise UsageError("--images-from gives the image comparison; --no-images drops it")
        if len(args.cands) > 1:
            raise UsageError("--images-from holds the images of one CAND: give one")
        if args.html is not None:
            raise UsageError(
                "--images-from has no diff pictures for --html: compare the images here instead"
            )
    return _run(args, settings, rules)


def _image_shard(args: argparse.Namespace) -> int:
    """`--shard I/N --images-out FILE`: one shard of the image pairs, as a partial result."""
    from analyzer._imageshards import compare_images_part, write_partial
    from replayer import parse_shard

    if args.shard is None or args.images_out is None:
        raise UsageError("--shard I/N and --images-out FILE go together")
    if args.no_images or args.images_from is not None or args.html is not None:
        raise UsageError("--shard compares images only: drop --no-images, --images-from, --html")
    if len(args.cands) > 1:
        raise UsageError("--shard compares one CAND with BASE: give one")
    part = parse_shard(args.shard)
    refuse_existing(args.images_out, args.force, "--images-out")
    with progress("comparing images"):
        partial = compare_images_part(
            args.base,
            args.cands[0],
            args.noise,
            index=part.index,
            count=part.count,
            thresholds=thresholds_from_args(args),
            jobs=args.jobs,
            force=args.force,
            salvage=args.salvage,
        )
    write_partial(partial, args.images_out)
    print(
        f"image shard {part.label}: {len(partial.pairs)} output pairs → {args.images_out} "
        "(merge every shard with imgtrace merge, then compare --images-from)",
        file=sys.stderr,
    )
    return EXIT_OK


def _run(args: argparse.Namespace, settings: Any, rules: Any) -> int:
    """The whole command once the options are checked; returns the exit code."""
    from analyzer import compare_files
    from analyzer._compare_run import (
        compare_document,
        interleave_notes,
        mixed_clients,
        provenance_notes,
        summary_line,
    )
    from analyzer._compare_tables import comparison_tables, noise_table
    from analyzer._render import render_text, wrap_lines
    from analyzer._report import health_line
    from analyzer._rules import violations

    with progress("comparing"):
        analyses, noise = compare_files(
            args.base,
            list(args.cands),
            args.noise,
            settings,
            trace=args.trace,
            force=args.any_trace or args.force,
            salvage=args.salvage,
        )
    _warn_force_pairing(args, analyses, noise)
    tables: list[Any] = []
    for analysis in analyses:
        tables += comparison_tables(analysis, settings, noise=noise is not None)
    if noise is not None:
        tables.append(noise_table(noise))
    found: list[str] = []
    for analysis in analyses:
        gate = rules
        if mixed_clients(analysis) and not args.allow_mixed_clients:
            # Another client's overheads are in the latency difference: no latency verdict.
            gate = dataclasses.replace(rules, latency=[])
        found += violations(analysis, gate, settings)
    image_reports: list[Any] = []
    if not args.no_images:
        image_reports, image_found = _image_reports(args, rules)
        found += image_found
        for image_report in image_reports:
            tables += image_report.tables()
    runs = [analyses[0].join.base] + [a.join.cand for a in analyses]
    runs += [noise.join.cand] if noise is not None else []
    runs = list({rows.path: rows for rows in runs}.values())  # a run named twice: one line
    summary = provenance_notes(analyses, noise)
    summary += [summary_line(analysis) for analysis in analyses]
    summary += interleave_notes(analyses, noise)
    summary += [health_line(rows) for rows in runs]
    summary += [f"REGRESSION: {line}" for line in found]
    code = EXIT_REGRESSION if found else EXIT_OK
    out = sys.stderr if args.json == "-" else sys.stdout
    print("\n\n".join(render_text(table) for table in tables), file=out)
    print("\n" + "\n".join(wrap_lines(summary)), file=out)
    if args.json:
        document = compare_document(
            analyses,
            noise,
            settings,
            rules,
            found,
            tables,
            image_reports,
            code,
            allow_mixed_clients=args.allow_mixed_clients,
        )
        write_json(args.json, document)
    if args.html is not None:
        _write_html(args, analyses, runs, summary, tables, image_reports)
    return code


def _warn_force_pairing(args: argparse.Namespace, analyses: list[Any], noise: Any) -> None:
    """--force once also paired runs of different traces; that meaning now is --any-trace."""
    if args.any_trace or not args.force:
        return
    joins = [analysis.join for analysis in analyses] + ([noise.join] if noise else [])
    if any(
        join.base.trace_digest and join.cand.trace_digest != join.base.trace_digest
        for join in joins
    ):
        deprecation("--force to pair runs of different traces", "--any-trace")


def _image_reports(args: argparse.Namespace, rules: Any) -> tuple[list[Any], list[str]]:
    import analyzer

    thresholds = thresholds_from_args(args)
    assets = None
    if args.html is not None:
        assets = args.html.with_name(args.html.stem + "_files")
    reports, found = [], []
    if args.images_from is not None:
        from analyzer._imageshards import read_partial, report_from_partial

        partial = read_partial(args.images_from)
        reports.append(report_from_partial(partial, args.base, args.cands[0], args.noise))
    for index, cand in enumerate([] if args.images_from is not None else args.cands):
        # The HTML report draws the first candidate's images; the others' verdicts still count.
        with progress("comparing images") as update:
            image_report = analyzer.compare_run_images(
                args.base,
                cand,
                args.noise,
                thresholds=thresholds,
                jobs=args.jobs,
                assets_dir=assets if index == 0 else None,
                force=args.force,
                salvage=args.salvage,
                progress=lambda step, done, total: update(done, total, step),
            )
        reports.append(image_report)
    for cand, image_report in zip(args.cands, reports, strict=True):
        for rule in rules.images:
            message = image_report.violation(rule)
            if message:
                found.append(f"{cand}: {message}")
    return reports, found


def _write_html(
    args: argparse.Namespace,
    analyses: list[Any],
    runs: list[Any],
    summary: list[str],
    tables: list[Any],
    image_reports: list[Any],
) -> None:
    import analyzer
    from analyzer._compare_run import shift_series
    from analyzer._plots import comparison_plots

    with progress("drawing plots"):
        plots = comparison_plots(runs, shift_series(analyses))
    analyzer.write_html_report(
        args.html,
        title=f"imgtrace compare: {args.base.name}",
        summary=summary,
        tables=tables,
        plots=plots,
        images=image_reports,
        force=args.force,
    )


register = Command(
    "compare",
    "paired A/B comparison of runs with verdicts and a --fail-on gate",
    COMPARE_DESCRIPTION,
    add_arguments,
    _compare,
)
