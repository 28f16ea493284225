"""Summary statistics of latency samples (no torch, no pytest; scipy for Student's t).

The headline figure is the median; its confidence interval is the
distribution-free interval between two order statistics, so that it holds
whatever the (usually skewed, multi-modal) distribution of call times is.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..jsontypes import JsonObject

__all__ = ["LatencyStats", "median_ci", "percentile", "summarize", "ci_half_width"]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Percentile ``q`` (0..100) of already sorted values, linear interpolation.

    Same definition as numpy's default (``method="linear"``).
    """
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return float(sorted_values[lo])
    frac = pos - lo
    a, b = float(sorted_values[lo]), float(sorted_values[hi])
    # a + (b - a) * frac can leave [a, b] by one ulp; clamp to keep monotone.
    return min(max(a + (b - a) * frac, min(a, b)), max(a, b))


def _largest_rank(n: int, alpha_half: float) -> int:
    """Largest j with P(B < j) <= alpha_half for B ~ Binomial(n, 1/2) (log-space pmf)."""
    log_half_n = -n * math.log(2.0)
    lg_n = math.lgamma(n + 1)
    cum = 0.0
    j = 0
    for k in range(0, n // 2 + 1):
        cum += math.exp(lg_n - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half_n)
        if cum > alpha_half:
            break
        j = k + 1
    return j


def median_ci(sorted_values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median.

    Returns ``(x_(j), x_(n+1-j))`` (1-based order statistics) for the largest
    ``j`` whose coverage ``P(j <= B <= n - j)``, ``B ~ Bin(n, 1/2)``, is at
    least ``confidence``. With too few samples for that coverage the interval
    is the whole range ``(min, max)``, which is the honest answer.
    """
    n = len(sorted_values)
    if n == 0:
        raise ValueError("median_ci of no values")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be within (0, 1), got {confidence}")
    alpha_half = (1.0 - confidence) / 2.0
    # Largest j with P(B < j) <= alpha/2; coverage is then >= confidence.
    if n > 2000:
        # Normal approximation: exact sums get slow and they agree to within one rank here.
        j = int(math.floor(n / 2.0 - _z(confidence) * math.sqrt(n) / 2.0))
    else:
        j = _largest_rank(n, alpha_half)
    if j < 1:
        return float(sorted_values[0]), float(sorted_values[-1])
    return float(sorted_values[j - 1]), float(sorted_values[n - j])


def _z(confidence: float) -> float:
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)


def ci_half_width(median: float, ci: tuple[float, float]) -> float:
    """Relative half-width of a median's interval: the larger side over the median."""
    if median <= 0:
        return math.inf
    return max(median - ci[0], ci[1] - median) / median


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-call latencies, in milliseconds."""

    median: float
    mean: float
    stdev: float
    min: float
    max: float
    p90: float
    p99: float
    n: int
    ci_median: tuple[float, float]

    def as_dict(self) -> JsonObject:
        return {
            "median": self.median,
            "mean": self.mean,
            "stdev": self.stdev,
            "min": self.min,
            "max": self.max,
            "p90": self.p90,
            "p99": self.p99,
            "n": self.n,
            "ci_median": [self.ci_median[0], self.ci_median[1]],
        }


def summarize(samples_ms: Sequence[float], confidence: float = 0.95) -> LatencyStats:
    """Median (headline), mean, sample stdev, extremes, p90, p99 and the median's CI."""
    if not samples_ms:
        raise ValueError("no samples to summarize")
    s = sorted(float(x) for x in samples_ms)
    n = len(s)
    return LatencyStats(
        median=float(statistics.median(s)),
        mean=float(statistics.fmean(s)),
        stdev=float(statistics.stdev(s)) if n > 1 else 0.0,
        min=s[0],
        max=s[-1],
        p90=percentile(s, 90.0),
        p99=percentile(s, 99.0),
        n=n,
        ci_median=median_ci(s, confidence),
    )


def t_quantile(p: float, dof: float) -> float:
    """Quantile of Student's t with ``dof`` (> 0, not necessarily whole) degrees of freedom (scipy)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must lie in (0, 1), got {p}")
    from scipy.stats import t

    return float(t.ppf(p, dof))


def t_cdf(value: float, dof: float) -> float:
    """Distribution function of Student's t with ``dof`` degrees of freedom (scipy)."""
    from scipy.stats import t

    return float(t.cdf(value, dof))
