"""`imgtrace merge`: shard runs into one run, several recorders' traces into one trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scale_support import MS, one_line_error, write_shard_run, write_trace

from imgtrace import main
from traces import Blob, Outcome, TraceReader, merge_files


def shards(tmp_path: Path, count: int = 3, total: int = 20, **kwargs: object) -> list[Path]:
    return [
        write_shard_run(
            tmp_path / f"s{i}.imgtrace",
            index=i,
            count=count,
            total=total,
            **kwargs,  # type: ignore[arg-type]
        )
        for i in range(count)
    ]


def test_shards_merge_into_one_ordinary_run(tmp_path: Path) -> None:
    inputs = shards(tmp_path)
    out = tmp_path / "merged.imgtrace"
    result = merge_files(inputs, out)
    assert (result.kind, result.records, result.shards, result.group) == ("run", 20, 3, "g1")
    with TraceReader(out) as reader:
        assert reader.kind == "run"
        assert reader.header.trace_digest == "d" * 64
        assert "shard" not in reader.header.metadata
        assert reader.header.metadata["planned"] == 20
        assert reader.header.metadata["merged"]["shards"] == 3
        records = list(reader.records())
    outcomes = [r for r in records if isinstance(r, Outcome)]
    blobs = [r for r in records if isinstance(r, Blob)]
    assert [o.seq for o in outcomes] == list(range(20))
    # Exact per-request records: every field as the shard wrote it.
    originals: dict[int, Outcome] = {}
    for path in inputs:
        with TraceReader(path) as reader:
            originals.update((o.seq, o) for o in reader.outcomes())
    assert all(o == originals[o.seq] for o in outcomes)
    assert len(blobs) == len({b.digest for b in blobs}) == 3  # each image stored once


def test_merged_run_is_analysed_from_raw_samples(tmp_path: Path) -> None:
    from analyzer import load_rows

    out = tmp_path / "merged.imgtrace"
    merge_files(shards(tmp_path), out)
    rows = load_rows(out)
    assert list(rows.seq) == list(range(20))
    assert list(rows.intended) == [seq * 10 * MS for seq in range(20)]
    assert list(rows.done - rows.first_byte) == [MS + seq for seq in range(20)]


def test_merge_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.imgtrace"
    code = main(["merge", *map(str, shards(tmp_path, 2, 5)), "-o", str(out), "--json", "-"])
    assert code == 0
    captured = capsys.readouterr()
    assert '"records": 5' in captured.out
    assert "merged 2 shards of group g1" in captured.err


def test_a_shard_that_stopped_early_is_merged_and_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write_shard_run(tmp_path / "a.imgtrace", index=0, count=2, total=10)
    b = write_shard_run(tmp_path / "b.imgtrace", index=1, count=2, total=10, planned=8)
    out = tmp_path / "m.imgtrace"
    assert main(["merge", str(a), str(b), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "shard 1/2 recorded 5 of its 8 planned sends" in err
    assert "shard 0/2" not in err
    with TraceReader(out) as reader:
        assert reader.header.metadata["planned"] == 13
        assert len(list(reader.outcomes())) == 10


def test_missing_shard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = shards(tmp_path, 3)
    out = tmp_path / "m.imgtrace"
    code = main(["merge", str(inputs[0]), str(inputs[2]), "-o", str(out)])
    one_line_error(capsys, code, "shard 1/3 missing", "given 0/3, 2/3")
    assert not out.exists()


def test_duplicated_shard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = shards(tmp_path, 2)
    copy = tmp_path / "copy.imgtrace"
    copy.write_bytes(inputs[1].read_bytes())
    out = tmp_path / "m.imgtrace"
    code = main(["merge", *map(str, inputs), str(copy), "-o", str(out)])
    one_line_error(capsys, code, "shard 1/2 is given twice", "copy.imgtrace")
    assert not out.exists()


def test_shards_of_different_traces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_shard_run(tmp_path / "a.imgtrace", index=0, count=2, total=4)
    b = write_shard_run(tmp_path / "b.imgtrace", index=1, count=2, total=4, digest="e" * 64)
    code = main(["merge", str(a), str(b), "-o", str(tmp_path / "m.imgtrace")])
    one_line_error(capsys, code, "replay different traces")


def test_shards_of_different_groups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_shard_run(tmp_path / "a.imgtrace", index=0, count=2, total=4, group="g1")
    b = write_shard_run(tmp_path / "b.imgtrace", index=1, count=2, total=4, group="g2")
    code = main(["merge", str(a), str(b), "-o", str(tmp_path / "m.imgtrace")])
    one_line_error(capsys, code, "in group g1", "in group g2")


def test_shards_of_different_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_shard_run(tmp_path / "a.imgtrace", index=0, count=2, total=4)
    b = write_shard_run(tmp_path / "b.imgtrace", index=1, count=3, total=4)
    code = main(["merge", str(a), str(b), "-o", str(tmp_path / "m.imgtrace")])
    one_line_error(capsys, code, "share N")


def test_a_run_that_is_not_a_shard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_shard_run(tmp_path / "a.imgtrace", index=0, count=2, total=4)
    b = write_shard_run(tmp_path / "b.imgtrace", index=1, count=2, total=4, with_shard=False)
    code = main(["merge", str(a), str(b), "-o", str(tmp_path / "m.imgtrace")])
    one_line_error(capsys, code, "b.imgtrace: not a shard run")


def test_overlapping_shards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that claims a shard but holds another shard's sends is refused, output untouched."""
    a = write_shard_run(tmp_path / "a.imgtrace", index=0, count=2, total=4)
    liar = tmp_path / "b.imgtrace"
    write_shard_run(liar, index=1, count=2, total=4)
    # Shard 1's header over shard 0's sends.
    forged = write_shard_run(tmp_path / "f.imgtrace", index=0, count=1, total=4, group="g1")
    with TraceReader(forged) as reader:
        sends = list(reader.outcomes())
    from traces import Header, TraceWriter, shard_metadata

    header = Header(
        kind="run",
        trace_digest="d" * 64,
        start_wall_ns=1_800_000_000 * 1_000_000_000,
        metadata=shard_metadata(1, 2, "g1"),
    )
    with TraceWriter(liar, header, force=True) as writer:
        for outcome in sends:
            writer.write(outcome.__class__(**{**_fields(outcome), "images": (), "envelope": None}))
    out = tmp_path / "m.imgtrace"
    out.write_bytes(b"keep me")
    code = main(["merge", str(a), str(liar), "-o", str(out), "--force"])
    one_line_error(capsys, code, "send 0 is not part of shard 1/2")
    assert out.read_bytes() == b"keep me"
    assert not list(tmp_path.glob(".*partial"))


def _fields(outcome: Outcome) -> dict[str, Any]:
    return {name: getattr(outcome, name) for name in outcome.__struct_fields__}


def test_merging_a_run_with_a_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_shard_run(tmp_path / "a.imgtrace", index=0, count=2, total=4)
    trace = write_trace(tmp_path / "t.imgtrace", [0, 10])
    code = main(["merge", str(run), str(trace), "-o", str(tmp_path / "m.imgtrace")])
    one_line_error(capsys, code, "cannot merge a run with a trace")


def test_one_input_and_existing_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = shards(tmp_path, 2, 4)
    code = main(["merge", str(a), "-o", str(tmp_path / "m.imgtrace")])
    one_line_error(capsys, code, "at least two inputs")
    out = tmp_path / "m.imgtrace"
    out.write_bytes(b"x")
    code = main(["merge", str(a), str(b), "-o", str(out)])
    one_line_error(capsys, code, "--force")
    assert out.read_bytes() == b"x"
    code = main(["merge", str(a), str(b), "-o", str(a), "--force"])
    one_line_error(capsys, code, "is also an input")


# -- traces from several recorders --------------------------------------------------------


def test_traces_interleave_by_wall_time_with_unique_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zero = 1_800_000_000 * 1_000_000_000
    first = write_trace(tmp_path / "east.imgtrace", [0, 20, 40], start_wall_ns=zero)
    # The second recorder started 5 ms later; same ids (r0000...), the same reference image.
    second = write_trace(tmp_path / "west.imgtrace", [0, 20], start_wall_ns=zero + 5 * MS)
    out = tmp_path / "all.imgtrace"
    code = main(["merge", str(first), str(second), "-o", str(out)])
    assert code == 0
    err = capsys.readouterr().err
    assert "2 request ids were used by more than one trace" in err
    with TraceReader(out) as reader:
        assert reader.kind == "trace"
        assert reader.header.start_wall_ns == zero
        requests = list(reader.requests())
        blobs = [r for r in reader.records() if isinstance(r, Blob)]
    assert [(r.id, r.offset_ns // MS) for r in requests] == [
        ("r0000", 0),
        ("west/r0000", 5),
        ("r0001", 20),
        ("west/r0001", 25),
        ("r0002", 40),
    ]
    assert [r.wall_ns for r in requests] == [zero + r.offset_ns for r in requests]
    assert len(blobs) == 1


def test_traces_without_header_start_use_request_wall_times(tmp_path: Path) -> None:
    from traces import Header, Request, TraceWriter

    zero = 1_800_000_000 * 1_000_000_000
    paths = []
    for name, walls in (("a", [zero + 10 * MS, zero + 30 * MS]), ("b", [zero + 20 * MS])):
        path = tmp_path / f"{name}.imgtrace"
        with TraceWriter(path, Header()) as writer:
            for i, wall in enumerate(walls):
                offset = wall - walls[0]
                writer.write(Request(id=f"{name}{i}", offset_ns=offset, path="/x", wall_ns=wall))
        paths.append(path)
    out = tmp_path / "m.imgtrace"
    merge_files(paths, out)
    with TraceReader(out) as reader:
        got = [(r.id, r.offset_ns // MS) for r in reader.requests()]
    assert got == [("a0", 0), ("b0", 10), ("a1", 20)]


def test_the_same_trace_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0, 10], start_wall_ns=1)
    copy = tmp_path / "copy.imgtrace"
    copy.write_bytes(trace.read_bytes())
    code = main(["merge", str(trace), str(copy), "-o", str(tmp_path / "m.imgtrace")])
    one_line_error(capsys, code, "are the same trace")


def test_a_trace_with_no_time_of_day(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_trace(tmp_path / "a.imgtrace", [0, 10])
    b = write_trace(tmp_path / "b.imgtrace", [0, 15])
    out = tmp_path / "m.imgtrace"
    code = main(["merge", str(a), str(b), "-o", str(out)])
    one_line_error(capsys, code, "has no wall time")
    assert not out.exists()
