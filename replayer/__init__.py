"""Replay a trace against a server with original or scaled timing, and measure it."""

__all__: list[str] = []
