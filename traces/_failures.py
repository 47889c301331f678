"""What kind of failure left an exchange without a complete response: one vocabulary for all.

The recorder (proxy and transport), the replayer and the importers all write `ErrorInfo.kind`
with these words, so a recorded `connect` and a replayed `connect` mean the same thing:

- `connect`: no connection was made (refused, unreachable, DNS, or a connect timeout); not one
  byte of the request reached the server.
- `timeout`: connected, but the response was not complete in time.
- `write`, `read`: the connection failed while sending the request or reading the response.
- `protocol`: the peer broke HTTP (a malformed head or chunked body).
- `aborted`: the exchange was interrupted (a client that went away, a replay stopped early).
- `upstream`: any other failure of the server side, as a proxy sees it.
- `local`: any other failure on this side (a replayer that could not send).
- `invalid-response`: a 2xx whose body is not the JSON it promises (`traces.invalid_response`).

Classification goes by the class names of httpx's exception hierarchy, so this core package
needs no HTTP library: `ConnectTimeout` is both a connect error and a timeout, and counts
as `connect`, since the request never reached the server.
"""

from __future__ import annotations

import re
from typing import Final, Literal, get_args

__all__ = ["ERROR_KINDS", "ErrorKind", "error_kind", "error_kind_named"]

ErrorKind = Literal[
    "connect",
    "timeout",
    "read",
    "write",
    "protocol",
    "aborted",
    "upstream",
    "local",
    "invalid-response",
]
ERROR_KINDS: Final[tuple[ErrorKind, ...]] = get_args(ErrorKind)

# First match wins: ConnectTimeout is a TimeoutException too, and must stay `connect`.
_BY_CLASS_NAME: Final[tuple[tuple[frozenset[str], ErrorKind], ...]] = (
    (frozenset({"ConnectError", "ConnectTimeout"}), "connect"),
    (frozenset({"TimeoutException", "Http1Timeout"}), "timeout"),
    (frozenset({"WriteError"}), "write"),
    (frozenset({"ReadError"}), "read"),
    (frozenset({"RemoteProtocolError", "LocalProtocolError"}), "protocol"),
)

# "ServerDisconnectedError" happened after connecting: not a connect failure.
_CONNECT = re.compile(r"(?<!dis)connect")


def error_kind(exc: BaseException, default: ErrorKind = "local") -> ErrorKind:
    """The kind of failure an exception stands for; `default` when none of the rules applies."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    for members, kind in _BY_CLASS_NAME:
        if names & members:
            return kind
    return default


def error_kind_named(text: str, default: ErrorKind = "upstream") -> ErrorKind:
    """The kind for a failure known only by its description (an imported error type or message)."""
    lowered = text.lower()
    if _CONNECT.search(lowered):
        return "connect"
    if "timeout" in lowered or "timed out" in lowered:
        return "timeout"
    return default
