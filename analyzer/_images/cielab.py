"""CIELAB (D65) and the CIEDE2000 colour difference, in float32 numpy on channel planes.

Colours are held as planes, shape (3, ...) with L, a, b (or R, G, B) first: each channel is then
one contiguous array, which numpy's vectorised loops run through several times faster than the
interleaved (..., 3) layout of a picture. float32 is ample: differences of 0.001 in CIEDE2000
units, where a threshold is 1 or more (the tests hold it to scikit-image's float64).

CIEDE2000 follows Sharma, Wu and Dalal (2005) with kL = kC = kH = 1. Instead of two hue angles,
their difference and their mean, it works with the hue vectors: the cross and dot products of
(a', b') give the hue difference term, and the sum of the two unit hue vectors points along the
mean hue of the shorter arc. That needs one arctangent instead of two and no angle wrapping, and
is more exact for near colours (no difference of two rounded angles).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "F32",
    "ciede2000",
    "ciede2000_bound",
    "ciede2000_planes",
    "lab_from_linear",
    "lab_planes",
    "srgb_linear",
    "srgb_to_lab",
]

F32 = npt.NDArray[np.float32]

# sRGB primaries to CIE XYZ (IEC 61966-2-1), each row divided by the D65 white's X, Y or Z.
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_RGB_TO_RELATIVE_XYZ = (_RGB_TO_XYZ / _WHITE[:, None]).astype(np.float32)
_EPSILON = (6 / 29) ** 3  # below it CIELAB's cube root turns into a line
_SLOPE = 1 / (3 * (6 / 29) ** 2)
_POW7_25 = np.float32(25.0**7)
_TINY = np.finfo(np.float32).tiny
_ONE = np.float32(1)
_RAD63 = np.radians(63.0)
_PART = 16384  # colours per part: 64 kB per float32 temporary


def _by_parts(
    function: Callable[[F32, F32], F32], first: F32, second: F32 | None, planes_out: bool
) -> F32:
    """`function` over parts of at most _PART colours of (3, ...) planes of one shape.

    The temporaries of one part stay small: glibc then reuses them from its heap instead of
    mapping and faulting in fresh pages for every numpy operation, which cost more than the
    arithmetic, and they stay in the cache.
    """
    shape = first.shape
    flat_first = first.reshape(3, -1)
    flat_second = flat_first if second is None else second.reshape(3, -1)
    count = flat_first.shape[1]
    out = np.empty((3, count) if planes_out else (count,), dtype=np.float32)
    for start in range(0, count, _PART):
        part = slice(start, start + _PART)
        out[..., part] = function(flat_first[:, part], flat_second[:, part])
    return out.reshape(shape if planes_out else shape[1:])


def srgb_linear(code: F32) -> F32:
    """Linear light (0..1) of sRGB code values 0..255, any shape (IEC 61966-2-1)."""
    c = np.asarray(code, dtype=np.float32) * np.float32(1 / 255)
    linear = ((c + 0.055) / 1.055) ** 2.4
    dark = c <= 0.04045
    if dark.any():
        linear[dark] = c[dark] * np.float32(1 / 12.92)
    result: F32 = linear
    return result


def lab_planes(code: F32) -> F32:
    """CIELAB planes of sRGB code values 0..255 given as planes (R, G, B first)."""
    return _each_part(lambda part: _lab_of_linear(srgb_linear(part)), code)


def lab_from_linear(linear: F32) -> F32:
    """CIELAB planes of linear-light planes (R, G, B first), as `srgb_linear` gives them."""
    return _each_part(_lab_of_linear, linear)


def _each_part(function: Callable[[F32], F32], planes: F32) -> F32:
    planes = np.asarray(planes, dtype=np.float32)
    if planes[0].size <= _PART:
        return function(planes.reshape(3, -1)).reshape(planes.shape)
    return _by_parts(lambda part, _: function(part), planes, None, planes_out=True)


def _lab_of_linear(linear: F32) -> F32:
    xyz = _RGB_TO_RELATIVE_XYZ @ linear
    f = np.cbrt(xyz)
    dark = xyz <= _EPSILON
    if dark.any():
        f[dark] = xyz[dark] * _SLOPE + 4 / 29
    lab = np.empty_like(f)
    np.multiply(f[1], 116, out=lab[0])
    lab[0] -= 16
    np.subtract(f[0], f[1], out=lab[1])
    lab[1] *= 500
    np.subtract(f[1], f[2], out=lab[2])
    lab[2] *= 200
    result: F32 = lab
    return result


def srgb_to_lab(rgb: F32) -> F32:
    """CIELAB (D65) of sRGB code values 0..255 (any shape ending in 3)."""
    planes = np.moveaxis(np.asarray(rgb, dtype=np.float32), -1, 0)
    result: F32 = np.moveaxis(lab_planes(np.ascontiguousarray(planes)), 0, -1)
    return result


def ciede2000(lab1: F32, lab2: F32) -> F32:
    """CIEDE2000 colour difference (kL = kC = kH = 1) of two arrays of CIELAB colours (..., 3)."""
    first, second = np.broadcast_arrays(
        np.asarray(lab1, dtype=np.float32), np.asarray(lab2, dtype=np.float32)
    )
    planes = [
        np.ascontiguousarray(np.moveaxis(lab, -1, 0)).reshape(3, -1) for lab in (first, second)
    ]
    return ciede2000_planes(planes[0], planes[1]).reshape(first.shape[:-1])


def _norm(x: F32, y: F32) -> F32:
    """sqrt(x^2 + y^2): Lab values cannot overflow it, and numpy vectorises it unlike hypot."""
    total = x * x
    total += y * y
    result: F32 = np.sqrt(total)
    return result


def _chroma_weight(c: F32) -> F32:
    """sqrt(C^7 / (C^7 + 25^7)): the factor of both G and R_C."""
    c2 = c * c
    c7 = c2 * c2
    c7 *= c2
    c7 *= c
    result: F32 = np.sqrt(c7 / (c7 + _POW7_25))
    return result


def ciede2000_planes(lab1: F32, lab2: F32) -> F32:
    """CIEDE2000 of two CIELAB plane stacks (3, ...); their other axes broadcast."""
    if lab1.shape == lab2.shape and lab1[0].size > _PART:
        return _by_parts(_ciede2000_part, lab1, lab2, planes_out=False)
    return _ciede2000_part(lab1, lab2)


def ciede2000_bound(lab1: F32, lab2: F32) -> F32:
    """An upper bound of CIEDE2000 from the plain CIELAB differences, for two plane stacks.

    In dE00^2 = (dL'/S_L)^2 + (dC'/S_C)^2 + (dH'/S_H)^2 + R_T (dC'/S_C)(dH'/S_H), every S is
    at least 1 (T stays above 0.07), |R_T| < 2 sin 60 degrees, so the last term is at most
    0.866 of the two before it, and dC'^2 + dH'^2 is the squared distance of the two (a', b)
    points, where a' = (1 + G) a with G <= 0.5. Hence dE00^2 <= dL^2 + 1.866 (2.25 da^2 + db^2);
    the factor 1.001 and the 0.001 added cover float32 rounding on both sides.
    """
    dl, da, db = lab2[0] - lab1[0], lab2[1] - lab1[1], lab2[2] - lab1[2]
    total = dl * dl
    total += np.float32(4.1986) * (da * da)
    total += np.float32(1.8661) * (db * db)
    result: F32 = np.sqrt(total)
    result *= np.float32(1.001)
    result += np.float32(0.001)
    return result


def _ciede2000_part(lab1: F32, lab2: F32) -> F32:
    l1, a1, b1 = lab1
    l2, a2, b2 = lab2
    c_mean = (_norm(a1, b1) + _norm(a2, b2)) * np.float32(0.5)
    stretch = 1.5 - 0.5 * _chroma_weight(c_mean)  # 1 + G
    a1p, a2p = a1 * stretch, a2 * stretch
    c1p, c2p = _norm(a1p, b1), _norm(a2p, b2)
    hues = _hues(a1p, b1, c1p, a2p, b2, c2p)
    d_h = _hue_difference(hues)
    cos_h, sin_h, h_mean = _mean_hue(hues)
    t = 1 - 0.17 * (cos_h * np.float32(np.cos(np.pi / 6)) + sin_h * np.float32(0.5))
    cos_2h = 2 * cos_h * cos_h - 1
    sin_2h = 2 * sin_h * cos_h
    t += 0.24 * cos_2h
    cos_3h = cos_2h * cos_h - sin_2h * sin_h
    sin_3h = sin_2h * cos_h + cos_2h * sin_h
    t += 0.32 * (cos_3h * np.float32(np.cos(np.pi / 30)) - sin_3h * np.float32(np.sin(np.pi / 30)))
    cos_4h = 2 * cos_2h * cos_2h - 1
    sin_4h = 2 * sin_2h * cos_2h
    t -= 0.20 * (cos_4h * np.float32(np.cos(_RAD63)) + sin_4h * np.float32(np.sin(_RAD63)))
    l50 = (l1 + l2) * np.float32(0.5) - 50
    l50 *= l50
    cp_mean = (c1p + c2p) * np.float32(0.5)
    rotation = (h_mean - np.float32(275)) * np.float32(1 / 25)
    rotation *= rotation
    # exp(-80) is 2e-35, no different from 0 here; larger arguments take exp's slow underflow path.
    np.minimum(rotation, 80, out=rotation)
    np.negative(rotation, out=rotation)
    r_t = np.sin(np.exp(rotation) * np.float32(np.pi / 3))
    r_t *= -2 * _chroma_weight(cp_mean)
    dl = (l2 - l1) / (1 + 0.015 * l50 / np.sqrt(20 + l50))
    dc = (c2p - c1p) / (1 + 0.045 * cp_mean)
    dhh = d_h / (1 + 0.015 * cp_mean * t)
    total = dl * dl
    total += dc * dc
    total += dhh * dhh
    r_t *= dc
    r_t *= dhh
    total += r_t
    result: F32 = np.sqrt(total)
    return result


class _Hues(NamedTuple):
    """The two hue vectors (a', b') of a pair of colours and their products."""

    a1: F32
    b1: F32
    c1: F32
    a2: F32
    b2: F32
    c2: F32
    cross: F32
    """C1' C2' sin(h2' - h1')."""
    dot: F32
    """C1' C2' cos(h2' - h1')."""


def _hues(a1: F32, b1: F32, c1: F32, a2: F32, b2: F32, c2: F32) -> _Hues:
    cross = a1 * b2
    cross -= a2 * b1
    dot = a1 * a2
    dot += b1 * b2
    return _Hues(a1, b1, c1, a2, b2, c2, cross, dot)


def _hue_difference(h: _Hues) -> F32:
    """dH' = 2 sqrt(C1' C2') sin(dh'/2), from the hue vectors (0 where a chroma is 0).

    |dH'| = sqrt(2 (C1'C2' - dot)); for near hues that difference cancels, and
    cross * sqrt(2 / (C1'C2' + dot)) is the same value computed without it.
    """
    product = h.c1 * h.c2
    near = h.cross * np.sqrt(2 / np.maximum(product + h.dot, _TINY))
    far = np.copysign(np.sqrt(2 * np.maximum(product - h.dot, 0)), h.cross)
    result: F32 = np.where(h.dot > 0, near, far)
    return result


def _mean_hue(h: _Hues) -> tuple[F32, F32, F32]:
    """(cos h', sin h', h' in degrees 0..360) of the mean hue on the shorter arc.

    For hues less than a quarter turn apart it points along the sum of the unit hue vectors;
    further apart, that sum cancels, and the difference of the unit vectors turned by a quarter
    (towards the shorter arc, which the sign of the cross product tells) points the same way
    without cancelling. Where one chroma is 0 the mean is the other colour's hue, and for exactly
    opposite hues the hue a quarter turn past the lower one, as Sharma et al. define them.
    """
    inverse1 = 1 / np.maximum(h.c1, _TINY)
    inverse2 = 1 / np.maximum(h.c2, _TINY)
    x1, y1, x2, y2 = h.a1 * inverse1, h.b1 * inverse1, h.a2 * inverse2, h.b2 * inverse2
    # On exactly opposite hues, the first is the lower (0..180 degrees) in the upper half plane.
    first_lower = (h.b1 > 0) | ((h.b1 == 0) & (h.a1 > 0))
    turn = np.where(h.cross == 0, np.where(first_lower, _ONE, -_ONE), np.sign(h.cross))
    by_sum = (h.dot > 0) | (h.c1 == 0) | (h.c2 == 0)
    x = np.where(by_sum, x1 + x2, (y2 - y1) * turn)
    y = np.where(by_sum, y1 + y2, (x1 - x2) * turn)
    length = _norm(x, y)
    flat = length == 0  # both chromas 0: hue 0, as atan2(0, 0)
    length[flat] = 1
    x[flat] = 1
    cos_h, sin_h = x / length, y / length
    degrees = np.arctan2(y, x)
    degrees *= np.float32(180 / np.pi)
    degrees[degrees < 0] += 360
    return cos_h, sin_h, degrees
