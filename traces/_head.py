"""The request-head limit that the recording proxy and the reference server share.

Their HTTP server (uvicorn, with the protocol of `imgtrace._headlimit`) refuses a request line
plus headers longer than the limit before the application sees them whole, and calls the
application once with `HEAD_TOO_LARGE` in the scope's extensions, so it answers 431 in its own
words (and the proxy records the refusal).
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_HEADER_SIZE", "HEAD_TOO_LARGE"]

# 64 KiB: above what common servers accept by default (nginx 4 x 8 KiB buffers, Node.js and h11
# 16 KiB, Apache 8 KiB per line), so a head they take passes the proxy unchanged, while one
# request cannot make a connection hold megabytes. (Go's net/http allows 1 MiB.)
DEFAULT_MAX_HEADER_SIZE = 64 << 10
HEAD_TOO_LARGE = "imgtrace.head_too_large"
"""The scope extension of a refused head: ``{"limit": bytes, "size": bytes counted so far}``."""
