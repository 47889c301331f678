"""Capture traces: the recording proxy, the recording httpx transport, importers, synthesis."""

__all__: list[str] = []
