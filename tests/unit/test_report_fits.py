"""The fits behind Figures 3 and 4, on data with known answers, and their properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pytest_dnnbench.report.fits import least_squares, two_lines, upper_bound, upper_hull

#: Titan Xp, batch 1 (Bianco et al. Table 1: ms per image) and the Top-1 of the paper's Table 3,
#: for the 26 models whose Top-1 the paper prints. The paper's bound: a = 83.3, b = -0.0244.
TITAN_XP_B1 = [
    ("bninception", 5.79, 73.48),
    ("googlenet", 4.54, 66.45),
    ("squeezenet1_1", 1.6, 58.18),
    ("resnet18", 1.79, 69.64),
    ("resnet34", 3.11, 73.27),
    ("resnet50", 5.1, 76.01),
    ("resnet101", 8.9, 77.31),
    ("resnet152", 14.31, 78.25),
    ("inception_v3", 10.1, 77.5),
    ("inception_v4", 18.96, 80.1),
    ("inception_resnet_v2", 25.94, 80.28),
    ("densenet121", 8.93, 74.47),
    ("xception", 6.44, 78.79),
    ("dpn68", 10.68, 75.95),
    ("dpn98", 22.31, 79.23),
    ("dpn131", 29.7, 79.44),
    ("se_resnet50", 8.32, 77.61),
    ("se_resnet101", 15.1, 78.42),
    ("senet154", 53.8, 81.32),
    ("se_resnext50_32x4d", 12.06, 79.11),
    ("se_resnext101_32x4d", 24.96, 80.28),
    ("nasnetalarge", 32.3, 82.5),
    ("nasnetamobile", 22.36, 74.1),
    ("mobilenet_v1", 2.45, 69.52),
    ("mobilenet_v2", 3.34, 71.81),
    ("fbresnet152", 14.55, 77.44),
]


def test_least_squares_recovers_a_known_line() -> None:
    xs = [0.0, 1.0, 2.0, 5.0, 10.0]
    fit = least_squares(xs, [3.0 - 0.5 * x for x in xs])
    assert fit.ok and fit.n == 5
    assert fit.intercept == pytest.approx(3.0) and fit.slope == pytest.approx(-0.5)
    assert fit.sse == pytest.approx(0.0, abs=1e-12)


def test_least_squares_known_noisy_answer() -> None:
    # y = 1 + 2x with residuals +1, -1, -1, +1 (orthogonal to 1 and x): the fit is exactly 1 + 2x.
    xs = [0.0, 1.0, 2.0, 3.0]
    ys = [1 + 2 * x + r for x, r in zip(xs, [1, -1, -1, 1], strict=True)]
    fit = least_squares(xs, ys)
    assert (fit.intercept, fit.slope) == (pytest.approx(1.0), pytest.approx(2.0))
    assert fit.sse == pytest.approx(4.0)


@pytest.mark.parametrize(
    "xs, ys, why",
    [
        ([], [], "too few points"),
        ([1.0], [2.0], "too few points"),
        ([2.0, 2.0, 2.0], [1.0, 2.0, 3.0], "same x"),
        ([1.0, None, float("nan")], [1.0, 2.0, 3.0], "too few points"),
    ],
)
def test_least_squares_says_too_few_points(xs, ys, why) -> None:
    fit = least_squares(xs, ys)
    assert not fit.ok and why in fit.note
    with pytest.raises(ValueError):
        fit(1.0)


def test_upper_bound_of_a_known_envelope() -> None:
    # Upper hull: (0, 10) - (4, 8) - (10, 2); mean x = 4.4 lies on the right edge: y = 12 - x.
    pts = [(0, 10), (4, 8), (10, 2), (2, 5), (5, 6), (8, 1), (6, 3)]
    fit = upper_bound([p[0] for p in pts], [p[1] for p in pts])
    assert fit.ok and fit.n == len(pts)
    assert fit.intercept == pytest.approx(12.0) and fit.slope == pytest.approx(-1.0)
    assert all(fit(x) >= y - 1e-9 for x, y in pts)
    # The objective: total vertical distance.
    assert fit.sse == pytest.approx(sum(12 - x - y for x, y in pts))


def test_upper_bound_left_edge() -> None:
    pts = [(0, 10), (1, 9.5), (2, 9), (10, 0), (1, 0), (0.5, 1)]  # mean x = 2.4: edge (2, 9)-(10, 0)
    fit = upper_bound([p[0] for p in pts], [p[1] for p in pts])
    assert fit.slope == pytest.approx(-9 / 8) and fit.intercept == pytest.approx(9 + 2 * 9 / 8)


def test_upper_bound_reproduces_the_paper_on_the_titan_xp() -> None:
    """From the paper's own figures the bound is the paper's: a = 83.3, b = -0.0244."""
    fps = [1000.0 / ms for _, ms, _ in TITAN_XP_B1]
    top1 = [t for _, _, t in TITAN_XP_B1]
    fit = upper_bound(fps, top1)
    assert round(fit.intercept, 1) == 83.3
    assert round(fit.slope, 4) == -0.0244


@pytest.mark.parametrize("xs, ys", [([], []), ([1.0, 2.0], [1.0, 2.0]), ([3.0, 3.0, 3.0], [1.0, 2.0, 5.0])])
def test_upper_bound_says_too_few_points(xs, ys) -> None:
    fit = upper_bound(xs, ys)
    assert not fit.ok and fit.note
    assert "no line" in fit.describe()


def test_two_lines_recover_two_known_lines() -> None:
    # The paper's Fig. 4 shape: two near-parallel lines (slopes 1.10, 1.15; intercepts 910, 639).
    xs_a = [5, 30, 90, 150, 250, 400, 530]
    xs_b = [10, 17, 45, 60, 100, 170, 320]
    xs = xs_a + xs_b
    ys = [910 + 1.10 * x for x in xs_a] + [639 + 1.15 * x for x in xs_b]
    fit = two_lines(xs, ys)
    assert fit.ok and fit.distinct, fit.note
    high, low = fit.lines
    assert (high.intercept, high.slope) == (pytest.approx(910), pytest.approx(1.10))
    assert (low.intercept, low.slope) == (pytest.approx(639), pytest.approx(1.15))
    assert sorted(fit.groups[0]) == list(range(len(xs_a)))
    assert fit.sse == pytest.approx(0.0, abs=1e-6) and fit.sse_one_line > 1000


def test_two_lines_on_one_line_are_not_distinct() -> None:
    xs = list(range(10))
    ys = [5 + 2 * x + (0.01 if x % 2 else -0.01) for x in xs]
    fit = two_lines(xs, ys)
    assert not fit.distinct and fit.note


@pytest.mark.parametrize("n", [0, 3, 5])
def test_two_lines_say_too_few_points(n) -> None:
    fit = two_lines(list(range(n)), [float(i * i) for i in range(n)])
    assert not fit.ok and "too few points" in fit.note


# -- properties ------------------------------------------------------------------------------------

coord = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(coord, coord), min_size=3, max_size=40))
@settings(max_examples=200, deadline=None)
def test_upper_bound_lies_on_or_above_every_point(pts) -> None:
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    assume(max(xs) - min(xs) > 1e-3)
    fit = upper_bound(xs, ys)
    assert fit.ok
    assert all(fit(x) >= y - 1e-9 * (1 + abs(y)) for x, y in pts)
    # Touches the hull: the least vertical gap is zero (up to rounding).
    assert min(fit(x) - y for x, y in pts) <= 1e-6 * (1 + max(abs(v) for v in ys) + abs(fit.slope) * 1e3)


@given(st.lists(st.tuples(coord, coord), min_size=3, max_size=25))
@settings(max_examples=60, deadline=None)
def test_upper_bound_is_the_linear_programs_optimum(pts) -> None:
    scipy_optimize = pytest.importorskip("scipy.optimize")
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    assume(max(xs) - min(xs) > 1e-2)
    fit = upper_bound(xs, ys)
    n = len(xs)
    # minimise n*a + b*sum(x)  s.t.  -(a + b x_i) <= -y_i
    res = scipy_optimize.linprog(
        [n, sum(xs)],
        A_ub=[[-1.0, -x] for x in xs],
        b_ub=[-y for y in ys],
        bounds=[(None, None), (None, None)],
        method="highs",
    )
    assert res.status == 0
    ours = n * fit.intercept + fit.slope * sum(xs)
    assert ours == pytest.approx(res.fun, rel=1e-6, abs=1e-5 * (1 + abs(res.fun)))


@given(coord, st.floats(-50, 50, allow_nan=False), st.lists(coord, min_size=2, max_size=30, unique=True))
@settings(max_examples=200, deadline=None)
def test_least_squares_recovers_an_exact_line(a, b, xs) -> None:
    assume(max(xs) - min(xs) > 1e-2)
    fit = least_squares(xs, [a + b * x for x in xs])
    scale = 1 + abs(a) + abs(b) * max(abs(x) for x in xs)
    assert fit.slope == pytest.approx(b, abs=1e-6 * scale)
    assert fit.intercept == pytest.approx(a, abs=1e-6 * scale)


@given(st.lists(st.tuples(coord, coord), min_size=1, max_size=30))
def test_upper_hull_is_above_all_points(pts) -> None:
    hull = upper_hull(pts)
    assert [x for x, _ in hull] == sorted({x for x, _ in hull})
    for x, y in pts:
        # Between two hull vertices the hull is above the point.
        for (x0, y0), (x1, y1) in zip(hull, hull[1:], strict=False):
            if x0 <= x <= x1:
                # The fraction first: (y1 - y0) * (x - x0) can underflow where the ratio cannot.
                assert y0 + (y1 - y0) * ((x - x0) / (x1 - x0)) >= y - 1e-6 * (1 + abs(y))
                break
    assert not math.isnan(sum(y for _, y in hull))
