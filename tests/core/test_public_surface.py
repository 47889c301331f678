"""The public surface of each package, pinned: adding or removing a name is a deliberate change.

Also the option types' own checks: a library caller gets the same clear `UsageError` as the
command line, never a ZeroDivisionError from deep inside.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from typing import Any

import pytest

from traces import OutputExists, UsageError

# Per package, its `__all__` in sorted order, as one whitespace-separated string.
PUBLIC = {
    "traces": """
        ArrivalKind ArrivalProcess Ascending Blob BlobLocation BlobSink BlobSource Body
        CLASS_FIELDS DEFAULT_MAX_HEADER_SIZE DEFAULT_REDACTED_HEADERS Damage ERROR_KINDS
        ErrorInfo ErrorKind ExchangeView FORMAT_VERSION FileIndex FilePart FormPart FormPartData
        GapSource HEAD_TOO_LARGE Header Http1Error Http1Pool Http1Response Http1Timeout
        IMAGE_FIELDS INVALID_RESPONSE
        Interleave JsonBody
        LAG_ABSOLUTE_NS LAG_FLOOR_NS LAG_SHARE_OF_MEDIAN MASK_FIELDS MAX_CLASSES
        MeasuredSend MergeResult MissingBlobError MultipartBody MultipartError Note
        Outcome OutputExists PLACEHOLDERS READABLE_VERSIONS REDACTED RawBody Record
        RecordKind Redaction Reproduction Request Response SECRET_QUERY_PARAMS ShardInfo
        StreamingFormParser TextField TraceError TraceFormatError TraceReader
        TraceRecoveryWarning TraceSummary TraceWriter
        UnsupportedTraceVersion UsageError __version__ body_blobs body_from_bytes body_from_parts
        boundary_of cat_lines class_labels copy_part count_reproductions encode_body
        encode_multipart error_kind error_kind_named extension_for extract_images failure_label
        form_parts format_summary input_images input_masks internal_address invalid_response
        is_json_media json_envelope lag_advice lag_matters lag_rule_text merge_files
        new_boundary parse_byte_size parse_multipart quantile quantile_index redact_envelope
        redact_query reproductions request_classes request_features restore_images
        secret_header_name shard_metadata shard_of sniff_media_type strip_images
        strip_images_from_json summarize view_exchange
    """,
    "recorder": """
        ArrivalProcess BUILTIN_PROMPTS ImportStats InputError RecordOptions Recorder
        RecorderError RecorderProcess RecorderStats RecordingProxy RecordingTransport SynthOptions
        ValueSpec
        check_output export_aiperf_input exposure_warning import_aiperf_input import_aiperf_raw
        import_har is_exposed listen_url load_prompts parse_schedule synthesize
    """,
    "replayer": """
        DEFAULT_GRACE_S DryRun Filter InterleavedResult LagHealth PartPlan Partition Plan
        Prepared RepeatResult ReplayConfig ReplayError ReplayResult SeedPolicy Selection Shaper
        Slot StartAt Stats Target Targets Timing clock_facts dry_run group_id parse_arrival
        parse_filter parse_header parse_query parse_seed parse_set parse_shard parse_start_at
        parse_window part_of replay replay_async replay_interleaved replay_interleaved_async
        replay_repeated run_reset send_order
    """,
    "analyzer": """
        AnalysisError ImageReport ImageThresholds Join Rows Settings Table compare_files
        compare_run_images join_rows load_rows parse_rules report_tables write_html_report
    """,
    "imgtrace": """
        ServerConfig __version__ main serve
    """,
}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_package_exports_exactly_its_curated_names(name: str) -> None:
    module = importlib.import_module(name)
    pinned = PUBLIC[name].split()
    assert sorted(module.__all__) == pinned
    for attribute in pinned:
        assert getattr(module, attribute) is not None, f"{name}.{attribute}"


@pytest.mark.parametrize("name", ["traces", "recorder", "replayer", "analyzer"])
def test_no_library_carries_command_line_code(name: str) -> None:
    # argparse, exit codes and "pass --force" advice belong to imgtrace._commands.
    code = f"import sys, {name}; print('argparse' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
    import traces

    assert not hasattr(traces.TraceError, "exit_code")


def test_an_existing_output_is_a_typed_error_without_command_line_advice(tmp_path: Any) -> None:
    from traces import Header, TraceWriter

    existing = tmp_path / "t.imgtrace"
    existing.write_bytes(b"keep")
    with pytest.raises(OutputExists) as caught:
        TraceWriter(existing, Header(kind="trace", source="test"))
    assert caught.value.path == str(existing)
    assert str(caught.value) == f"{existing} already exists"
    assert "--force" not in str(caught.value)
    assert existing.read_bytes() == b"keep"


def _replayer_options() -> list[tuple[Any, dict[str, Any], str]]:
    from replayer import Selection, Timing

    return [
        (Timing, {"speed": 0}, "--speed 0: expected a positive number"),
        (Timing, {"speed": float("inf")}, "--speed inf: expected a positive number"),
        (Timing, {"mode": "rate", "rate": 0}, "--rate 0: expected a positive number"),
        (Timing, {"mode": "rate", "rate": 1, "arrival": "uniform"}, "--arrival 'uniform'"),
        (Timing, {"mode": "rate", "rate": 1, "shape": 0}, "gamma shape B 0"),
        (Timing, {"mode": "closed"}, "--concurrency 0: expected a positive integer"),
        (
            Timing,
            {"mode": "closed", "concurrency": 2, "max_inflight": 3},
            "--max-inflight caps open-loop modes",
        ),
        (Timing, {"max_inflight": 0}, "--max-inflight 0: expected a positive integer"),
        (Timing, {"mode": "fast"}, "timing mode 'fast'"),
        (Selection, {"limit": 0}, "--limit 0: expected a positive integer"),
        (Selection, {"loop": 0}, "--loop 0: expected a positive integer"),
        (Selection, {"warmup": -1}, "--warmup and --drain cannot be negative"),
    ]


@pytest.mark.parametrize("index", range(12))
def test_replayer_option_types_refuse_bad_values(index: int) -> None:
    kind, options, message = _replayer_options()[index]
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(")):
        kind(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "--timeout 0: expected a positive number"),
        ({"drain": -1}, "--warmup and --drain cannot be negative"),
        ({"seed": "sometimes"}, "--request-seed"),
    ],
)
def test_replay_config_refuses_bad_values(options: dict[str, Any], message: str) -> None:
    from replayer import ReplayConfig

    with pytest.raises(UsageError, match=message):
        ReplayConfig(trace="t.imgtrace", target="http://127.0.0.1", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"alpha": 0.0}, "--alpha must be between 0 and 0.5"),
        ({"alpha": 0.5}, "--alpha must be between 0 and 0.5"),
        ({"resamples": 99}, "--resamples must be at least 100"),
        ({"min_effect": 1.0}, "min_effect 1: give a fraction from 0 to 1"),
        ({"confidence": 1.0}, "confidence 1: give a level between 0 and 1"),
    ],
)
def test_analysis_settings_refuse_bad_values(options: dict[str, Any], message: str) -> None:
    from analyzer import Settings

    with pytest.raises(UsageError, match=message):
        Settings(**options)


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("arrival", {"schedule": ((0.0, 0.0),)}, "--rate must be positive"),
        ("arrival", {"schedule": ((0.0, -1.0),)}, "--rate must be positive"),
        ("arrival", {"kind": "gamma", "burstiness": 0.0}, "--burstiness must be positive"),
        ("record", {"paths": ("v1/images/edits",)}, "--paths takes URL paths starting with '/'"),
    ],
)
def test_recorder_option_types_refuse_bad_values(
    kind: str, options: dict[str, Any], message: str
) -> None:
    from recorder import ArrivalProcess, RecordOptions

    with pytest.raises(UsageError, match=message):
        (ArrivalProcess if kind == "arrival" else RecordOptions)(**options)


def test_aiperf_input_import_refuses_a_rate_of_zero(tmp_path: Any) -> None:
    from recorder import import_aiperf_input

    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "a cat"}\n')
    with pytest.raises(UsageError, match="--rate must be positive"):
        import_aiperf_input(source, tmp_path / "out.imgtrace", rate=0.0)
    assert not (tmp_path / "out.imgtrace").exists()
