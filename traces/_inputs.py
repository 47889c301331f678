"""Which parts of a request body are its input images, and which are masks.

One rule for every tool (`show`, `replay --dry-run`, the analyzer's request classes and its HTML
report): an input image is a file part named `image`, `image[]`, `images` or `images[]`; a mask
is a file part named `mask` or `mask[]`. Masks are counted separately, never as input images, so
an edit with one image and one mask has 1 input image and 1 mask. Text parts (an image URL or a
data URL in a text field) are not counted. JSON and raw bodies have no input images.

The blobs a body refers to are every file part's, or a raw body's one: what a copy of the request
into another file must bring along, and what a replay must find in the file before it starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from ._schema import Body, FilePart, MultipartBody, RawBody

__all__ = ["IMAGE_FIELDS", "MASK_FIELDS", "body_blobs", "input_images", "input_masks"]

IMAGE_FIELDS: Final = frozenset({"image", "image[]", "images", "images[]"})
MASK_FIELDS: Final = frozenset({"mask", "mask[]"})


def _file_parts(body: Body | None, names: frozenset[str]) -> tuple[FilePart, ...]:
    if not isinstance(body, MultipartBody):
        return ()
    return tuple(part for part in body.parts if isinstance(part, FilePart) and part.name in names)


def input_images(body: Body | None) -> tuple[FilePart, ...]:
    """The input images of a request body, in form order (masks excluded)."""
    return _file_parts(body, IMAGE_FIELDS)


def input_masks(body: Body | None) -> tuple[FilePart, ...]:
    """The masks of a request body, in form order."""
    return _file_parts(body, MASK_FIELDS)


def body_blobs(body: Body | None) -> Iterator[str]:
    """The digests of the blobs a request body refers to, in body order (repeats kept)."""
    if isinstance(body, MultipartBody):
        yield from (part.blob for part in body.parts if isinstance(part, FilePart))
    elif isinstance(body, RawBody):
        yield body.blob
