"""Who measured a run, and whether it ran to its end: notes for `report` and `compare`.

Latency is measured by a client: from when it handed the first byte to its socket to when it
read the last one. Two clients (AIPerf and imgtrace replay, a proxy recording and a replay, two
versions of the replayer) put different overheads into that span, so a difference between runs
they measured holds the clients' difference too, even against one unchanged server. A run that
was interrupted (Ctrl-C, SIGTERM) covers only part of its schedule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from traces import Header

if TYPE_CHECKING:
    from ._load import Rows

__all__ = ["client_of", "interrupted", "interrupted_note", "mixed_clients_note"]

_RECORDINGS = {
    "proxy": "a recording through imgtrace record (the recorded clients, timed at the proxy)",
    "transport": "a recording in the client (imgtrace's recording transport)",
    "synthetic": "nothing (a synthetic trace)",
}


def client_of(header: Header) -> str:
    """What measured a file's latencies, in words that tell two clients apart."""
    source = header.source
    if source == "replay":
        return f"imgtrace replay {header.tool_version}".strip()
    if source in _RECORDINGS:
        return _RECORDINGS[source]
    if source.startswith("import:"):
        tool = source.removeprefix("import:").split("-")[0]
        names = {"aiperf": "AIPerf", "har": "a browser or HTTP client (HAR)"}
        return f"{names.get(tool, tool)} (imported with imgtrace import)"
    return source


def interrupted(metadata: dict[str, Any]) -> bool:
    return bool(metadata.get("interrupted"))


def interrupted_note(rows: Rows) -> str | None:
    if not rows.interrupted:
        return None
    return (
        f"WARNING: {rows.path} was interrupted: it covers only part of its schedule (the "
        "requests it did not send are missing, and those in flight were cut off as aborted)"
    )


def mixed_clients_note(base: Rows, other: Rows, role: str = "CAND") -> str | None:
    """A warning when `other` and `base` were measured by different clients; else None."""
    if base.client == other.client:
        return None
    return (
        f"WARNING: mixed clients: BASE {base.path} was measured by {base.client}, {role} "
        f"{other.path} by {other.client}: their latency difference holds the clients' own "
        "difference too (even against one unchanged server), so it is no verdict on the server; "
        "errors and images still compare. Latency rules of --fail-on skip this pair unless "
        "--allow-mixed-clients; measure both with the same client (imgtrace replay)"
    )
