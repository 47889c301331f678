"""What a file that is not a trace is, when it is one of the files users mistake for a trace.

AIPerf writes several files into its artifact directory, and only some can become a trace; a
reader that says "not a trace" leaves the user guessing which to import and how. The first
bytes are enough to tell them apart (AIPerf 0.13 writes each record's keys in a fixed order).
"""

from __future__ import annotations

__all__ = ["SNIFF_BYTES", "foreign_file_hint"]

SNIFF_BYTES = 1 << 16

_RAW_HINT = "import it with `imgtrace import aiperf-raw FILE -o TRACE`"
_RERUN_RAW = (
    "rerun AIPerf with --export-level raw and import profile_export_raw.jsonl with "
    "`imgtrace import aiperf-raw`"
)


def foreign_file_hint(head: bytes) -> str | None:
    """What the file starting with `head` is and what to do with it, or None if unknown."""
    text = head.lstrip()
    first = text.split(b"\n", 1)[0]
    if first.startswith(b'{"metadata"'):
        if b'"metrics"' in first:
            return (
                "it is AIPerf's per-request metrics export (profile_export.jsonl), which holds "
                f"no request payloads; {_RERUN_RAW}"
            )
        if b'"start_perf_ns"' in first or b'"request_headers"' in first:
            return f"it is an AIPerf raw export (profile_export_raw.jsonl): {_RAW_HINT}"
    if text.startswith(b"{") and b'"aiperf_version"' in text and b'"schema_version"' in text:
        return (
            "it is AIPerf's summary (profile_export_aiperf.json), which holds no requests; "
            f"{_RERUN_RAW}"
        )
    if text.startswith(b"{") and b'"session_id"' in text and b'"payloads"' in text:
        return f"it is AIPerf's inputs.json, which holds no send times; {_RERUN_RAW}"
    if first.startswith((b"Metric,", b'"Metric",')):
        return f"it is AIPerf's summary table (profile_export_aiperf.csv); {_RERUN_RAW}"
    if first.startswith(b"{") and (b'"text' in first or b'"image' in first):
        return (
            "it looks like an AIPerf single_turn input file: import it with "
            "`imgtrace import aiperf-input FILE -o TRACE`"
        )
    if text.startswith(b"{") and b'"log"' in text[:200] and b'"entries"' in text:
        return "it looks like a HAR capture: import it with `imgtrace import har FILE -o TRACE`"
    return None
