"""Redaction of secrets before anything reaches a file."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ._schema import Headers, Outcome, Request

__all__ = ["DEFAULT_REDACTED_HEADERS", "REDACTED", "Redaction"]

DEFAULT_REDACTED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "api-key",
        "x-api-key",
        "openai-organization",
        "openai-project",
        "x-amz-security-token",
    }
)
REDACTED = "[redacted]"


class Redaction:
    """Which header values are replaced by `[redacted]`.

    The header name is kept, so a reader still sees that a request was authenticated; the value
    never reaches the file. `redact` adds names, `keep` removes names from the default list.
    """

    def __init__(self, redact: Iterable[str] = (), keep: Iterable[str] = ()) -> None:
        kept = {name.lower() for name in keep}
        self.names = frozenset(
            (DEFAULT_REDACTED_HEADERS | {name.lower() for name in redact}) - kept
        )

    def headers(self, headers: Headers) -> Headers:
        if not any(name.lower() in self.names for name, _ in headers):
            return headers
        return tuple(
            (name, REDACTED if name.lower() in self.names else value) for name, value in headers
        )

    def apply_to_request(self, request: Request) -> Request:
        headers = self.headers(request.headers)
        response = request.response
        if response is not None:
            response_headers = self.headers(response.headers)
            if response_headers is not response.headers:
                response = msgspec.structs.replace(response, headers=response_headers)
        if headers is request.headers and response is request.response:
            return request
        return msgspec.structs.replace(request, headers=headers, response=response)

    def apply_to_outcome(self, outcome: Outcome) -> Outcome:
        headers = self.headers(outcome.headers)
        if headers is outcome.headers:
            return outcome
        return msgspec.structs.replace(outcome, headers=headers)
