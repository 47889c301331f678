"""Per-request values of a synthetic trace: a fixed value, a (weighted) list, a distribution.

`ValueSpec` parses the text of one `synth` option (`--size`, `--steps`, `--image-format`, ...)
and draws one value per request from a numpy generator; `parse_size` reads `WxH`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from traces import UsageError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MAX_SIDE", "ValueSpec", "parse_size"]

MAX_SIDE = 8192
"""The longest side of an image or output size, in pixels."""


class ValueSpec:
    """A per-request value: fixed, a (weighted) list, a distribution, or absent.

    Syntax: `none`; `4`; `4,8,28`; `512x512@3,1024x1024@1` (weights after `@`);
    `uniform(LO,HI)`; `normal(MEAN,SD)`. Integer values from a distribution are rounded; sizes
    from a distribution are squares whose side is rounded to a multiple of 16.
    """

    def __init__(
        self,
        text: str,
        kind: Literal["int", "float", "str", "size", "output_size"],
        option: str,
    ) -> None:
        self.text = text.strip()
        self.kind = kind
        self.option = option
        self.absent = self.text.lower() == "none"
        self.values: list[str] = []
        self.weights: list[float] | None = None
        self.distribution: tuple[str, float, float] | None = None
        if not self.absent:
            self._parse()

    def _fail(self, problem: str) -> UsageError:
        return UsageError(f"{self.option} {self.text!r}: {problem}")

    def _parse(self) -> None:
        text = self.text
        if not text:
            raise self._fail("empty value")
        lowered = text.lower()
        for name in ("uniform", "normal"):
            if lowered.startswith(name + "(") and lowered.endswith(")"):
                if self.kind == "str":
                    raise self._fail("a distribution needs numbers; give a list of values")
                args = lowered[len(name) + 1 : -1].split(",")
                try:
                    a, b = (float(arg) for arg in args)
                except ValueError:
                    raise self._fail(f"expected {name}(A,B) with two numbers") from None
                if name == "uniform" and b < a:
                    raise self._fail("uniform(LO,HI) needs LO <= HI")
                if name == "normal" and b < 0:
                    raise self._fail("normal(MEAN,SD) needs SD >= 0")
                self.distribution = (name, a, b)
                return
        weights: list[float] = []
        for item in text.split(","):
            value, _, weight = item.strip().partition("@")
            self.values.append(self._check(value.strip()))
            try:
                weights.append(float(weight) if weight else 1.0)
            except ValueError:
                raise self._fail(f"weight {weight!r} is not a number") from None
        if any(w < 0 or not math.isfinite(w) for w in weights) or sum(weights) <= 0:
            raise self._fail("weights must be non-negative numbers, not all zero")
        total = sum(weights)
        self.weights = [w / total for w in weights]

    def _check(self, value: str) -> str:
        if not value:
            raise self._fail("empty item in the list")
        try:
            if self.kind == "int":
                int(value)
            elif self.kind == "float":
                if not math.isfinite(float(value)):
                    raise ValueError
            elif self.kind == "size" or (self.kind == "output_size" and value != "auto"):
                parse_size(value)
        except ValueError:
            if self.kind in ("size", "output_size"):
                raise self._fail(
                    f"{value!r} is not a size WIDTHxHEIGHT (e.g. 512x512, sides 1 to {MAX_SIDE})"
                ) from None
            raise self._fail(f"{value!r} is not a valid {self.kind}") from None
        return value

    def draw(self, rng: np.random.Generator) -> str | None:
        """One value as the text sent in the form, or None when the field is absent."""
        if self.absent:
            return None
        if self.distribution is not None:
            name, a, b = self.distribution
            x = float(rng.uniform(a, b) if name == "uniform" else rng.normal(a, b))
            if self.kind in ("size", "output_size"):
                side = min(MAX_SIDE, max(16, round(x / 16) * 16))
                return f"{side}x{side}"
            if self.kind == "int":
                return str(max(1, round(x)))
            return repr(round(x, 3))
        if len(self.values) == 1:
            return self.values[0]
        return self.values[int(rng.choice(len(self.values), p=self.weights))]

    def describe(self) -> str:
        return self.text


def parse_size(text: str) -> tuple[int, int]:
    """`WxH` as (width, height); ValueError unless both are positive integers."""
    width, sep, height = text.lower().partition("x")
    if not sep:
        raise ValueError(text)
    w, h = int(width), int(height)
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
        raise ValueError(text)
    return w, h
