"""How an exchange of the HTTP/1.1 client (`Http1Pool`) failed.

The classes carry the names of httpx's own exception classes (`ConnectError`, `ReadTimeout`,
`RemoteProtocolError` and so on), so `error_kind` classifies a failure of this client exactly
as it classifies one of httpx: the same words in every trace, whichever client saw it.
"""

from __future__ import annotations

from ._errors import TraceError

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "Http1Error",
    "Http1Timeout",
    "PoolTimeout",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "WriteTimeout",
]


class Http1Error(TraceError):
    """An exchange that did not complete: no connection, a broken response, or no answer."""


class Http1Timeout(Http1Error):
    """A phase of the exchange took longer than the client's timeout."""


class ConnectError(Http1Error):
    """No connection could be made."""


class ConnectTimeout(Http1Timeout):
    """No connection within the timeout (counted as `connect`: nothing reached the server)."""


class PoolTimeout(Http1Timeout):
    """No connection of the pool came free within the timeout."""


class ReadError(Http1Error):
    """The connection failed while the response was read."""


class ReadTimeout(Http1Timeout):
    """The response, or its next bytes, did not come within the timeout."""


class WriteTimeout(Http1Timeout):
    """The server did not take the request within the timeout."""


class RemoteProtocolError(Http1Error):
    """The server broke HTTP/1.1: a malformed head or body, or a close in the middle of one."""
