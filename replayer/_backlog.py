"""A hand-off queue with a memory bound that never makes the sender wait.

When the side that stores responses falls behind, the queue does not grow past `budget` bytes
of bodies and does not block the side that sends: a body that would cross the budget is left
out (the exchange's timings, status and headers still go through) and counted. The run file
then says how many responses were not stored.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

from ._sender import Exchange

__all__ = ["BODY_BUDGET", "Backlog"]

BODY_BUDGET = 128 * 1024 * 1024
"""Bytes of response bodies waiting to be stored, at most, before bodies are left out."""

T = TypeVar("T")


class Backlog(Generic[T]):
    """Exchanges (with a tag: the target, the worker) waiting for the storing side."""

    def __init__(self, budget: int = BODY_BUDGET) -> None:
        self.budget = budget
        self.dropped = 0
        self._items: deque[tuple[T, Exchange]] = deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, tag: T, exchange: Exchange) -> None:
        size = len(exchange.body)
        with self._lock:
            if size and self._bytes + size > self.budget:
                exchange.body = b""
                exchange.body_dropped = True
                self.dropped += 1
                size = 0
            self._bytes += size
            self._items.append((tag, exchange))

    def take(self) -> tuple[T, Exchange] | None:
        with self._lock:
            if not self._items:
                return None
            tag, exchange = self._items.popleft()
            self._bytes -= len(exchange.body)
            return tag, exchange

    def __len__(self) -> int:
        return len(self._items)
