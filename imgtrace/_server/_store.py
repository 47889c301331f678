"""Images kept for `response_format=url`: served by GET /v1/images/{id}/content, LRU by bytes."""

from __future__ import annotations

import uuid
from collections import OrderedDict

__all__ = ["ImageStore"]


class ImageStore:
    """The outputs of recent `url` responses, evicting the oldest beyond `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[str, tuple[list[bytes], str]] = OrderedDict()
        self._bytes = 0

    def put(self, images: list[bytes], media_type: str) -> str:
        """Keep `images` (all of one request) under a new id; returns the id."""
        key = uuid.uuid4().hex
        size = sum(len(i) for i in images)
        self._items[key] = (images, media_type)
        self._bytes += size
        while self._bytes > self.limit and len(self._items) > 1:
            _, (dropped, _) = self._items.popitem(last=False)
            self._bytes -= sum(len(i) for i in dropped)
        return key

    def get(self, key: str, variant: int) -> tuple[bytes, str] | None:
        """Image `variant` of response `key`, or None if unknown or evicted."""
        item = self._items.get(key)
        if item is None or not 0 <= variant < len(item[0]):
            return None
        return item[0][variant], item[1]
