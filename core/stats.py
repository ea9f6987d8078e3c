"""Differences between two models scored on the same clips, with their uncertainty, and seed summaries.

On a few hundred clips a difference of a point is a handful of clips changing prediction: a point estimate says
little. Every Δ top-1 between two models of the same clips (fp32 vs INT8, QAT, another format, another recipe)
reports the paired discordant counts (clips fixed / broken) and a 95 % interval, and a verdict reads the interval,
not the point:

    d = paired_difference(labels, reference_logits, candidate_logits)
    d.delta, d.low, d.high          # points; exact conditional (McNemar / Clopper-Pearson) interval
    verdict(d, tolerance=1.0)       # "holds" | "loses" | "inconclusive"

The interval is exact given the number of discordant clips m = fixed + broken: fixed ~ Binomial(m, p) and
Δ = m (2p - 1) / n, so the Clopper-Pearson interval of p maps to one for Δ. With no discordant clip it is [0, 0]:
nothing in this sample tells the two apart (the interval is conditional on the clips scored).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

VERDICTS = ("holds", "loses", "inconclusive")


def _log_binom_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return min(1.0, sum(math.exp(_log_binom_pmf(i, n, p)) for i in range(k + 1)))


def _solve(f, target: float) -> float:
    """p in [0, 1] with f(p) = target for a decreasing f (bisection to 1e-12)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact two-sided (1 - alpha) interval of a binomial proportion k / n."""
    if n == 0:
        return 0.0, 1.0
    # low: P(X >= k | p) = alpha / 2 (increasing in p); high: P(X <= k | p) = alpha / 2 (decreasing in p)
    low = 0.0 if k == 0 else _solve(lambda p: binom_cdf(k - 1, n, p), 1.0 - alpha / 2)
    high = 1.0 if k == n else _solve(lambda p: binom_cdf(k, n, p), alpha / 2)
    return low, high


def mcnemar_exact_p(fixed: int, broken: int) -> float:
    """Two-sided exact McNemar p-value: the discordant clips split as a fair coin would split them."""
    m = fixed + broken
    if m == 0:
        return 1.0
    return min(1.0, 2.0 * binom_cdf(min(fixed, broken), m, 0.5))


@dataclass
class PairedDifference:
    """Candidate minus reference on the same n clips, in top-1 points."""
    n: int
    reference_top1: float  # points
    candidate_top1: float
    fixed: int  # clips the reference got wrong and the candidate right
    broken: int  # clips the reference got right and the candidate wrong
    delta: float  # candidate - reference, points
    low: float  # 95 % interval of delta, points
    high: float
    p_value: float  # exact McNemar

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        return (f"{self.delta:+.2f} [{self.low:+.2f}, {self.high:+.2f}] "
                f"(+{self.fixed}/-{self.broken} of {self.n})")


def paired_difference(labels: np.ndarray, reference: np.ndarray, candidate: np.ndarray,
                      alpha: float = 0.05) -> PairedDifference:
    """Δ top-1 of `candidate` against `reference` (each (N, K) logits or (N,) predicted classes) on `labels`."""
    labels = np.asarray(labels).reshape(-1)
    ref = np.asarray(reference)
    cand = np.asarray(candidate)
    ref_pred = ref.argmax(1) if ref.ndim == 2 else ref
    cand_pred = cand.argmax(1) if cand.ndim == 2 else cand
    if not len(labels) == len(ref_pred) == len(cand_pred):
        raise ValueError(f"paired comparison needs the same clips: {len(labels)} labels, {len(ref_pred)} reference "
                         f"and {len(cand_pred)} candidate predictions")
    return paired_from_correct(ref_pred == labels, cand_pred == labels, alpha)


def paired_from_correct(ref_correct: np.ndarray, cand_correct: np.ndarray, alpha: float = 0.05
                        ) -> PairedDifference:
    ref_correct, cand_correct = np.asarray(ref_correct, bool), np.asarray(cand_correct, bool)
    n = len(ref_correct)
    fixed = int(np.sum(~ref_correct & cand_correct))
    broken = int(np.sum(ref_correct & ~cand_correct))
    m = fixed + broken
    if n == 0:
        raise ValueError("paired comparison of zero clips")
    lo_p, hi_p = clopper_pearson(fixed, m, alpha) if m else (0.5, 0.5)
    scale = 100.0 * m / n
    return PairedDifference(n, 100.0 * ref_correct.mean(), 100.0 * cand_correct.mean(), fixed, broken,
                            100.0 * (fixed - broken) / n, scale * (2 * lo_p - 1), scale * (2 * hi_p - 1),
                            mcnemar_exact_p(fixed, broken))


def verdict(d: PairedDifference, tolerance: float = 1.0) -> str:
    """holds: the whole interval is above -tolerance points; loses: the whole interval is below it;
    inconclusive: the interval straddles it (more clips would decide)."""
    if d.low >= -tolerance:
        return "holds"
    if d.high < -tolerance:
        return "loses"
    return "inconclusive"


def seed_summary(values: Sequence[float]) -> dict[str, Any]:
    """mean ± sample standard deviation of per-seed values, with the values themselves."""
    v = [float(x) for x in values]
    if not v:
        return {"n": 0, "mean": None, "std": None, "values": []}
    std = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return {"n": len(v), "mean": float(np.mean(v)), "std": std, "values": v}


def mean_std_text(values: Sequence[float], digits: int = 2) -> str:
    s = seed_summary(values)
    if not s["n"]:
        return "-"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"
