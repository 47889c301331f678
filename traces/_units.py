"""Byte counts as people write them on a command line: one rule for every imgtrace option.

`500000` is bytes; `k`, `M`, `G` and `T` are powers of 1024, whether written `64M`, `64MB` or
`64MiB` (the convention of nginx's `client_max_body_size` and of container memory limits, which
is what a body limit is compared with). Case does not matter, a fraction is allowed (`1.5G`),
and the result is rounded down to whole bytes.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Final

from ._errors import UsageError

__all__ = ["parse_byte_size"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?\s*$", re.IGNORECASE)
_POWERS: Final = {"k": 1, "m": 2, "g": 3, "t": 4}


def parse_byte_size(text: str, option: str | None = None) -> int:
    """`64M`, `1.5G`, `500k`, `64MiB` or `1048576` as a number of bytes.

    Raises `UsageError` naming `option` (e.g. "--max-body") for anything else.
    """
    match = _SIZE.match(text)
    if match is None:
        where = f"{option}: " if option else ""
        raise UsageError(
            f"{where}not a byte count: {text!r} (use e.g. 1048576, 500k, 64M or 1.5G; "
            "k, M, G and T are powers of 1024)"
        )
    number, unit = match.groups()
    factor = 1024 ** _POWERS[unit.lower()] if unit else 1
    return int(Fraction(number) * factor)
