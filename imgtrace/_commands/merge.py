"""`imgtrace merge`: the shard runs of one replay, or traces from several recorders, as one file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._shared import (
    EXIT_OK,
    Command,
    add_force_flag,
    add_json_flag,
    progress,
    refuse_existing,
    write_json,
)

__all__ = ["register"]

DESCRIPTION = """\
Merge files into one ordinary trace or run file, every per-request record kept exactly and every
blob stored once.

Runs: the N runs of one `replay --shard I/N` (the same trace and group, each shard exactly
once) become the run of the whole schedule; statistics are then computed from the raw samples
by report and compare, as for any run. Traces: traces recorded by several proxies become one,
interleaved by wall time; a request id already used by an earlier input gets its file's name as
a prefix (NAME/ID). Partial image results (`compare --shard I/N --images-out FILE`): the shards
of one image comparison become the complete result that `compare --images-from` reads.
docs/scale-out.md explains the workflow."""

EPILOG = """\
exit codes: 0 merged; 2 usage or input error (shards of different traces or groups, a shard
missing or given twice, runs mixed with traces); nothing is written then."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `merge`."""
    parser.add_argument(
        "inputs", type=Path, nargs="+", metavar="FILE", help="shard runs, or traces"
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="FILE", help="the file to write"
    )
    add_force_flag(parser, "overwrite the output if it exists (else refused)")
    add_json_flag(parser)


def _merge(args: argparse.Namespace) -> int:
    from analyzer._imageshards import is_partial
    from traces import UsageError, merge_files

    refuse_existing(args.output, args.force, "-o")
    refuse_existing(args.json, args.force, "--json")
    partials = [is_partial(path) for path in args.inputs]
    if any(partials):
        if not all(partials):
            raise UsageError(
                "cannot merge partial image results with trace or run files: merge each kind "
                "on its own"
            )
        return _merge_images(args)
    with progress("merging") as update:
        result = merge_files(args.inputs, args.output, force=args.force, progress=update)
    if result.kind == "run":
        print(
            f"merged {result.shards} shards of group {result.group}: {result.records} sends, "
            f"{result.blobs} blobs → {result.output}",
            file=sys.stderr,
        )
    else:
        print(
            f"merged {result.inputs} traces: {result.records} requests by wall time, "
            f"{result.blobs} blobs → {result.output}",
            file=sys.stderr,
        )
    for note in result.notes:
        print(f"imgtrace: note: {note}", file=sys.stderr)
    write_json(args.json, result.as_dict())
    return EXIT_OK


def _merge_images(args: argparse.Namespace) -> int:
    from analyzer._imageshards import merge_partials, write_partial
    from traces import UsageError

    if len(args.inputs) < 2:
        raise UsageError("merge needs at least two inputs (the shards of one image comparison)")
    merged = merge_partials(args.inputs)
    write_partial(merged, args.output)
    print(
        f"merged {len(args.inputs)} image shards: {len(merged.pairs)} output pairs → "
        f"{args.output} (use it with compare --images-from)",
        file=sys.stderr,
    )
    summary = {"output": str(args.output), "kind": "images", "pairs": len(merged.pairs)}
    write_json(args.json, summary)
    return EXIT_OK


register = Command(
    "merge",
    "join shard runs, or traces from several recorders, into one file",
    DESCRIPTION,
    add_arguments,
    _merge,
    EPILOG,
)
