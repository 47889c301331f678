"""Request shaping: what a recorded request becomes on the wire of the target.

Shaping happens off the event loop (in the body producer), so it may do real work: re-encoding
a multipart body with overridden fields costs one copy of the body.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import httpx
import msgspec

from traces import (
    PLACEHOLDERS,
    BlobSource,
    Body,
    FilePart,
    JsonBody,
    MultipartBody,
    RawBody,
    Request,
    TextField,
    UsageError,
    __version__,
    encode_body,
)

__all__ = [
    "Prepared",
    "SeedPolicy",
    "Shaper",
    "parse_header",
    "parse_query",
    "parse_seed",
    "parse_set",
    "parse_url",
    "public_target",
]

_ENV_RE = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# RFC 9110 token characters: what a header name may be made of.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_FIELD_RE = re.compile(r"[^\s\"=]+\Z")

# Headers that describe the recorded connection or body framing, not the request: httpx
# computes them again for the body actually sent.
_DROPPED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "expect",
        "te",
        "trailer",
        "upgrade",
    }
)


def _expand(value: str, environ: Mapping[str, str], flag: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if not _ENV_NAME_RE.match(name):
            raise UsageError(f"{flag}: '${{{name}}}' is not a valid environment variable name")
        if name not in environ:
            raise UsageError(
                f"{flag}: environment variable {name} is not set; export it before replaying"
            )
        return environ[name]

    return _ENV_RE.sub(replace, value)


def parse_header(text: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """`'Name: value'` with `${VAR}` expanded from `environ`; the value is never logged."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not _TOKEN_RE.match(name):
        raise UsageError(
            f"--header {name or text!r}: expected 'Name: value', e.g. "
            "'Authorization: Bearer ${TOKEN}'"
        )
    flag = f"--header {name}"
    value = _expand(value.strip(), environ, flag)
    if any(ch in value for ch in "\r\n\0"):
        raise UsageError(f"{flag}: the value contains a line break or NUL, which HTTP forbids")
    return name, value


def parse_query(text: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """`'name=value'` with `${VAR}` expanded from `environ`; the value is never logged."""
    name, sep, value = text.partition("=")
    if not sep or not name or any(ch in name for ch in "&#? \t\r\n"):
        raise UsageError(
            f"--query {name or text!r}: expected 'name=value', e.g. 'api_key=${{API_KEY}}'"
        )
    flag = f"--query {name}"
    value = _expand(value, environ, flag)
    if any(ch in value for ch in "\r\n\0"):
        raise UsageError(f"{flag}: the value contains a line break or NUL")
    return name, value


def _query_pairs(query: str) -> list[tuple[str, str, str]]:
    """(raw segment, name, value) of each `&`-separated part of a query string."""
    pairs = []
    for segment in query.split("&"):
        if segment:
            name, _, value = segment.partition("=")
            pairs.append((segment, unquote_plus(name), unquote_plus(value)))
    return pairs


def parse_set(text: str) -> tuple[str, str]:
    """`FIELD=VALUE`: the form field to override and its new text."""
    name, sep, value = text.partition("=")
    if not sep or not _FIELD_RE.match(name):
        raise UsageError(
            f"--set {text!r}: expected FIELD=VALUE with a non-empty field name, e.g. "
            "num_inference_steps=8"
        )
    return name, value


@dataclass(frozen=True)
class SeedPolicy:
    """`keep` sends recorded seeds, `fixed:N` one seed everywhere, `random:S` a seeded draw."""

    mode: str = "keep"
    value: int = 0

    def seed_for(self, request_id: str, loop: int) -> int | None:
        if self.mode == "keep":
            return None
        if self.mode == "fixed":
            return self.value
        # Derived from the request, not drawn in send order, so that a seed depends only on
        # (S, request, pass) and a filtered or windowed replay reproduces the same seeds.
        digest = hashlib.sha256(f"{self.value}:{request_id}:{loop}".encode()).digest()
        # Never 0: some servers (vLLM-Omni) treat seed 0 as "pick a random one".
        return int.from_bytes(digest[:8], "big") % (2**31 - 1) + 1

    def describe(self) -> str:
        return "keep" if self.mode == "keep" else f"{self.mode}:{self.value}"


def parse_seed(text: str) -> SeedPolicy:
    mode, _, number = text.partition(":")
    if mode == "keep" and not number:
        return SeedPolicy()
    if mode in ("fixed", "random"):
        try:
            return SeedPolicy(mode, int(number))
        except ValueError:
            pass
    raise UsageError(f"--request-seed {text!r}: expected keep, fixed:N or random:S (N, S integers)")


def parse_url(text: str, flag: str = "--target") -> httpx.URL:
    """A target's base URL: http or https, with a host."""
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UsageError(f"{flag} {text!r}: not a valid URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise UsageError(
            f"{flag} {text!r}: expected an http:// or https:// URL with a host, "
            "e.g. http://127.0.0.1:30000"
        )
    return url


def public_target(url: httpx.URL) -> str:
    """The target as written to run files: without user, password or query."""
    return str(url.copy_with(username=None, password=None, query=None, fragment=None))


def _json_value(text: str) -> Any:
    """`8` → 8, `true` → True, `"x"` → "x", anything else stays the text it was."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class Prepared:
    """A request ready to send: everything the event loop needs, already encoded.

    The target sees the recorded headers (plus a User-Agent when the recording had none), with
    only `Host` and `Content-Length` added on the wire. `target` is the request line's path and
    query, worked out here, off the event loop, when not given.
    """

    method: str
    url: str
    headers: list[tuple[str, str]]
    content: bytes
    target: str = ""

    def __post_init__(self) -> None:
        if not self.target:
            object.__setattr__(self, "target", httpx.URL(self.url).raw_path.decode("ascii"))


URL_CACHE = 4096


@dataclass
class Shaper:
    """Turns recorded requests into `Prepared` ones for a target.

    :param target: base URL; its path is a prefix, e.g. `http://gw:8080/sglang` sends
        `/v1/images/edits` to `/sglang/v1/images/edits`.
    :param headers: `(name, value)` pairs that replace recorded headers of the same name.
    :param sets: form-field overrides, applied in order (later wins).
    :param queries: `(name, value)` query parameters that replace recorded ones of the same name
        (or are added); a recorded parameter whose value is a redaction placeholder is left out.
    """

    target: str
    headers: Sequence[tuple[str, str]] = ()
    queries: Sequence[tuple[str, str]] = ()
    sets: Sequence[tuple[str, str]] = ()
    seed: SeedPolicy = field(default_factory=SeedPolicy)
    model: str | None = None

    def __post_init__(self) -> None:
        self.url = parse_url(self.target)
        self._prefix = self.url.path.rstrip("/")
        self._override_names = {name.lower() for name, _ in self.headers}
        self._addresses: dict[tuple[str, str], tuple[str, str]] = {}

    @property
    def changes_fields(self) -> bool:
        return bool(self.sets) or self.seed.mode != "keep" or self.model is not None

    def overrides(self, request: Request, loop: int) -> dict[str, str]:
        """Field name → new value for this request (empty when nothing is overridden)."""
        out: dict[str, str] = {}
        if self.model is not None:
            out["model"] = self.model
        seed = self.seed.seed_for(request.id, loop)
        if seed is not None:
            out["seed"] = str(seed)
        out.update(self.sets)
        return out

    def body(self, request: Request, loop: int) -> Body | None:
        """The request's body with overrides applied (raw bodies are left as they are)."""
        body = request.body
        values = self.overrides(request, loop) if self.changes_fields else {}
        if not values or body is None or isinstance(body, RawBody):
            return body
        if isinstance(body, JsonBody):
            if not isinstance(body.value, dict):
                return body
            return JsonBody(value={**body.value, **{k: _json_value(v) for k, v in values.items()}})
        return _override_parts(body, values)

    def address(self, request: Request) -> tuple[str, str]:
        """The URL `request` goes to on this target, and its request-line target (path and
        query)."""
        # A trace's requests share a few paths and queries, and building and parsing a URL is
        # about a tenth of the CPU of preparing a request: each is worked out once (up to
        # URL_CACHE of them).
        key = (request.path, request.query)
        address = self._addresses.get(key)
        if address is None:
            path = request.path if request.path.startswith("/") else "/" + request.path
            query = self.query_for(request.query)
            url = self.url.copy_with(path=self._prefix + path, query=query.encode() or None)
            address = (str(url), url.raw_path.decode("ascii"))
            if len(self._addresses) < URL_CACHE:
                self._addresses[key] = address
        return address

    def retarget(self, prepared: Prepared, request: Request) -> Prepared:
        """`prepared` (shaped by a Shaper with the same options) sent to this target instead.

        The body is shared, not copied: an interleaved replay encodes each body once.
        """
        url, target = self.address(request)
        return Prepared(prepared.method, url, prepared.headers, prepared.content, target)

    def query_for(self, query: str) -> str:
        """The recorded query with `queries` applied and placeholders left out.

        Parameters that stay are sent as they were written; a supplied one takes the place of
        the first recorded parameter of its name.
        """
        if not self.queries and "redacted" not in query.lower():
            return query
        supplied = dict(self.queries)
        placed: set[str] = set()
        segments: list[str] = []
        for segment, name, value in _query_pairs(query):
            if name in supplied:
                if name not in placed:
                    segments.append(f"{quote_plus(name)}={quote_plus(supplied[name])}")
                    placed.add(name)
            elif value not in PLACEHOLDERS:
                segments.append(segment)
        segments.extend(
            f"{quote_plus(name)}={quote_plus(value)}"
            for name, value in supplied.items()
            if name not in placed
        )
        return "&".join(segments)

    def unsupplied_secrets(self, request: Request) -> list[str]:
        """What of `request` was redacted when recorded and is not supplied here.

        Labels such as `header Authorization` or `query api_key`: those are left out on the
        wire, so the command line can say how to supply them before anything is sent.
        """
        labels = [
            f"header {name}"
            for name, value in request.headers
            if value in PLACEHOLDERS and name.lower() not in self._override_names
        ]
        if "redacted" in request.query.lower():
            supplied = {name for name, _ in self.queries}
            labels.extend(
                f"query {name}"
                for _, name, value in _query_pairs(request.query)
                if value in PLACEHOLDERS and name not in supplied
            )
        return labels

    def prepare(self, request: Request, loop: int, get_blob: BlobSource) -> Prepared:
        content_type, content = encode_body(self.body(request, loop), get_blob)
        headers = [
            (name, value)
            for name, value in request.headers
            if name.lower() not in _DROPPED_HEADERS
            and name.lower() not in self._override_names
            and value not in PLACEHOLDERS  # a redacted secret is never sent as "[redacted]"
        ]
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        headers.extend(self.headers)
        if not any(name.lower() == "user-agent" for name, _ in headers):
            headers.append(("User-Agent", f"imgtrace/{__version__}"))
        url, target = self.address(request)
        return Prepared(request.method, url, headers, content, target)


def _override_parts(body: MultipartBody, values: dict[str, str]) -> MultipartBody:
    parts: list[TextField | FilePart] = []
    done: set[str] = set()
    for part in body.parts:
        if isinstance(part, TextField) and part.name in values:
            # A repeated field keeps one occurrence, with the new value.
            if part.name not in done:
                parts.append(TextField(name=part.name, value=values[part.name]))
                done.add(part.name)
            continue
        parts.append(part)
    parts.extend(
        TextField(name=name, value=value) for name, value in values.items() if name not in done
    )
    # The recorded framing stays: untouched parts keep their header blocks as they were sent.
    return msgspec.structs.replace(body, parts=tuple(parts))


def file_part_conflict(request: Request, names: Sequence[str]) -> str | None:
    """The first overridden name that is a file part of `request` (which --set cannot replace)."""
    if not isinstance(request.body, MultipartBody):
        return None
    files = {part.name for part in request.body.parts if isinstance(part, FilePart)}
    return next((name for name in names if name in files), None)


def redaction_hints(redacted: Mapping[str, int], requests: int) -> list[str]:
    """One line per redacted header or query parameter: it is left out, and how to supply it."""
    lines = []
    for label, count in sorted(redacted.items()):
        kind, _, name = label.partition(" ")
        where = f"{count} of {requests} requests" if count < requests else "every request"
        if kind == "header":
            example = (
                "Bearer ${TOKEN}"
                if name.lower() in ("authorization", "proxy-authorization")
                else "${TOKEN}"
            )
            lines.append(
                f"the trace's {name} header was redacted when it was recorded ({where}); it is "
                f"not sent: supply one with --header '{name}: {example}'"
            )
        else:
            lines.append(
                f"the trace's query parameter {name} was redacted when it was recorded ({where}); "
                f"it is left out: supply it with --query '{name}=${{VALUE}}'"
            )
    return lines
