"""Redaction of secrets before anything reaches a file: one policy for traces and run files.

Every request and outcome a `TraceWriter` writes goes through a `Redaction`, so the recorder,
the importers and the replayer keep out the same things:

- credential headers: a list of the names the servers and gateways imgtrace meets use, and any
  name that says key, token, secret, auth, password or credential (`--keep-header` exempts one);
- internal addresses in response headers (a gateway's upstream URL, a private or loopback host);
- credential query parameters, in request queries and in response `data[].url` values;
- SGLang's `data[].file_path`, an absolute path on the server.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import msgspec

from ._schema import Headers, Outcome, Request

__all__ = [
    "DEFAULT_REDACTED_HEADERS",
    "PLACEHOLDERS",
    "REDACTED",
    "SECRET_QUERY_PARAMS",
    "Redaction",
    "internal_address",
    "redact_envelope",
    "redact_query",
    "secret_header_name",
]

# Credential headers by name, from the APIs and gateways imgtrace records (docs/recording.md).
DEFAULT_REDACTED_HEADERS = frozenset(
    {
        "authorization",  # OpenAI, vLLM, SGLang --api-key, LiteLLM, most gateways
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "api-key",  # Azure OpenAI
        "x-api-key",  # Anthropic-style APIs, many gateways
        "x-litellm-api-key",  # LiteLLM proxy
        "x-goog-api-key",  # Google AI
        "ocp-apim-subscription-key",  # Azure API Management
        "x-portkey-api-key",  # Portkey gateway
        "helicone-auth",  # Helicone gateway
        "cf-aig-authorization",  # Cloudflare AI Gateway
        "x-auth-token",
        "x-access-token",
        "openai-organization",
        "openai-project",
        "x-amz-security-token",
    }
)
REDACTED = "[redacted]"
# Values other tools write in place of a secret (AIPerf's exports): never a value to send.
PLACEHOLDERS = frozenset({REDACTED, "<redacted>"})

# A name segment that says it carries a secret: `x-tenant-token`, `x-foo-apikey`, `oauth`,
# `x-client-secret`. Whole segments only, so `x-ratelimit-remaining-tokens` (a count) stays.
_SECRET_NAME = re.compile(
    r"(?:^|[-_.])(?:[a-z0-9]*(?:key|token|secret)|auth[a-z]*|[a-z]*auth|passw(?:or)?d"
    r"|credentials?)(?=$|[-_.])"
)
# Named like secrets but public by nature: an authentication challenge.
_PUBLIC_HEADERS = frozenset({"www-authenticate", "proxy-authenticate"})
# A response header that names where a gateway forwards to (LiteLLM's
# `x-litellm-model-api-base`): its value is redacted when it is an address of any kind.
_MAX_CACHED_NAMES = 4096
_UPSTREAM_NAME = re.compile(r"api[-_]?base|upstream|base[-_]?url|backend[-_]?url|origin[-_]?url")

# Query parameters that carry credentials (signed URLs, key-in-URL gateways).
SECRET_QUERY_PARAMS = frozenset(
    {
        "api_key",
        "api-key",
        "apikey",
        "key",
        "token",
        "access_token",
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-security-token",
        "x-amz-credential",
        "x-goog-signature",
        "x-goog-credential",
    }
)

_URL_AUTHORITY = re.compile(r"[a-z][a-z0-9+.-]*://([^/\s?#,;\"'<>]+)", re.IGNORECASE)
_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
_BRACKETED_IPV6 = re.compile(r"\[([0-9a-f:.]+)\]", re.IGNORECASE)
_HOST_PORT = re.compile(r"^\[?([a-z0-9.:-]+?)\]?(?::\d{1,5})?(?:/\S*)?$", re.IGNORECASE)
_INTERNAL_SUFFIXES = (
    ".local",
    ".localdomain",
    ".internal",
    ".intranet",
    ".lan",
    ".home.arpa",
    ".svc",
    ".cluster.local",
    ".localhost",
)


def secret_header_name(name: str) -> bool:
    """Whether a header's name says it carries a credential (the default list or the pattern)."""
    lowered = name.lower()
    if lowered in DEFAULT_REDACTED_HEADERS:
        return True
    return lowered not in _PUBLIC_HEADERS and _SECRET_NAME.search(lowered) is not None


def _internal_host(host: str, *, in_url: bool) -> bool:
    host = host.strip("[]").rstrip(".").lower()
    if "@" in host:
        host = host.rpartition("@")[2]
    if host.count(":") == 1:
        host = host.partition(":")[0]  # host:port (an IPv6 literal has several colons)
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        pass
    if not host:
        return False
    if host == "localhost" or host.endswith(_INTERNAL_SUFFIXES):
        return True
    # `http://sglang:30000`: a single-label name resolves only inside a private network.
    return in_url and "." not in host and any(c.isalpha() for c in host)


def internal_address(value: str) -> bool:
    """Whether a header value holds a private, loopback or link-local address or internal name.

    Looks at the hosts of URLs in the value, IP literals anywhere in it, and the whole value
    read as `host[:port]`; a public host such as `api.openai.com` is not internal.
    """
    for match in _URL_AUTHORITY.finditer(value):
        if _internal_host(match.group(1), in_url=True):
            return True
    for match in _IPV4.finditer(value):
        if _internal_host(match.group(0), in_url=False):
            return True
    for match in _BRACKETED_IPV6.finditer(value):
        if _internal_host(match.group(1), in_url=False):
            return True
    whole = _HOST_PORT.match(value.strip())
    return whole is not None and _internal_host(whole.group(1), in_url=False)


def _is_address(value: str) -> bool:
    """A URL or a `host[:port]` (a name with a dot, or an IP literal), not a number or a word."""
    stripped = value.strip()
    if _URL_AUTHORITY.search(stripped):
        return True
    whole = _HOST_PORT.match(stripped)
    if whole is None:
        return False
    host = whole.group(1)
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return "." in host and any(c.isalpha() for c in host) or host.lower() == "localhost"


def redact_query(query: str) -> str:
    """`query` with the values of credential parameters (`sig`, `X-Amz-Signature`, ...) redacted."""
    if not query or not any(name in query.lower() for name in SECRET_QUERY_PARAMS):
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(name.lower() in SECRET_QUERY_PARAMS for name, _ in pairs):
        return query
    return urlencode(
        [(n, REDACTED if n.lower() in SECRET_QUERY_PARAMS else v) for n, v in pairs], safe="[]"
    )


def _redact_images_response(value: Any) -> Any:
    """One images response: no `data[].file_path`, no signing query in `data[].url`."""
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        return value
    changed = False
    items: list[Any] = []
    for item in value["data"]:
        if isinstance(item, dict):
            scrubbed = {k: v for k, v in item.items() if k != "file_path"}
            url = scrubbed.get("url")
            if isinstance(url, str) and "?" in url and not url.startswith("data:"):
                base, _, query = url.partition("?")
                scrubbed["url"] = base + "?" + redact_query(query)
            if scrubbed != item:
                changed = True
                item = scrubbed
        items.append(item)
    return {**value, "data": items} if changed else value


def redact_envelope(envelope: Any) -> Any:
    """A response envelope without the secrets responses carry; the same object if none.

    Handles a JSON images response and a recorded event stream (`[{"event", "data"}]`).
    """
    if isinstance(envelope, list):
        changed = False
        events: list[Any] = []
        for event in envelope:
            if isinstance(event, dict) and "data" in event:
                data = _redact_images_response(event["data"])
                if data is not event["data"]:
                    event = {**event, "data": data}
                    changed = True
            events.append(event)
        return events if changed else envelope
    return _redact_images_response(envelope)


class Redaction:
    """What never reaches a file: header values become `[redacted]`, response secrets go.

    A redacted header keeps its name, so a reader still sees that a request was authenticated.
    `redact` adds names; `keep` exempts names from both the list and the name pattern, and from
    the internal-address rule of response headers.
    """

    def __init__(self, redact: Iterable[str] = (), keep: Iterable[str] = ()) -> None:
        self.kept = frozenset(name.lower() for name in keep)
        self.names = frozenset(
            (DEFAULT_REDACTED_HEADERS | {name.lower() for name in redact}) - self.kept
        )
        self._decisions: dict[str, bool] = {}

    def redacts(self, name: str) -> bool:
        """Whether the value of header `name` is redacted wherever it appears."""
        decision = self._decisions.get(name)
        if decision is None:
            lowered = name.lower()
            decision = lowered in self.names or (
                lowered not in self.kept and secret_header_name(lowered)
            )
            if len(self._decisions) < _MAX_CACHED_NAMES:  # a hostile client sends many names
                self._decisions[name] = decision
        return decision

    def headers(self, headers: Headers) -> Headers:
        """Request headers with credential values redacted (the same tuple if none)."""
        if not any(self.redacts(name) for name, _ in headers):
            return headers
        return tuple((name, REDACTED if self.redacts(name) else value) for name, value in headers)

    def response_headers(self, headers: Headers) -> Headers:
        """Response headers: credentials, and values that reveal internal addresses."""
        hidden = [self._hides_response_header(name, value) for name, value in headers]
        if not any(hidden):
            return headers
        return tuple(
            (name, REDACTED if hide else value)
            for (name, value), hide in zip(headers, hidden, strict=True)
        )

    def _hides_response_header(self, name: str, value: str) -> bool:
        if value == REDACTED:
            return False
        if self.redacts(name):
            return True
        if name.lower() in self.kept:
            return False
        if _UPSTREAM_NAME.search(name.lower()) and _is_address(value):
            return True
        return internal_address(value)

    def apply_to_request(self, request: Request) -> Request:
        headers = self.headers(request.headers)
        query = redact_query(request.query)
        response = request.response
        if response is not None:
            response_headers = self.response_headers(response.headers)
            envelope = redact_envelope(response.envelope)
            if response_headers is not response.headers or envelope is not response.envelope:
                response = msgspec.structs.replace(
                    response, headers=response_headers, envelope=envelope
                )
        if headers is request.headers and query == request.query and response is request.response:
            return request
        return msgspec.structs.replace(request, headers=headers, query=query, response=response)

    def apply_to_outcome(self, outcome: Outcome) -> Outcome:
        headers = self.response_headers(outcome.headers)
        envelope = redact_envelope(outcome.envelope)
        if headers is outcome.headers and envelope is outcome.envelope:
            return outcome
        return msgspec.structs.replace(outcome, headers=headers, envelope=envelope)
