"""Replays against a real HTTP server (the echo server): timing, shaping, faults, secrets.

Assertions are on recorded values (intended and sent offsets, what the server saw), never on
how long something took on the wall clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from replay_helpers import MS, Server, png, write_trace
from samples import edit, upload

from replayer import ReplayConfig, Selection, Timing, replay, replay_async
from traces import (
    Header,
    Outcome,
    Request,
    TraceError,
    TraceReader,
    TraceWriter,
)


def run(
    trace: Path, server: Server, out: Path, **options: object
) -> tuple[list[Outcome], dict[str, object]]:
    config = ReplayConfig(trace=trace, target=server.url, output=out, **options)  # type: ignore[arg-type]
    replay(config)
    with TraceReader(out) as reader:
        assert reader.kind == "run"
        outcomes = sorted(reader.outcomes(), key=lambda o: o.seq)
        return outcomes, reader.metadata()


def sends_never_early(outcomes: Sequence[Outcome]) -> None:
    for outcome in outcomes:
        assert outcome.sent_ns is not None and outcome.sent_ns >= outcome.intended_ns


def test_sends_follow_trace_offsets(tmp_path: Path, echo: Server) -> None:
    offsets = [0, 25, 40, 120, 130, 250]
    trace = write_trace(tmp_path / "t.imgtrace", offsets)
    outcomes, meta = run(trace, echo, tmp_path / "run.imgtrace")
    assert [o.request_id for o in outcomes] == [f"r{i:04d}" for i in range(len(offsets))]
    assert [o.intended_ns for o in outcomes] == [o * MS for o in offsets]
    sends_never_early(outcomes)
    assert all(o.status == 200 and o.error is None for o in outcomes)
    for o in outcomes:
        assert o.sent_ns is not None and o.upload_done_ns is not None
        assert o.first_byte_ns is not None and o.done_ns is not None
        assert o.sent_ns <= o.upload_done_ns <= o.first_byte_ns <= o.done_ns
        assert o.bytes_up > 0 and o.bytes_down > 0
        assert len(o.images) == 1
    # Sent in trace order.
    sent = [o.sent_ns or 0 for o in outcomes]
    assert sent == sorted(sent)
    assert meta["sent"] == len(offsets) and meta["interrupted"] is False
    with TraceReader(tmp_path / "run.imgtrace") as reader, TraceReader(trace) as original:
        assert reader.header.trace_digest == original.trace_digest()
        assert reader.header.target == echo.url
        assert reader.blob(outcomes[0].images[0]).startswith(b"\x89PNG")


def test_speed_two_halves_the_span(tmp_path: Path, echo: Server) -> None:
    offsets = [0, 40, 100, 160, 240]
    trace = write_trace(tmp_path / "t.imgtrace", offsets)
    outcomes, meta = run(trace, echo, tmp_path / "run.imgtrace", timing=Timing(speed=2.0))
    assert [o.intended_ns for o in outcomes] == [o * MS // 2 for o in offsets]
    assert outcomes[-1].intended_ns - outcomes[0].intended_ns == 120 * MS
    sends_never_early(outcomes)
    with TraceReader(tmp_path / "run.imgtrace") as reader:
        assert reader.header.options["speed"] == 2.0


def test_rate_retimes_in_order(tmp_path: Path, echo: Server) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0, 500, 501, 502, 900, 2000])
    timing = Timing("rate", rate=200.0, arrival="poisson", arrival_seed=3)
    outcomes, _ = run(trace, echo, tmp_path / "run.imgtrace", timing=timing)
    intended = [o.intended_ns for o in outcomes]
    assert intended[0] == 0 and intended == sorted(intended)
    assert intended[-1] < 500 * MS  # re-timed: nothing like the trace's 2 s span
    assert [o.request_id for o in outcomes] == [f"r{i:04d}" for i in range(6)]
    sends_never_early(outcomes)
    again, _ = run(trace, echo, tmp_path / "again.imgtrace", timing=timing)
    assert [o.intended_ns for o in again] == intended


def test_concurrency_never_exceeds_n(tmp_path: Path, slow_echo: Server) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0] * 12)
    outcomes, meta = run(
        trace, slow_echo, tmp_path / "run.imgtrace", timing=Timing("closed", concurrency=3)
    )
    assert len(outcomes) == 12 and all(o.status == 200 for o in outcomes)
    # From the run file: no more than 3 exchanges overlap at any instant...
    events = sorted(
        [(o.sent_ns, 1) for o in outcomes] + [(o.done_ns, -1) for o in outcomes],
        key=lambda e: (e[0], e[1]),
    )
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert peak == 3
    # ...and the server never saw more than 3 at once, but did see 3.
    assert max(o.envelope["inflight"] for o in outcomes) == 3
    assert meta["peak_in_flight"] == 3
    # Closed loop: each send is due when a slot frees, so it is never before that.
    sends_never_early(outcomes)


def test_max_inflight_wait_is_lag(tmp_path: Path, slow_echo: Server) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0] * 4)
    timing = Timing(max_inflight=1)
    outcomes, meta = run(trace, slow_echo, tmp_path / "run.imgtrace", timing=timing)
    assert max(o.envelope["inflight"] for o in outcomes) == 1
    # All were due at 0; each waited for the one before it, and that wait is recorded as lag.
    for before, after in zip(outcomes, outcomes[1:], strict=False):
        assert after.intended_ns == 0
        assert before.done_ns is not None and after.sent_ns is not None
        assert after.sent_ns >= before.done_ns
    lag = meta["lag"]
    assert isinstance(lag, dict) and lag["waited"] == 3


def test_warmup_is_flagged(tmp_path: Path, echo: Server) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0, 5, 10, 15])
    selection = Selection(warmup=2, loop=2)
    outcomes, meta = run(trace, echo, tmp_path / "run.imgtrace", selection=selection)
    assert [(o.request_id, o.loop, o.warmup) for o in outcomes] == [
        ("r0000", 0, True),
        ("r0001", 0, True),
        ("r0002", 0, False),
        ("r0003", 0, False),
        ("r0000", 1, False),
        ("r0001", 1, False),
        ("r0002", 1, False),
        ("r0003", 1, False),
    ]
    assert meta["warmup"] == 2


def test_set_seed_and_model_are_on_the_wire(tmp_path: Path, echo: Server) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0, 5, 10])
    outcomes, _ = run(
        trace,
        echo,
        tmp_path / "run.imgtrace",
        sets=[("num_inference_steps", "8"), ("guidance_scale", "1.0")],
        seed="fixed:1234",
        model="flux-klein",
    )
    for o in outcomes:
        fields = o.envelope["fields"]
        assert fields["num_inference_steps"] == "8"
        assert fields["guidance_scale"] == "1.0"
        assert fields["seed"] == "1234"
        assert fields["model"] == "flux-klein"
        assert [f["name"] for f in o.envelope["files"]] == ["image"]
    kept, _ = run(trace, echo, tmp_path / "kept.imgtrace")
    assert [o.envelope["fields"]["seed"] for o in kept] == ["100", "101", "102"]
    drawn, _ = run(trace, echo, tmp_path / "drawn.imgtrace", seed="random:9")
    seeds = [o.envelope["fields"]["seed"] for o in drawn]
    assert len(set(seeds)) == 3 and "100" not in seeds
    redrawn, _ = run(trace, echo, tmp_path / "redrawn.imgtrace", seed="random:9")
    assert [o.envelope["fields"]["seed"] for o in redrawn] == seeds


def test_target_path_prefix(tmp_path: Path, echo: Server) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0])
    config = ReplayConfig(trace=trace, target=echo.url + "/gw/", output=tmp_path / "run.imgtrace")
    replay(config)
    with TraceReader(tmp_path / "run.imgtrace") as reader:
        (outcome,) = reader.outcomes()
    assert outcome.envelope["path"] == "/gw/v1/images/edits"


def test_header_secret_is_sent_but_never_written(tmp_path: Path, echo: Server) -> None:
    secret = "sk-imgtrace-test-7c1f0e"
    trace = write_trace(
        tmp_path / "t.imgtrace", [0, 5], headers=[("Authorization", "[redacted]"), ("X-A", "1")]
    )
    out = tmp_path / "run.imgtrace"
    outcomes, _ = run(
        trace,
        echo,
        out,
        headers=[("Authorization", f"Bearer {secret}"), ("X-Api-Key", secret)],
    )
    expected = hashlib.sha256(f"Bearer {secret}".encode()).hexdigest()
    assert [o.envelope["auth_sha256"] for o in outcomes] == [expected, expected]
    assert "x-api-key" in outcomes[0].envelope["header_names"]
    assert "x-a" in outcomes[0].envelope["header_names"]
    with TraceReader(out) as reader:
        everything = b"".join(msgspec.json.encode(record) for record in reader.records())
        assert reader.header.options["headers"] == ["Authorization", "X-Api-Key"]
    assert secret.encode() not in everything
    assert secret.encode() not in out.read_bytes()


def test_server_faults_are_outcomes(tmp_path: Path, echo: Server) -> None:
    queries = ["", "status=500", "close=1", "hang=1", "status=429", ""]
    trace = write_trace(tmp_path / "t.imgtrace", [0, 1, 2, 3, 4, 5], query=lambda i: queries[i])
    outcomes, meta = run(trace, echo, tmp_path / "run.imgtrace", timeout=1.0)
    by_id = {o.request_id: o for o in outcomes}
    assert by_id["r0000"].status == 200 and by_id["r0000"].error is None
    assert by_id["r0001"].status == 500 and by_id["r0001"].error is None
    dropped = by_id["r0002"]
    assert dropped.status == 200 and dropped.error is not None
    assert dropped.error.kind in ("protocol", "read")
    hung = by_id["r0003"]
    assert hung.error is not None and hung.error.kind == "timeout" and hung.status is None
    assert hung.done_ns is not None and hung.sent_ns is not None
    assert by_id["r0004"].status == 429
    assert by_id["r0005"].status == 200
    assert meta["errors"] == 4
    assert meta["error_kinds"] == {dropped.error.kind: 1, "timeout": 1}


def test_compressed_responses_are_stored_decoded(tmp_path: Path, echo: Server) -> None:
    queries = ["encoding=gzip", "encoding=deflate", "encoding=zstd", "encoding=broken", ""]
    trace = write_trace(tmp_path / "t.imgtrace", [0, 1, 2, 3, 4], query=lambda i: queries[i])
    outcomes, _ = run(trace, echo, tmp_path / "run.imgtrace")
    by_id = {o.request_id: o for o in outcomes}
    plain = by_id["r0004"]
    for request_id in ("r0000", "r0001", "r0002"):
        decoded = by_id[request_id]
        assert decoded.error is None and decoded.status == 200
        assert decoded.images == plain.images  # the same PNG, out of the decoded JSON
        assert decoded.envelope["path"] == "/v1/images/edits"
        assert decoded.bytes_down < plain.bytes_down  # what came over the wire
    broken = by_id["r0003"]
    assert broken.status == 200 and broken.error is not None
    assert broken.error.kind == "protocol" and "does not decode" in broken.error.message


def test_no_images_keeps_digests_only(tmp_path: Path, echo: Server) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0, 1])
    outcomes, _ = run(trace, echo, tmp_path / "run.imgtrace", keep_images=False)
    with TraceReader(tmp_path / "run.imgtrace") as reader:
        assert reader.header.options["images"] is False
        for outcome in outcomes:
            (digest,) = outcome.images
            assert not reader.has_blob(digest)
    assert outcomes[0].images == outcomes[1].images


def test_failure_while_producing_is_one_error_and_a_valid_run(
    tmp_path: Path, echo: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from replayer._shaping import Shaper

    # Past the bodies built before the clock starts, so the failure comes mid-replay.
    trace = write_trace(tmp_path / "t.imgtrace", list(range(200)))
    original = Shaper.prepare

    def failing(self: Shaper, request: Request, loop: int, get_blob: Any) -> Any:
        if request.id == "r0150":
            raise TraceError(f"request {request.id}: the disk went away")
        return original(self, request, loop, get_blob)

    monkeypatch.setattr(Shaper, "prepare", failing)
    out = tmp_path / "run.imgtrace"
    with pytest.raises(TraceError, match="the disk went away"):
        replay(ReplayConfig(trace=trace, target=echo.url, output=out))
    with TraceReader(out) as reader:
        assert reader.closed_cleanly
        assert 0 < len(list(reader.outcomes())) < 200


async def test_replay_async_inside_an_event_loop(tmp_path: Path, echo: Server) -> None:
    trace = write_trace(tmp_path / "t.imgtrace", [0, 5])
    out = tmp_path / "run.imgtrace"
    result = await replay_async(ReplayConfig(trace=trace, target=echo.url, output=out))
    assert result.stats.done == 2 and result.lag.sends == 2
    assert result.output == out


def test_trace_without_index_replays(tmp_path: Path, echo: Server) -> None:
    # A recorder that was killed leaves no index: blobs are found by scanning, the digest is
    # computed by reading, and neither may race the body producer on the file.
    path = tmp_path / "crashed.imgtrace"
    writer = TraceWriter(path, Header(source="proxy"))
    for i in range(30):
        image = upload(writer.add_blob(png(i), "image/png"), 1, "a.png", None)
        writer.write(edit(f"r{i}", i * MS, image, f"p{i}"))
    writer.flush()
    writer.abandon()
    outcomes, _ = run(path, echo, tmp_path / "run.imgtrace")
    assert [o.request_id for o in outcomes] == [f"r{i}" for i in range(30)]
    assert [o.envelope["files"][0]["size"] for o in outcomes] == [len(png(i)) for i in range(30)]
    with TraceReader(path) as reader, TraceReader(tmp_path / "run.imgtrace") as run_file:
        assert not reader.closed_cleanly
        assert run_file.header.trace_digest == reader.trace_digest()
