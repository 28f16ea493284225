"""Unit and property tests of :mod:`pytest_dnnbench.measure.stats` (pure, no torch)."""

from __future__ import annotations

import math
import random
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dnnbench.measure.stats import (
    _largest_rank,
    _z,
    ci_half_width,
    median_ci,
    percentile,
    summarize,
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)


def _binom_cdf(k: int, n: int) -> float:
    """P(B <= k), B ~ Binomial(n, 1/2), exactly (integers) then divided."""
    if k < 0:
        return 0.0
    return sum(math.comb(n, i) for i in range(0, k + 1)) / 2**n


# -- percentile ------------------------------------------------------------------------------


@given(st.lists(finite, min_size=1, max_size=60), st.floats(min_value=0.0, max_value=100.0))
def test_percentile_matches_numpy_default(values: list[float], q: float) -> None:
    s = sorted(values)
    expected = float(np.percentile(np.asarray(s, dtype=float), q))
    assert percentile(s, q) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@given(st.lists(finite, min_size=1, max_size=40))
def test_percentile_bounds_and_monotone(values: list[float]) -> None:
    s = sorted(values)
    assert percentile(s, 0) == s[0]
    assert percentile(s, 100) == s[-1]
    qs = [0, 10, 25, 50, 75, 90, 99, 100]
    ps = [percentile(s, q) for q in qs]
    assert ps == sorted(ps)
    assert all(s[0] <= p <= s[-1] for p in ps)


def test_percentile_known_values() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([0.0, 10.0], 90) == pytest.approx(9.0)
    assert percentile(list(range(101)), 99) == 99.0
    assert percentile([7.0], 37.5) == 7.0


@pytest.mark.parametrize("q", [-0.1, 100.1, math.nan])
def test_percentile_rejects_bad_q(q: float) -> None:
    with pytest.raises(ValueError, match="0..100"):
        percentile([1.0, 2.0], q)


def test_percentile_rejects_empty() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


# -- median_ci -------------------------------------------------------------------------------


@given(st.lists(finite, min_size=1, max_size=300))
def test_median_ci_is_a_pair_of_samples_around_the_median(values: list[float]) -> None:
    s = sorted(values)
    lo, hi = median_ci(s)
    assert lo in s and hi in s
    assert lo <= statistics.median(s) <= hi
    # The interval is symmetric in ranks: x_(j) and x_(n+1-j).
    j = s.index(lo) + 1 if s.count(lo) == 1 else None
    if j is not None and s.count(hi) == 1:
        assert len(s) - s.index(hi) == j


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_median_ci_small_n_is_the_whole_range(n: int) -> None:
    s = [float(10 * i + 1) for i in range(n)]
    assert median_ci(s) == (s[0], s[-1])


@pytest.mark.parametrize(("n", "lo_rank", "hi_rank"), [(10, 2, 9), (100, 40, 61), (6, 1, 6), (9, 2, 8)])
def test_median_ci_exact_95_percent_ranks(n: int, lo_rank: int, hi_rank: int) -> None:
    s = [float(i) for i in range(1, n + 1)]  # value == 1-based rank
    assert median_ci(s, 0.95) == (float(lo_rank), float(hi_rank))


@pytest.mark.parametrize("n", [6, 7, 10, 11, 30, 99, 100, 101, 500, 1999, 2000])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_largest_rank_is_the_largest_with_enough_coverage(n: int, confidence: float) -> None:
    alpha_half = (1 - confidence) / 2
    j = _largest_rank(n, alpha_half)
    # P(B < j) <= alpha/2, and j + 1 would break it: the interval is as narrow as allowed.
    assert _binom_cdf(j - 1, n) <= alpha_half + 1e-12
    assert _binom_cdf(j, n) > alpha_half - 1e-12


def test_median_ci_narrows_in_ranks_as_n_grows() -> None:
    fractions = []
    for n in (10, 30, 100, 300, 1000, 2000, 5000, 20000):
        s = list(range(n))
        lo, hi = median_ci(s)
        fractions.append((hi - lo + 1) / n)
    assert fractions == sorted(fractions, reverse=True)
    assert fractions[-1] < 0.02


def test_median_ci_narrows_for_iid_data() -> None:
    rng = random.Random(1234)
    widths = []
    for n in (20, 200, 2000):
        s = sorted(rng.gauss(10.0, 1.0) for _ in range(n))
        lo, hi = median_ci(s)
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2] > 0


def test_median_ci_coverage_monte_carlo() -> None:
    rng = random.Random(20240601)
    true_median = math.log(2.0)  # Exp(1)
    draws, n, hits = 2000, 30, 0
    for _ in range(draws):
        s = sorted(rng.expovariate(1.0) for _ in range(n))
        lo, hi = median_ci(s)
        hits += lo <= true_median <= hi
    assert hits / draws >= 0.93


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5])
def test_median_ci_rejects_bad_confidence(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        median_ci([1.0, 2.0, 3.0], confidence)


def test_median_ci_rejects_empty() -> None:
    with pytest.raises(ValueError, match="no values"):
        median_ci([])


def test_normal_approximation_agrees_with_exact_near_the_boundary() -> None:
    z = _z(0.95)
    for n in range(2000, 2101):
        exact = _largest_rank(n, 0.025)
        approx = int(math.floor(n / 2.0 - z * math.sqrt(n) / 2.0))
        # Within one rank, and never narrower than the exact interval (conservative).
        assert exact - 1 <= approx <= exact, n


@pytest.mark.parametrize("n", [2001, 2002, 2017, 2050, 2099, 3000])
def test_median_ci_large_n_uses_conservative_ranks(n: int) -> None:
    s = [float(i) for i in range(1, n + 1)]  # value == 1-based rank
    lo, hi = median_ci(s)
    j = int(lo)
    assert hi == n + 1 - j
    exact = _largest_rank(n, 0.025)
    assert exact - 1 <= j <= exact
    # Coverage of the returned interval is at least the confidence asked for.
    assert 1 - 2 * _binom_cdf(j - 1, n) >= 0.95


# -- ci_half_width ---------------------------------------------------------------------------


def test_ci_half_width() -> None:
    assert ci_half_width(10.0, (9.0, 10.5)) == pytest.approx(0.1)
    assert ci_half_width(10.0, (9.9, 12.0)) == pytest.approx(0.2)
    assert ci_half_width(10.0, (10.0, 10.0)) == 0.0
    assert ci_half_width(0.0, (0.0, 0.0)) == math.inf


# -- summarize -------------------------------------------------------------------------------


@given(st.lists(positive, min_size=1, max_size=200))
@settings(deadline=None)
def test_summarize_matches_statistics_module(values: list[float]) -> None:
    s = summarize(values)
    assert s.n == len(values)
    assert s.median == statistics.median(values)
    assert s.mean == pytest.approx(statistics.fmean(values))
    if len(values) > 1:
        assert s.stdev == pytest.approx(statistics.stdev(values), rel=1e-9, abs=1e-12)
    else:
        assert s.stdev == 0.0
    assert s.min == min(values) and s.max == max(values)
    srt = sorted(values)
    assert s.p90 == percentile(srt, 90) and s.p99 == percentile(srt, 99)
    assert s.ci_median == median_ci(srt)
    assert s.min <= s.ci_median[0] <= s.median <= s.ci_median[1] <= s.max


def test_summarize_unsorted_input_and_dict() -> None:
    s = summarize([3, 1, 2, 5, 4])
    assert (s.median, s.min, s.max, s.n) == (3.0, 1.0, 5.0, 5)
    d = s.as_dict()
    assert set(d) == {"median", "mean", "stdev", "min", "max", "p90", "p99", "n", "ci_median"}
    assert d["ci_median"] == [1.0, 5.0]
    assert all(isinstance(d[k], float) for k in d if k not in ("n", "ci_median"))


def test_summarize_rejects_empty() -> None:
    with pytest.raises(ValueError, match="no samples"):
        summarize([])
