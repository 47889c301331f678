"""Whether a response that says success is one: a 2xx must carry the JSON document it promises.

An image API answers an edit with a JSON body (`data[]`). A 2xx whose body is empty, an HTML
error page from a gateway, or JSON cut short is not a success, whatever its status says: it is
an error of its own kind, `invalid-response`, counted with the other errors by the replayer's
summary, `report` and `compare`. A body typed `image/*` (a server that answers with the image
itself) is not held to this rule.
"""

from __future__ import annotations

from typing import Final

import msgspec

from ._failures import ErrorKind
from ._schema import ErrorInfo

__all__ = ["INVALID_RESPONSE", "invalid_response"]

INVALID_RESPONSE: Final[ErrorKind] = "invalid-response"

_validator = msgspec.json.Decoder()


def invalid_response(
    status: int | None, content_type: str | None, body: bytes, *, decoded: bool | None = None
) -> ErrorInfo | None:
    """The `invalid-response` error of a 2xx whose body is not JSON; None for any other.

    :param decoded: whether the caller already decoded `body` as JSON (None: decode it here).
    """
    if status is None or not 200 <= status < 300:
        return None
    media = (content_type or "").split(";")[0].strip().lower()
    if media.startswith("image/"):
        return None
    if decoded is None:
        decoded = _is_json(body)
    if decoded:
        return None
    what = "an empty body" if not body else f"{len(body):,} bytes of {media or 'untyped data'}"
    return ErrorInfo(
        kind=INVALID_RESPONSE, message=f"HTTP {status} with {what} that is not valid JSON"
    )


def _is_json(body: bytes) -> bool:
    try:
        _validator.decode(body)
    except msgspec.DecodeError:
        return False
    return True
