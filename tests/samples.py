"""Small inputs that several test folders build alike.

A plain module beside tests/conftest.py (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import io

from PIL import Image


def png(seed: int = 0, size: int = 8) -> bytes:
    """A one-colour PNG; seeds under 256 give different bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (seed % 256, 40, 90)).save(buffer, format="PNG")
    return buffer.getvalue()
