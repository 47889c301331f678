"""Analyze runs: latency statistics, paired comparisons, image diffs and reports."""

__all__: list[str] = []
