"""The one lag-health rule: when sends left late enough to matter for the measured latencies.

The replayer's summary, `report` and `compare` all judge a run by it, so one run never gets a
warning from one command and "sends left on time" from another. A lag matters relative to the
latencies it shapes: 30 ms of lag is noise on 4 s image edits and half of a 60 ms request.
"""

from __future__ import annotations

import math

__all__ = [
    "LAG_ABSOLUTE_NS",
    "LAG_FLOOR_NS",
    "LAG_SHARE_OF_MEDIAN",
    "lag_advice",
    "lag_matters",
    "lag_rule_text",
]

LAG_SHARE_OF_MEDIAN = 0.05
"""Lag p99 above 5% of the median latency (from the intended send) shapes what is measured."""
LAG_FLOOR_NS = 5e6
"""Below 5 ms the lag is the machine's scheduling noise, whatever the latencies."""
LAG_ABSOLUTE_NS = 100e6
"""Over 100 ms the schedule was not kept, even for latencies of many seconds."""


def lag_matters(lag_p99_ns: float, median_latency_ns: float) -> bool:
    """Whether a run's send lag p99 is large enough to matter for its latencies.

    With no successful request (`median_latency_ns` NaN) only the absolute limit applies.
    """
    if math.isnan(lag_p99_ns):
        return False
    relative = (
        not math.isnan(median_latency_ns)
        and lag_p99_ns > LAG_FLOOR_NS
        and lag_p99_ns > LAG_SHARE_OF_MEDIAN * median_latency_ns
    )
    return relative or lag_p99_ns > LAG_ABSOLUTE_NS


def lag_rule_text() -> str:
    """The rule in words, for warnings and docs."""
    return (
        f"p99 lag over {LAG_FLOOR_NS / 1e6:g} ms and {LAG_SHARE_OF_MEDIAN:.0%} of the median "
        f"latency, or over {LAG_ABSOLUTE_NS / 1e6:g} ms"
    )


def lag_advice() -> str:
    """What a user can do about a late replay."""
    return (
        "replay on a quieter machine, lower --speed or --rate, or split the load "
        "(--max-inflight caps in-flight requests, and its waits count as lag)"
    )
