"""Line fits behind the paper's Figures 3 and 4 (pure Python, no numpy needed).

- :func:`least_squares`: the ordinary least-squares line ``y = a + b x``.
- :func:`upper_bound`: Fig. 3's linear upper bound: the line ``y = a + b x`` lying on or above
  every point that minimises the total vertical distance ``sum(a + b x_i - y_i)``. That is a
  linear program; its objective equals ``n * (a + b * mean(x)) - sum(y)``, so the optimum is the
  lowest line above all points *at the mean of x*: the edge of the upper convex hull spanning
  ``mean(x)``. Solving it on the hull is exact (no solver tolerance, no scipy needed);
  ``tests/unit/test_report_fits.py`` checks it against ``scipy.optimize.linprog`` where scipy is
  installed.
- :func:`two_lines`: Fig. 4's two-line fit, by alternately assigning each point to the nearer
  line (vertical distance) and refitting each group by least squares.

Each returns a :class:`Fit` (or :class:`TwoLineFit`) whose ``ok`` is False, with the reason in
``note``, when there are too few points (or too little spread) for the line to mean anything:
a caller draws nothing then and prints the note instead of a wrong line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Fit", "TwoLineFit", "least_squares", "upper_bound", "two_lines", "upper_hull"]


@dataclass(frozen=True)
class Fit:
    """``y = intercept + slope * x`` (when ``ok``), fitted on ``n`` points."""

    intercept: float | None
    slope: float | None
    n: int
    note: str | None = None
    sse: float | None = None

    @property
    def ok(self) -> bool:
        return self.intercept is not None and self.slope is not None

    def __call__(self, x: float) -> float:
        intercept, slope = self.intercept, self.slope
        if intercept is None or slope is None:  # not self.ok
            raise ValueError(f"no line: {self.note}")
        return intercept + slope * x

    def describe(self, x_name: str = "x", y_name: str = "y", digits: int = 4) -> str:
        intercept, slope = self.intercept, self.slope
        if intercept is None or slope is None:  # not self.ok
            return f"no line ({self.note})"
        sign = "-" if slope < 0 else "+"
        return (
            f"{y_name} = {_g(intercept, digits)} {sign} {_g(abs(slope), digits)}·{x_name}"
            f"  (a = {_g(intercept, digits)}, b = {_g(slope, digits)}, n = {self.n})"
        )


@dataclass(frozen=True)
class TwoLineFit:
    """Two lines and which points each one took (indices into the input)."""

    lines: tuple[Fit, ...]
    groups: tuple[tuple[int, ...], ...]
    n: int
    note: str | None = None
    sse: float | None = None
    #: The one least-squares line's residual sum of squares, for comparison.
    sse_one_line: float | None = None
    iterations: int = 0
    #: True when two lines explain the points clearly better than one (see :func:`two_lines`).
    distinct: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return len(self.lines) == 2 and all(f.ok for f in self.lines)


def _g(v: float, digits: int) -> str:
    return format(v, f".{digits}g")


def _finite_pairs(xs: Sequence[float | None], ys: Sequence[float | None]) -> list[tuple[float, float]]:
    if len(xs) != len(ys):
        raise ValueError(f"x and y differ in length ({len(xs)} vs {len(ys)})")
    pts = []
    for x, y in zip(xs, ys, strict=True):
        if x is None or y is None:
            continue
        x, y = float(x), float(y)
        if math.isfinite(x) and math.isfinite(y):
            pts.append((x, y))
    return pts


def _spread(values: Sequence[float]) -> float:
    return max(values) - min(values) if values else 0.0


def _distinct_x(pts: Sequence[tuple[float, float]]) -> int:
    if not pts:
        return 0
    scale = max(1.0, max(abs(x) for x, _ in pts))
    xs = sorted(x for x, _ in pts)
    count = 1
    for prev, cur in zip(xs, xs[1:], strict=False):
        if cur - prev > 1e-12 * scale:
            count += 1
    return count


def least_squares(xs: Sequence[float | None], ys: Sequence[float | None], *, min_points: int = 2) -> Fit:
    """Ordinary least squares ``y = a + b x``; points with a missing or non-finite coordinate are dropped."""
    pts = _finite_pairs(xs, ys)
    n = len(pts)
    if n < max(2, min_points):
        return Fit(None, None, n, note=f"too few points for a line ({n}; at least {max(2, min_points)} needed)")
    if _distinct_x(pts) < 2:
        return Fit(None, None, n, note="all points have the same x: no line through them is determined")
    mx = math.fsum(x for x, _ in pts) / n
    my = math.fsum(y for _, y in pts) / n
    sxx = math.fsum((x - mx) ** 2 for x, _ in pts)
    sxy = math.fsum((x - mx) * (y - my) for x, y in pts)
    slope = sxy / sxx
    intercept = my - slope * mx
    sse = math.fsum((y - intercept - slope * x) ** 2 for x, y in pts)
    return Fit(intercept, slope, n, sse=sse)


def upper_hull(pts: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Vertices of the upper convex hull, left to right (Andrew's monotone chain).

    Of points sharing an x only the highest can be on the upper hull; collinear middle points
    are dropped.
    """
    best: dict[float, float] = {}
    for x, y in pts:
        if x not in best or y > best[x]:
            best[x] = y
    hull: list[tuple[float, float]] = []
    for p in sorted(best.items()):
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], p) >= 0:
            hull.pop()
        hull.append(p)
    return hull


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def upper_bound(xs: Sequence[float | None], ys: Sequence[float | None], *, min_points: int = 3) -> Fit:
    """The line on or above every point with the least total vertical distance to them (Fig. 3).

    Exact: the optimum is the upper-hull edge whose x-range contains ``mean(x)``. Where the mean
    falls on a hull vertex every line through that vertex between its two edges is optimal; the
    left edge is returned then (``note`` says the optimum is not unique). ``sse`` holds the
    total vertical distance (the LP's objective), not a sum of squares.
    """
    pts = _finite_pairs(xs, ys)
    n = len(pts)
    if n < max(2, min_points):
        return Fit(None, None, n, note=f"too few points for an upper bound ({n}; at least {max(2, min_points)} needed)")
    if _distinct_x(pts) < 2:
        return Fit(None, None, n, note="all points have the same x: the bound is not determined")
    hull = upper_hull(pts)
    mx = math.fsum(x for x, _ in pts) / n
    note = None
    chosen = None
    for (x0, y0), (x1, y1) in zip(hull, hull[1:], strict=False):
        if x0 <= mx <= x1:
            chosen = (x0, y0, x1, y1)
            if mx == x1 and (x1, y1) != hull[-1]:
                note = "optimum not unique (mean x on a hull vertex): the left edge is shown"
            break
    if chosen is None:  # rounding put the mean just outside the hull's x-range
        (x0, y0), (x1, y1) = (hull[0], hull[1]) if mx < hull[0][0] else (hull[-2], hull[-1])
        chosen = (x0, y0, x1, y1)
    x0, y0, x1, y1 = chosen
    slope = (y1 - y0) / (x1 - x0)
    intercept = y0 - slope * x0
    # Exact in exact arithmetic; lift by any rounding so that no point is above the line.
    lift = max(0.0, max(y - (intercept + slope * x) for x, y in pts))
    intercept += lift
    gap = math.fsum(intercept + slope * x - y for x, y in pts)
    return Fit(intercept, slope, n, note=note, sse=gap)


def two_lines(
    xs: Sequence[float | None],
    ys: Sequence[float | None],
    *,
    min_group: int = 3,
    max_iter: int = 100,
    distinct_ratio: float = 0.5,
    min_gap: float = 0.05,
) -> TwoLineFit:
    """Two lines by alternating assignment and refit (Fig. 4).

    Starts from the one least-squares line: points above it form one group, points on or below
    it the other; then each line is refitted to its group and every point goes to the line
    nearer to it vertically, until no point changes group. Each group needs ``min_group`` points
    (with two distinct x) so that each line is over-determined. ``distinct`` is True when the
    two lines' residual sum of squares is at most ``distinct_ratio`` times the one line's and
    the lines are at least ``min_gap`` times the spread of y apart at the mean x: only then do
    the points "fall into two groups" (noise alone always splits a little better than one line).
    """
    pts = _finite_pairs(xs, ys)
    idx = [
        i
        for i, (x, y) in enumerate(zip(xs, ys, strict=True))
        if x is not None and y is not None and math.isfinite(float(x)) and math.isfinite(float(y))
    ]
    n = len(pts)
    need = 2 * min_group
    if n < need:
        return TwoLineFit((), (), n, note=f"too few points for two lines ({n}; at least {need} needed)")
    one = least_squares([p[0] for p in pts], [p[1] for p in pts])
    if not one.ok:
        return TwoLineFit((), (), n, note=one.note)
    assign = [0 if y > one(x) else 1 for x, y in pts]
    lines: list[Fit] = []
    iterations = 0
    for iterations in range(1, max_iter + 1):
        groups = [[k for k in range(n) if assign[k] == g] for g in (0, 1)]
        if any(len(g) < min_group for g in groups):
            return TwoLineFit(
                (),
                (),
                n,
                note=f"the points do not form two groups of at least {min_group}",
                sse_one_line=one.sse,
                iterations=iterations,
            )
        lines = [least_squares([pts[k][0] for k in g], [pts[k][1] for k in g]) for g in groups]
        if not all(f.ok for f in lines):
            return TwoLineFit(
                (), (), n, note="a group has all its points at one x", sse_one_line=one.sse, iterations=iterations
            )
        new = [0 if abs(y - lines[0](x)) <= abs(y - lines[1](x)) else 1 for x, y in pts]
        if new == assign:
            break
        assign = new
    groups = [[k for k in range(n) if assign[k] == g] for g in (0, 1)]
    # Order the lines by intercept, highest first (the paper: 910 MB, then 639 MB).
    order = sorted((0, 1), key=lambda g: -(lines[g].intercept or 0.0))
    lines = [lines[g] for g in order]
    groups = [groups[g] for g in order]
    sse = math.fsum(f.sse or 0.0 for f in lines)
    mx = math.fsum(p[0] for p in pts) / n
    gap = abs(lines[0](mx) - lines[1](mx))
    distinct = (
        one.sse is not None
        and one.sse > 0
        and sse <= distinct_ratio * one.sse
        and gap >= min_gap * _spread([p[1] for p in pts])
    )
    return TwoLineFit(
        tuple(lines),
        tuple(tuple(idx[k] for k in g) for g in groups),
        n,
        sse=sse,
        sse_one_line=one.sse,
        iterations=iterations,
        distinct=bool(distinct),
        note=None if distinct else "two lines explain the points little better than one",
    )
