"""Fixtures of the recorder tests (defined in recorder_helpers.py, shared with the test modules)."""

from recorder_helpers import start_proxy, upstream

__all__ = ["start_proxy", "upstream"]
