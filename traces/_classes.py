"""Request classes: requests that ask for the same kind of work, compared with each other.

A request's class features are its path, the form or JSON fields `size`, `quality`, `n` and
`num_inference_steps`, and its number of input images (`traces.input_images`). A class label
names only the features that vary across the requests at hand ("size=1024x1024 images=2"), or
is "all" when none varies. At most 24 classes are formed: past that, the features with the most
distinct values are dropped, since classes that small could not be tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from ._inputs import input_images
from ._schema import JsonBody, MultipartBody, Request, TextField

__all__ = ["CLASS_FIELDS", "MAX_CLASSES", "class_labels", "request_classes", "request_features"]

CLASS_FIELDS: Final = ("path", "size", "quality", "n", "num_inference_steps", "images")
MAX_CLASSES: Final = 24
ALL: Final = "all"


def request_features(request: Request) -> dict[str, str]:
    """The class features of one request (see CLASS_FIELDS); absent ones are left out."""
    features = {"path": request.path}
    body = request.body
    if isinstance(body, MultipartBody):
        for part in body.parts:
            if isinstance(part, TextField) and part.name in CLASS_FIELDS:
                features[part.name] = part.value
        features["images"] = str(len(input_images(body)))
    elif isinstance(body, JsonBody) and isinstance(body.value, dict):
        for name in CLASS_FIELDS:
            if name in body.value and name != "path":
                features[name] = str(body.value[name])
    return features


def class_labels(features: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """A short label per request id, naming only the features that vary across them."""
    if not features:
        return {}
    combos = {
        request_id: tuple(feature.get(name, "-") for name in CLASS_FIELDS)
        for request_id, feature in features.items()
    }
    # Decide on the distinct combinations only: a trace has few, however many requests.
    distinct = set(combos.values())
    values = [{combo[i] for combo in distinct} for i in range(len(CLASS_FIELDS))]
    varying = [i for i in range(len(CLASS_FIELDS)) if len(values[i]) > 1]
    while varying and len({tuple(c[i] for i in varying) for c in distinct}) > MAX_CLASSES:
        varying.remove(max(varying, key=lambda i: len(values[i])))
    if not varying:
        return dict.fromkeys(features, ALL)
    names = {
        combo: " ".join(f"{CLASS_FIELDS[i]}={combo[i]}" for i in varying) for combo in distinct
    }
    return {request_id: names[combo] for request_id, combo in combos.items()}


def request_classes(requests: Iterable[Request]) -> dict[str, str]:
    """The class label of each request id among `requests` (see `class_labels`)."""
    return class_labels({request.id: request_features(request) for request in requests})
