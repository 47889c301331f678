"""The HTTP/1.1 client's response parser (`_http1_pool`): httptools (llhttp, in C).

It calls back into the connection as it parses: `on_message_begin`, `on_header(name, value)`,
`on_headers_complete`, `on_body(data)`, `on_message_complete`.
"""

from __future__ import annotations

from typing import Any, Protocol

import httptools

__all__ = ["PARSE_ERRORS", "ResponseParser", "new_parser"]


class ResponseParser(Protocol):
    def feed_data(self, data: bytes) -> None: ...

    def get_status_code(self) -> int: ...

    def should_keep_alive(self) -> bool: ...


PARSE_ERRORS: tuple[type[Exception], ...] = (httptools.HttpParserError, httptools.HttpParserUpgrade)


def new_parser(callbacks: Any, method: str) -> ResponseParser:
    """A parser for the response to one `method` request, calling back into `callbacks`.

    llhttp frames a response by its head alone; the connection knows a HEAD request's
    response has no body, whatever its Content-Length says.
    """
    parser: ResponseParser = httptools.HttpResponseParser(callbacks)
    return parser
