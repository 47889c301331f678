"""The run-level judgement against the A/A noise: determinism, the paired test, the gate."""

from __future__ import annotations

import math
from collections import defaultdict

import msgspec
import numpy as np

from .._stats import hodges_lehmann, sign_test, wilcoxon
from .options import Thresholds
from .records import VERDICTS, PairResult

__all__ = ["NoiseSummary", "summarize_noise"]

_PIXEL_IDENTICAL = frozenset({"identical-bytes", "identical-pixels"})
_DIFFERENT = frozenset({"changed", "layout-differs"})
_COMPARABLE = frozenset(VERDICTS) - {"missing", "undecodable", "within-noise"}


class NoiseSummary(msgspec.Struct, kw_only=True):
    """How B compares with A against how A compares with itself (A')."""

    aa_pairs: int
    aa_pixel_identical: int
    aa_bytes_identical: int
    aa_median: float | None
    aa_band: float | None
    """The `noise_quantile` of the A/A distances (1 - SSIM)."""
    requests: int
    """Requests with both an A/B and an A/A distance: the sample of the paired test."""
    delta: float | None
    delta_lo: float | None
    delta_hi: float | None
    wilcoxon_p: float | None
    sign_p: float | None
    positive: int
    negative: int
    changed_share_b: float
    changed_share_aa: float
    gate: bool
    verdict: str


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def summarize_noise(pairs: list[PairResult], th: Thresholds) -> NoiseSummary:
    """The determinism line, the paired test of delta = d(A,B) - d(A,A') and the Diffy gate."""
    aa = [p for p in pairs if p.noise_verdict is not None]
    distances = np.array([p.d_aa for p in aa if p.d_aa is not None], dtype=np.float64)
    by_request: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    for pair in pairs:
        if pair.d_ab is not None and pair.d_aa is not None:
            by_request[(pair.request_id, pair.loop)].append((pair.d_ab, pair.d_aa))
    deltas = np.array(
        [np.mean([ab for ab, _ in v]) - np.mean([a2 for _, a2 in v]) for v in by_request.values()],
        dtype=np.float64,
    )
    comparable_b = [p for p in pairs if p.raw_verdict in _COMPARABLE]
    share_b = _share(sum(p.raw_verdict in _DIFFERENT for p in comparable_b), len(comparable_b))
    share_aa = _share(sum(p.noise_verdict in _DIFFERENT for p in aa), len(aa))
    excess = share_b - share_aa
    relative = excess / (share_b + share_aa) if share_b + share_aa > 0 else 0.0
    more_changed = excess > th.gate_absolute and relative > th.gate_relative
    estimate = lo = hi = w_p = s_p = None
    positive = int((deltas > 0).sum())
    negative = int((deltas < 0).sum())
    if len(deltas):
        interval = hodges_lehmann(deltas, 1 - th.alpha)
        estimate = float(interval.estimate)
        lo, hi = _finite(float(interval.lo)), _finite(float(interval.hi))
        w_p, s_p = float(wilcoxon(deltas).p), float(sign_test(deltas).p)
    drift = w_p is not None and w_p < th.alpha and lo is not None and lo > 0
    # Diffy's share rule alone fires on chance differences between two small counts; the paired
    # test over every request must agree that B moved away from A more than A' did.
    gate = more_changed and drift
    if gate:
        verdict = "B changes more outputs than the A/A noise"
    elif drift:
        verdict = "B's outputs moved beyond the A/A noise, but few crossed the 'changed' line"
    elif changed := sum(p.verdict == "changed" for p in pairs):
        verdict = (
            f"not beyond the A/A noise overall, but {changed} output"
            f"{'s' if changed != 1 else ''} changed beyond their request's A/A distance"
        )
    elif len(deltas) < 6:
        verdict = "inconclusive: too few requests with an A/A pair"
    else:
        verdict = "no change beyond the A/A noise"
    return NoiseSummary(
        aa_pairs=len(aa),
        aa_pixel_identical=sum(p.noise_verdict in _PIXEL_IDENTICAL for p in aa),
        aa_bytes_identical=sum(p.noise_verdict == "identical-bytes" for p in aa),
        aa_median=float(np.median(distances)) if len(distances) else None,
        aa_band=float(np.quantile(distances, th.noise_quantile)) if len(distances) else None,
        requests=len(deltas), delta=estimate, delta_lo=lo, delta_hi=hi,
        wilcoxon_p=w_p, sign_p=s_p, positive=positive, negative=negative,
        changed_share_b=share_b, changed_share_aa=share_aa, gate=gate, verdict=verdict,
    )  # fmt: skip


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0
