"""multipart/form-data: parse a body into ordered parts, and encode parts back into a body.

Parsing streams through python-multipart, so a recorder can feed an upload chunk by chunk while
forwarding it. Field names and filenames follow the WHATWG form encoding: `"`, CR and LF are
percent-encoded on the way out and decoded on the way in, so parse(encode(parts)) == parts.

A part that carries its recorded header block (`head`) is written with that block as it was,
whenever the block still says the part's name, filename and type: a recorded body is then
encoded back byte for byte (`split_framing` finds the blocks of a parsed body).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable
from urllib.parse import unquote

import msgspec
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser

from ._errors import MultipartError

__all__ = [
    "FormPartData",
    "StreamingFormParser",
    "Framing",
    "boundary_of",
    "content_type_for",
    "encode_multipart",
    "new_boundary",
    "parse_multipart",
    "split_framing",
]

# python-multipart logs every parse error as a warning just before raising it. The error reaches
# the user as imgtrace's own message (a 400 naming it, a trace's `parse_error`); the log record
# would only repeat it on stderr, unprefixed. Its records stop here, before Python's last-resort
# handler, unless an application configures handlers of its own for the logger.
logging.getLogger("python_multipart").addHandler(logging.NullHandler())

_BOUNDARY_RE = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
# RFC 9110 token characters: a boundary made of anything else must be quoted.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


class FormPartData(msgspec.Struct, frozen=True):
    """One part of a form with its bytes: text fields have no filename."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None
    head: str | None = None
    """The header block as sent, from the CRLF after the delimiter to the blank line."""


class Framing(msgspec.Struct, frozen=True):
    """The bytes of a body around its parts' data: each part's header block, as UTF-8 text."""

    preamble: str
    heads: tuple[str, ...]
    epilogue: str


def content_type_for(boundary: str) -> str:
    """A multipart/form-data Content-Type for `boundary`, quoted when it is not a token."""
    if _TOKEN_RE.match(boundary):
        return f"multipart/form-data; boundary={boundary}"
    return f'multipart/form-data; boundary="{boundary}"'


def boundary_of(content_type: str | None) -> str | None:
    """The boundary parameter of a multipart Content-Type, or None if it is not multipart."""
    if not content_type or not content_type.lower().lstrip().startswith("multipart/form-data"):
        return None
    match = _BOUNDARY_RE.search(content_type)
    if match is None:
        return None
    return match.group(1) or match.group(2)


def new_boundary() -> str:
    return secrets.token_hex(16)


def _escape(value: str) -> str:
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _unescape(value: str) -> str:
    return value.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


def encode_multipart(
    parts: Iterable[FormPartData],
    boundary: str,
    *,
    preamble: str = "",
    epilogue: str | None = None,
) -> bytes:
    """The body bytes for `parts`, in order, delimited by `boundary`."""
    dash = b"--" + boundary.encode("ascii")
    out = bytearray(preamble.encode("utf-8"))
    for part in parts:
        out += dash
        if part.head is not None and _head_says(part.head, part):
            out += part.head.encode("utf-8")
        else:
            out += _plain_head(part)
        out += part.data + b"\r\n"
    out += dash + b"--" + ("\r\n" if epilogue is None else epilogue).encode("utf-8")
    return bytes(out)


def _plain_head(part: FormPartData) -> bytes:
    disposition = f'form-data; name="{_escape(part.name)}"'
    if part.filename is not None:
        disposition += f'; filename="{_escape(part.filename)}"'
    head = b"\r\nContent-Disposition: " + disposition.encode("utf-8") + b"\r\n"
    if part.content_type is not None:
        head += b"Content-Type: " + part.content_type.encode("utf-8") + b"\r\n"
    return head + b"\r\n"


def _head_fields(head: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in head.split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


def _head_says(head: str, part: FormPartData) -> bool:
    """Whether a recorded header block still describes `part` (a shaped part may not)."""
    fields = _head_fields(head)
    params = _disposition_params(fields.get("content-disposition", ""))
    return (
        params.get("name") == part.name
        and params.get("filename") == part.filename
        and fields.get("content-type") == part.content_type
    )


def split_framing(body: bytes, boundary: str) -> Framing | None:
    """The header blocks, preamble and epilogue of a well-formed body; None if not UTF-8.

    Call it on a body that `parse_multipart` accepted: its blocks are then those of its parts.
    """
    dash = b"--" + boundary.encode("latin-1")
    start = 0
    if not body.startswith(dash):
        found = body.find(b"\r\n" + dash)
        if found < 0:
            return None
        start = found + 2
    heads: list[bytes] = []
    position = start
    while True:
        after = position + len(dash)
        if body[after : after + 2] == b"--":
            pieces = (body[:start], *heads, body[after + 2 :])
            break
        blank = body.find(b"\r\n\r\n", after)
        following = body.find(b"\r\n" + dash, blank + 4) if blank >= 0 else -1
        if following < 0:
            return None
        heads.append(body[after : blank + 4])
        position = following + 2
    try:
        text = [piece.decode("utf-8") for piece in pieces]
    except UnicodeDecodeError:
        return None
    return Framing(preamble=text[0], heads=tuple(text[1:-1]), epilogue=text[-1])


def parse_multipart(body: bytes, content_type: str | None) -> list[FormPartData]:
    """Parse a whole body; `MultipartError` if it is not well-formed multipart/form-data."""
    parser = StreamingFormParser(content_type)
    parser.feed(body)
    return parser.finish()


class StreamingFormParser:
    """Incremental multipart parser: `feed()` chunks as they arrive, then `finish()`.

    Raises `MultipartError` (from the constructor, `feed` or `finish`) for a missing boundary,
    malformed framing, a part without a name, or a body that ends before its closing delimiter.
    """

    def __init__(self, content_type: str | None) -> None:
        boundary = boundary_of(content_type)
        if boundary is None:
            raise MultipartError(
                f"not multipart/form-data with a boundary (Content-Type: {content_type!r})"
            )
        self._parts: list[FormPartData] = []
        self._headers: dict[str, str] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._data = bytearray()
        self._ended = False
        self._error: str | None = None
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_end": self._on_end,
            },
            max_header_count=32,
        )

    def feed(self, chunk: bytes) -> None:
        if self._error is not None:
            raise MultipartError(self._error)
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            self._error = f"malformed multipart body: {exc}"
        except MultipartError as exc:
            self._error = str(exc)
        if self._error is not None:
            raise MultipartError(self._error)

    def finish(self) -> list[FormPartData]:
        if self._error is not None:
            raise MultipartError(self._error)
        if not self._ended:
            raise MultipartError("malformed multipart body: it ends before the closing boundary")
        return self._parts

    # -- python-multipart callbacks --------------------------------------------------------------

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._data = bytearray()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._data += data[start:end]

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        name = self._field.decode("latin-1").strip().lower()
        self._headers[name] = self._value.decode("utf-8", "replace").strip()
        self._field = bytearray()
        self._value = bytearray()

    def _on_part_end(self) -> None:
        disposition = self._headers.get("content-disposition")
        if disposition is None:
            raise MultipartError("malformed multipart body: a part has no Content-Disposition")
        params = _disposition_params(disposition)
        if "name" not in params:
            raise MultipartError("malformed multipart body: a part has no name")
        self._parts.append(
            FormPartData(
                name=params["name"],
                data=bytes(self._data),
                filename=params.get("filename"),
                content_type=self._headers.get("content-type"),
            )
        )

    def _on_end(self) -> None:
        self._ended = True


_PARAM_RE = re.compile(r';\s*([^\s=;]+)\s*=\s*(?:"([^"]*)"|([^;]*))')


def _disposition_params(disposition: str) -> dict[str, str]:
    params: dict[str, str] = {}
    extended: dict[str, str] = {}
    for match in _PARAM_RE.finditer(disposition):
        key = match.group(1).lower()
        quoted, bare = match.group(2), match.group(3)
        value = quoted if quoted is not None else bare.strip()
        if key.endswith("*"):
            # RFC 5987 (filename*=UTF-8''na%C3%AFve.png) wins over the plain parameter.
            charset, _, rest = value.partition("'")
            _, _, encoded = rest.partition("'")
            extended[key[:-1]] = unquote(encoded, encoding=charset or "utf-8", errors="replace")
        else:
            params[key] = _unescape(value)
    params.update(extended)
    return params
