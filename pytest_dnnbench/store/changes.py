"""Change points over a history: where a figure's level moved, by how much, and how sure that is. Pure: numbers
in, change points out (no database, no torch, no pytest); numpy, scipy and ruptures are imported with it.

Two stages (docs/history.md, "Change points"):

1. **Candidates** (ruptures): PELT, the exact penalised segmentation, with the L2 cost (a change of the mean)
   on the log of the values, so that a step is a ratio and the noise of a figure is relative. It runs as
   ``ruptures.KernelCPD(kernel="linear")``: ruptures' C implementation of PELT, whose linear kernel *is* the L2
   cost (the same breakpoints as ``ruptures.Pelt(model="l2", jump=1)``, three orders of magnitude faster).
   The penalty is ``beta * sigma**2 * log(n)`` (BIC's form, ``beta`` = 5), ``sigma`` the noise of one point
   (:func:`noise_scale`: successive differences, the largest left out, so that a step moves it little).
2. **Significance** (as asv: Mann–Whitney U, two-sided): each candidate is tested between the points of the
   segment before it and the segment after it; its step is the ratio of their medians. A candidate whose
   p-value is not below ``alpha`` or whose step is smaller than ``min_step`` is not a change: the weakest such
   candidate is dropped (its two segments merge, so its neighbours are tested again on more points), until
   every candidate left passes. Then each change is moved to the best single split between its neighbours
   (``KernelCPD(...).predict(n_bkps=1)``: a candidate next to a short segment of outliers can sit a run or two
   off) and the candidates are tested again, until none moves.

A change needs enough points on both sides to reach ``alpha``: at 0.01 at least 5 runs before and 5 after
(or 3 after 10, 2 after 30...), so a step in the last run or two is found a few runs later.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ALPHA",
    "BETA",
    "MIN_SIZE",
    "MIN_STEP",
    "ChangePoint",
    "change_points",
    "noise_scale",
    "trend",
]

#: Significance level of the Mann–Whitney U test that a step must pass.
ALPHA = 0.01
#: The smallest relative step reported (5 %: smaller ones are below what a CPU's runs repeat to).
MIN_STEP = 0.05
#: The penalty's factor: ``beta * sigma**2 * log(n)`` per change point.
BETA = 5.0
#: The fewest points of a segment (ruptures' ``min_size``).
MIN_SIZE = 2
#: The share of the largest successive differences :func:`noise_scale` leaves out (where the steps are).
TRIM = 0.10
#: How many times the changes that passed are moved to their best split and tested again, at most.
RELOCATIONS = 3
#: The smallest noise the penalty is scaled by (relative, 0.1 %): a history of identical values still has a
#: positive penalty, and any step in it is a candidate.
NOISE_FLOOR = 1e-3


@dataclass(frozen=True)
class ChangePoint:
    """A step in a history: the level changes between point ``index - 1`` and point ``index``."""

    #: The first point at the new level (0-based, in the values given).
    index: int
    #: The medians of the segment before the change and of the segment after it.
    before: float
    after: float
    #: ``after / before - 1`` (+0.20: 20 % higher); for values that are not all positive,
    #: ``(after - before) / |before|``.
    step: float
    #: The two-sided Mann–Whitney U p-value between the two segments.
    p_value: float
    #: The points of the two segments.
    n_before: int
    n_after: int


def noise_scale(values: Sequence[float], trim: float = TRIM) -> float:
    """The noise of one point (a standard deviation, in the values' unit), robust to a few steps: the root mean
    square of the successive differences once the largest ``trim`` of them (10 %, at least one) are left out
    (a step is one large difference), corrected for that trimming as if the differences were normal, over
    sqrt(2) (a difference holds the noise of two points). 0.0 for fewer than 3 values.

    Not the median absolute deviation: a CPU's runs are bimodal (fast, or 1.4x slower three times in ten), and
    a median sees only the fast mode; the penalty would then be a fraction of the real noise and every slow
    run a candidate."""
    if len(values) < 3:
        return 0.0
    diffs = sorted(abs(b - a) for a, b in zip(values[:-1], values[1:], strict=True))
    drop = max(1, math.ceil(trim * len(diffs)))
    kept = diffs[: len(diffs) - drop]
    share = len(kept) / len(diffs)
    c = statistics.NormalDist().inv_cdf((1.0 + share) / 2.0)
    # E[X^2 | |X| <= c] for a standard normal X: the variance the kept share holds.
    held = 1.0 - 2.0 * c * math.exp(-c * c / 2.0) / math.sqrt(2.0 * math.pi) / share
    return math.sqrt(sum(d * d for d in kept) / len(kept) / held / 2.0)


def _mann_whitney(left: Sequence[float], right: Sequence[float]) -> float:
    """The two-sided Mann–Whitney U p-value of two samples (scipy's): from the exact distribution where a sample
    has 8 points or fewer, ties or not (the normal approximation scipy takes for small samples with ties says
    0.0104 for five runs wholly below five others, the exact one 0.0079); the normal approximation with the tie
    correction for larger samples."""
    from scipy.stats import mannwhitneyu

    method = "exact" if min(len(left), len(right)) <= 8 else "asymptotic"
    return float(mannwhitneyu(left, right, alternative="two-sided", method=method).pvalue)


def _step(before: float, after: float, log: bool) -> float:
    if log:
        return after / before - 1.0
    if before == 0:
        return 0.0 if after == 0 else math.copysign(math.inf, after)
    return (after - before) / abs(before)


def change_points(
    values: Sequence[float],
    *,
    alpha: float = ALPHA,
    min_step: float = MIN_STEP,
    beta: float = BETA,
    min_size: int = MIN_SIZE,
) -> list[ChangePoint]:
    """The change points of a history (``values`` in time order, finite), oldest first.

    ``alpha``: the Mann–Whitney U level a step must pass (p < alpha); ``min_step``: the smallest relative step
    (``|after / before - 1|``) reported; ``beta``: the penalty's factor (``beta * sigma**2 * log(n)``; larger:
    fewer candidates); ``min_size``: the fewest points of a segment. Values that are all positive are segmented
    on their log (a step is a ratio); otherwise as they are (a step relative to ``|before|``).
    """
    if min_size < 1:
        raise ValueError(f"a segment has at least one point, not {min_size}")
    n = len(values)
    if n < 2 * min_size or not all(math.isfinite(v) for v in values):
        return []
    import numpy as np
    import ruptures as rpt  # type: ignore[import-untyped]

    log = all(v > 0 for v in values)
    raw = np.asarray(values, dtype=float)
    signal = np.log(raw) if log else raw
    sigma = noise_scale(signal.tolist())
    floor = NOISE_FLOOR if log else NOISE_FLOOR * max(float(np.median(np.abs(raw))), 1e-12)
    penalty = beta * max(sigma, floor) ** 2 * math.log(n)
    bkps = rpt.KernelCPD(kernel="linear", min_size=min_size).fit(signal).predict(pen=penalty)
    cuts = [int(b) for b in bkps if 0 < int(b) < n]

    judged: dict[tuple[int, int, int], ChangePoint] = {}

    def judge(k: int) -> ChangePoint:
        start = cuts[k - 1] if k > 0 else 0
        end = cuts[k + 1] if k + 1 < len(cuts) else n
        key = (start, cuts[k], end)
        if key not in judged:  # a candidate is tested again only when a neighbour has gone
            left, right = raw[start : cuts[k]], raw[cuts[k] : end]
            before, after = float(np.median(left)), float(np.median(right))
            step = _step(before, after, log)
            # Tested only where the step is large enough: most candidates of a noisy history fail here, cheaply.
            p = _mann_whitney(left.tolist(), right.tolist()) if abs(step) >= min_step else 1.0
            judged[key] = ChangePoint(cuts[k], before, after, step, p, len(left), len(right))
        return judged[key]

    def prune() -> list[ChangePoint]:
        while cuts:
            points = [judge(k) for k in range(len(cuts))]
            failing = [k for k, c in enumerate(points) if not (c.p_value < alpha and abs(c.step) >= min_step)]
            if not failing:
                return points
            weakest = max(failing, key=lambda k: (points[k].p_value, -abs(points[k].step)))
            del cuts[weakest]
        return []

    for _ in range(RELOCATIONS):
        points = prune()
        moved = False
        for k in range(len(cuts)):  # each change at the best single split between its neighbours
            start = cuts[k - 1] if k > 0 else 0
            end = cuts[k + 1] if k + 1 < len(cuts) else n
            one = rpt.KernelCPD(kernel="linear", min_size=min_size).fit(signal[start:end]).predict(n_bkps=1)
            best = start + int(one[0])
            if best != cuts[k]:
                cuts[k], moved = best, True
        if not moved:
            return points
    return prune()


def trend(values: Sequence[float], window: int = 5) -> float | None:
    """The median of the last ``window`` values over the median of the first ``window`` (both at most half of
    the values): 1.20 when the history ends 20 % higher than it began. None for fewer than 2 values or a first
    median of 0."""
    k = min(window, len(values) // 2)
    if k < 1:
        return None
    first = statistics.median(values[:k])
    last = statistics.median(values[-k:])
    return last / first if first else None
