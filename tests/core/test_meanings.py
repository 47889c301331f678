"""Meanings shared by every tool: error kinds, input images, quantiles, byte sizes, classes."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tracefiles import write_trace

from traces import (
    ERROR_KINDS,
    ArrivalProcess,
    Blob,
    FilePart,
    MultipartBody,
    Outcome,
    Request,
    Response,
    TextField,
    TraceReader,
    UsageError,
    class_labels,
    error_kind,
    error_kind_named,
    input_images,
    input_masks,
    parse_byte_size,
    quantile,
    request_classes,
    request_features,
    view_exchange,
)

# -- error kinds ----------------------------------------------------------------------------

REQUEST = httpx.Request("POST", "http://127.0.0.1:1/v1/images/edits")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectTimeout("slow", request=REQUEST), "connect"),
        (httpx.ConnectError("refused", request=REQUEST), "connect"),
        (httpx.ReadTimeout("slow", request=REQUEST), "timeout"),
        (httpx.WriteTimeout("slow", request=REQUEST), "timeout"),
        (httpx.PoolTimeout("busy"), "timeout"),
        (httpx.ReadError("reset", request=REQUEST), "read"),
        (httpx.WriteError("pipe", request=REQUEST), "write"),
        (httpx.RemoteProtocolError("bad head", request=REQUEST), "protocol"),
        (httpx.LocalProtocolError("bad head"), "protocol"),
    ],
)
def test_one_kind_per_exception(exc: BaseException, kind: str) -> None:
    assert error_kind(exc) == kind
    assert error_kind(exc, default="upstream") == kind
    assert kind in ERROR_KINDS


def test_unknown_failures_take_the_callers_default() -> None:
    assert error_kind(httpx.UnsupportedProtocol("ftp")) == "local"
    assert error_kind(RuntimeError("?"), default="upstream") == "upstream"


def test_imported_failures_are_named_the_same_way() -> None:
    assert error_kind_named("ConnectTimeout: connection timed out") == "connect"
    assert error_kind_named("asyncio.TimeoutError") == "timeout"
    assert error_kind_named("ServerDisconnectedError") == "upstream"


# -- input images -----------------------------------------------------------------------------


def _file(name: str, blob: str = "d") -> FilePart:
    return FilePart(name=name, blob=blob, size=1, filename="x.png", content_type="image/png")


def test_masks_are_counted_apart_from_input_images() -> None:
    body = MultipartBody(
        parts=(
            TextField(name="prompt", value="sky"),
            _file("image[]", "a"),
            _file("image[]", "b"),
            _file("mask", "m"),
            TextField(name="image", value="https://example.invalid/x.png"),
        )
    )
    assert [p.blob for p in input_images(body)] == ["a", "b"]
    assert [p.blob for p in input_masks(body)] == ["m"]
    assert input_images(None) == () and input_masks(None) == ()


# -- quantiles --------------------------------------------------------------------------------


def test_quantile_is_an_observation_at_or_above_the_fraction() -> None:
    values = list(range(1, 101))
    assert quantile(values, 0.99) == 99
    assert quantile(values, 0.5) == 50
    assert quantile(values, 1.0) == 100 and quantile(values, 0.0) == 1
    assert quantile([7.0], 0.99) == 7.0
    assert math.isnan(quantile([], 0.5))
    with pytest.raises(ValueError, match="between 0 and 1"):
        quantile(values, 99)


@given(st.lists(st.integers(-(10**9), 10**9), min_size=1, max_size=300), st.floats(0, 1))
def test_quantile_matches_numpys_inverted_cdf(values: list[int], q: float) -> None:
    ordered = sorted(values)
    expected = float(np.quantile(np.array(ordered, dtype=np.float64), q, method="inverted_cdf"))
    # numpy rounds q * n exactly; the shared definition forgives floating-point noise in q * n.
    index = ordered.index(int(quantile(ordered, q)))
    neighbours = {float(v) for v in ordered[max(0, index - 1) : index + 2]}
    assert quantile(ordered, q) == expected or expected in neighbours


def test_numpy_arrays_give_the_same_quantile() -> None:
    lags = sorted(float(x) for x in np.random.default_rng(4).exponential(3e6, 1000))
    assert quantile(np.array(lags), 0.99) == quantile(lags, 0.99)


# -- byte sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1048576", 1048576),
        ("500k", 500 * 1024),
        ("64M", 64 << 20),
        ("64MB", 64 << 20),
        ("64MiB", 64 << 20),
        ("2 GB", 2 << 30),
        ("1.5m", 3 << 19),
        ("10kib", 10240),
        ("1T", 1 << 40),
        ("512b", 512),
    ],
)
def test_byte_sizes_use_powers_of_1024(text: str, value: int) -> None:
    assert parse_byte_size(text) == value


@pytest.mark.parametrize("text", ["", "12q", "-5", "MiB", "1e6", "5 kk", "0x10"])
def test_nonsense_byte_sizes_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="^--max-body: not a byte count"):
        parse_byte_size(text, "--max-body")


@given(st.integers(min_value=0, max_value=1 << 40), st.sampled_from(["", "k", "M", "G", "T"]))
def test_byte_sizes_are_exact(number: int, unit: str) -> None:
    factor = {"": 1, "k": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]
    assert parse_byte_size(f"{number}{unit}") == number * factor


# -- request classes --------------------------------------------------------------------------


def _edit(request_id: str, size: str, images: int, mask: bool = False) -> Request:
    parts: list[TextField | FilePart] = [TextField(name="size", value=size)]
    parts += [_file("image[]") for _ in range(images)]
    parts += [_file("mask")] if mask else []
    return Request(id=request_id, offset_ns=0, path="/v1/images/edits",
                   body=MultipartBody(parts=tuple(parts)))  # fmt: skip


def test_request_classes_name_what_varies() -> None:
    requests = [_edit("1", "512x512", 1, mask=True), _edit("2", "1024x1024", 2)]
    assert request_features(requests[0])["images"] == "1"
    assert request_classes(requests) == {
        "1": "size=512x512 images=1",
        "2": "size=1024x1024 images=2",
    }
    assert request_classes([_edit("1", "512x512", 1), _edit("2", "512x512", 1)]) == {
        "1": "all",
        "2": "all",
    }
    assert class_labels({}) == {}


# -- arrival processes ------------------------------------------------------------------------


def test_arrival_processes_validate_themselves() -> None:
    with pytest.raises(UsageError, match="burstiness"):
        ArrivalProcess(kind="gamma", burstiness=0)
    with pytest.raises(UsageError, match="rate"):
        ArrivalProcess.steady("poisson", 0.0)
    with pytest.raises(UsageError, match="starts at time 0"):
        ArrivalProcess(schedule=((5.0, 1.0),))


def test_a_seed_fixes_the_arrivals() -> None:
    process = ArrivalProcess.steady("gamma", 50.0, burstiness=0.5)
    first = process.times(np.random.default_rng(9), 200, None)
    assert first == process.times(np.random.default_rng(9), 200, None)
    assert first != process.times(np.random.default_rng(10), 200, None)
    endless = process.arrivals(np.random.default_rng(9))
    assert [next(endless) for _ in range(200)] == first


# -- one view of recorded and replayed exchanges ------------------------------------------


def test_a_response_and_an_outcome_give_the_same_view() -> None:
    response = Response(status=200, upload_done_ns=10, first_byte_ns=20, done_ns=30,
                        bytes_down=5, images=("i",))  # fmt: skip
    recorded = view_exchange(Request(id="r", offset_ns=3, path="/", response=response), seq=4)
    replayed = view_exchange(
        Outcome(request_id="r", seq=4, intended_ns=3, sent_ns=3, upload_done_ns=10,
                first_byte_ns=20, done_ns=30, status=200, bytes_down=5, images=("i",))
    )  # fmt: skip
    assert recorded is not None and replayed is not None
    assert recorded.recorded and not replayed.recorded
    same = ("request_id", "seq", "intended_ns", "sent_ns", "done_ns", "status", "images")
    assert all(getattr(recorded, f) == getattr(replayed, f) for f in same)
    assert view_exchange(Request(id="q", offset_ns=0, path="/")) is None


# -- reading only some kinds of records -------------------------------------------------------


def test_records_of_other_kinds_are_skipped_undecoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.imgtrace"
    write_trace(path, 12, with_responses=True)
    with TraceReader(path) as reader:
        everything = list(reader.records())
        decoded: list[int] = []
        original = reader._decode_record

        def counting(frame_offset: int, payload: memoryview) -> object:
            decoded.append(len(payload))
            return original(frame_offset, payload)

        monkeypatch.setattr(reader, "_decode_record", counting)
        requests = list(reader.records(kinds={"request"}))
    assert requests == [r for r in everything if isinstance(r, Request)]
    assert len(decoded) == len(requests)  # no blob, no header was decoded
    assert any(isinstance(r, Blob) for r in everything)


def test_a_file_without_index_still_finds_blobs_after_a_filtered_read(tmp_path: Path) -> None:
    path = tmp_path / "t.imgtrace"
    requests = write_trace(path, 6, close=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = TraceReader(path)
    with reader:
        assert not reader.closed_cleanly
        read = list(reader.requests())
        assert [r.id for r in read] == [r.id for r in requests]
        body = read[0].body
        assert isinstance(body, MultipartBody)
        digest = input_images(body)[0].blob
        assert reader.blob(digest).startswith(b"\x89PNG")


def test_every_tool_counts_an_image_and_a_mask_alike(tmp_path: Path) -> None:
    from tracefiles import png

    from analyzer._images.compare import _request_info
    from replayer import Plan, Selection, Shaper, Timing
    from traces import FormPartData, Header, TraceWriter, body_from_parts
    from traces._inspect import summarize

    path = tmp_path / "edits.imgtrace"
    with TraceWriter(path, Header(source="test")) as writer:
        for index, (size, names) in enumerate(
            [("512x512", ["image", "mask"]), ("1024x1024", ["image[]", "image[]"])]
        ):
            parts = [FormPartData("prompt", b"sky"), FormPartData("size", size.encode())]
            parts += [
                FormPartData(name, png(8 + i, 8, (i, 0, 0)), f"{name}.png", "image/png")
                for i, name in enumerate(names)
            ]
            body = body_from_parts(parts, "b0undary", writer.add_blob)
            writer.write(Request(id=f"r{index}", offset_ns=index, path="/v1/images/edits",
                                 body=body))  # fmt: skip
    with TraceReader(path) as reader:
        summary = summarize(reader)
        requests = list(reader.requests())
        dry = Plan(reader, Selection(), Timing(), Shaper("http://127.0.0.1:9"))
        dry.run_survey()
        mix = dry.dry_run().mix
    assert summary.images_per_request == {"1": 1, "2": 1}
    assert summary.masks_per_request == {"0": 1, "1": 1}
    assert dict(mix["input images"]) == {"1": 1, "2": 1}
    assert [request_features(r)["images"] for r in requests] == ["1", "2"]
    assert [len(_request_info(r).inputs) for r in requests] == [1, 2]
    assert request_classes(requests) == {
        "r0": "size=512x512 images=1",
        "r1": "size=1024x1024 images=2",
    }


# -- arrival order ----------------------------------------------------------------------------


@pytest.mark.parametrize("clean_close", [True, False])
def test_requests_come_back_in_arrival_order_whatever_the_file_order(
    tmp_path: Path, clean_close: bool
) -> None:
    from traces import Header, TraceWriter

    path = tmp_path / "finished.imgtrace"
    offsets = {"a": 30, "b": 10, "c": 20, "d": 10, "e": 0}
    writer = TraceWriter(path, Header(source="test"), flush_records=2)
    for request_id, offset in offsets.items():
        writer.write(Request(id=request_id, offset_ns=offset, path="/v1/images/edits"))
    if clean_close:
        writer.close()
    else:
        writer.flush()
        writer.abandon()  # as a killed recorder leaves it: no index
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = TraceReader(path)
    with reader:
        assert [r.id for r in reader.requests()] == list(offsets)
        # By offset; the two at 10 ns keep their file order.
        assert [r.id for r in reader.requests_by_arrival()] == ["e", "b", "d", "c", "a"]
        assert [r.id for r in reader.requests_by_arrival()] == ["e", "b", "d", "c", "a"]
        if clean_close:
            assert reader.index is not None and not reader.index.arrival_sorted


def test_a_sorted_file_says_so_in_its_index(tmp_path: Path) -> None:
    path = tmp_path / "t.imgtrace"
    written = write_trace(path, 8)
    with TraceReader(path) as reader:
        assert reader.index is not None and reader.index.arrival_sorted
        assert [r.id for r in reader.requests_by_arrival()] == [r.id for r in written]


@given(
    st.sampled_from(["blob", "request", "outcome", "note", "header"]),
    st.text(max_size=40),
    st.dictionaries(st.text(max_size=8), st.integers(-(2**63), 2**63 - 1), max_size=20),
)
def test_the_tag_of_any_record_is_read_without_decoding_it(
    tag: str, text: str, metadata: dict[str, int]
) -> None:
    import msgspec

    from traces import Header, Note
    from traces._reader import _peek_tag

    record = {
        "blob": Blob(digest=text, media_type="image/png", data=text.encode()),
        "request": Request(id=text, offset_ns=1, path="/", notes=dict(metadata)),
        "outcome": Outcome(request_id=text, seq=1, intended_ns=2),
        "note": Note(metadata=dict(metadata)),
        "header": Header(source=text, metadata=dict(metadata)),
    }[tag]
    assert _peek_tag(memoryview(msgspec.msgpack.encode(record))) == tag
    assert _peek_tag(memoryview(msgspec.msgpack.encode({"kind": tag}))) is None
