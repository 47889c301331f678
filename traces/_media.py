"""Media types from content, never from names: uploads are often misnamed."""

from __future__ import annotations

__all__ = ["extension_for", "sniff_media_type"]

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)

_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/bmp": "bmp",
    "image/tiff": "tiff",
    "image/webp": "webp",
    "image/avif": "avif",
    "application/json": "json",
    "text/plain": "txt",
}


def sniff_media_type(data: bytes) -> str:
    """The media type that `data` actually is (image formats by signature), else octet-stream."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "image/avif"
    for signature, media_type in _SIGNATURES:
        if data.startswith(signature):
            return media_type
    stripped = data[:64].lstrip()
    if stripped[:1] in (b"{", b"["):
        return "application/json"
    return "application/octet-stream"


def extension_for(media_type: str) -> str:
    """A file extension (without the dot) for a media type; `bin` when unknown."""
    return _EXTENSIONS.get(media_type.split(";")[0].strip().lower(), "bin")
