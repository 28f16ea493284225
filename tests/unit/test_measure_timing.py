"""Tests of the adaptive sampler (:mod:`pytest_dnnbench.measure.timing`) with fake clocks.

No real sleeps and no real timings: a :class:`FakeClock` is advanced by each
call of a scripted timer by exactly the time that timer reports.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dnnbench.measure.stats import summarize
from pytest_dnnbench.measure.timing import SamplingPolicy, perf_counter_timer, sample_latency

LATENCY_KEYS = {"median", "mean", "stdev", "min", "max", "p90", "p99", "n", "ci_median", "warmup", "capped", "samples"}


class FakeClock:
    """Seconds; only scripted timers move it."""

    def __init__(self, t: float = 1000.0):
        self.t = t
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.t


class ScriptedTimer:
    """Returns the scripted call times (ms) and advances the clock by each of them."""

    def __init__(
        self,
        clock: FakeClock,
        times: Callable[[int], float] | Iterable[float],
        log: list | None = None,
        overhead_s: float = 0.0,
    ):
        self.clock = clock
        if callable(times):
            self._next = times
        else:
            seq = list(times)
            self._next = lambda i: seq[i] if i < len(seq) else seq[-1]
        self.returned: list[float] = []
        self.log = log
        self.overhead_s = overhead_s

    @property
    def calls(self) -> int:
        return len(self.returned)

    def __call__(self) -> float:
        value = float(self._next(self.calls))
        self.clock.t += value / 1000.0 + self.overhead_s
        self.returned.append(value)
        if self.log is not None:
            self.log.append(("call", value))
        return value


def constant(ms: float) -> Callable[[int], float]:
    return lambda i: ms


def noisy(seed: int, lo: float = 5.0, hi: float = 15.0) -> Callable[[int], float]:
    rng = random.Random(seed)
    cache: list[float] = []

    def f(i: int) -> float:
        while len(cache) <= i:
            cache.append(rng.uniform(lo, hi))
        return cache[i]

    return f


def no_warmup(**kw) -> SamplingPolicy:
    return SamplingPolicy(warmup_min=0, warmup_max=0, **kw)


# -- warm-up ---------------------------------------------------------------------------------


def test_warmup_stops_once_stable() -> None:
    clock = FakeClock()
    # First calls are slow (autotuning, caches), then the times settle at 10 ms.
    timer = ScriptedTimer(clock, [50, 20, 10] + [10] * 100)
    res = sample_latency(timer, SamplingPolicy(warmup_min=3, stable_window=3), clock)
    # After 6 calls the windows are [50,20,10] (median 20) vs [10,10,10]: not stable;
    # after 7, [20,10,10] (10) vs [10,10,10] (10): stable.
    assert res.warmup == 7
    assert res.warmup_ms == (50.0, 20.0, 10.0, 10.0, 10.0, 10.0, 10.0)


@pytest.mark.parametrize("warmup_min", [0, 1, 6, 9, 20])
def test_warmup_takes_at_least_warmup_min_calls(warmup_min: int) -> None:
    clock = FakeClock()
    timer = ScriptedTimer(clock, constant(10.0))
    res = sample_latency(timer, SamplingPolicy(warmup_min=warmup_min, stable_window=3), clock)
    # Constant times are stable as soon as two windows exist (6 calls).
    assert res.warmup == max(warmup_min, 6)


def test_warmup_gives_up_at_warmup_max() -> None:
    clock = FakeClock()
    # Alternating 100/200 ms: the windows' medians alternate too, never stable.
    timer = ScriptedTimer(clock, lambda i: 100.0 if i % 2 == 0 else 200.0)
    policy = SamplingPolicy(warmup_min=3, warmup_max=11, max_time_s=1000.0)
    res = sample_latency(timer, policy, clock)
    assert res.warmup == 11


def test_warmup_gives_up_at_its_fraction_of_the_budget() -> None:
    clock = FakeClock()
    # 125 / 250 ms alternating (exact binary fractions): never stable.
    timer = ScriptedTimer(clock, lambda i: 125.0 if i % 2 == 0 else 250.0)
    policy = SamplingPolicy(warmup_min=3, warmup_max=1000, max_time_s=10.0, warmup_fraction=0.3)
    t0 = clock.t
    res = sample_latency(timer, policy, clock)
    warm_time = sum(res.warmup_ms) / 1000.0
    # The first check at or past 3 s stops it: 8 pairs of 0.375 s.
    assert res.warmup == 16
    assert warm_time == pytest.approx(3.0)
    assert res.elapsed_s == pytest.approx(clock.t - t0)


def test_warmup_min_is_kept_even_past_the_warmup_fraction() -> None:
    clock = FakeClock()
    timer = ScriptedTimer(clock, constant(500.0))
    policy = SamplingPolicy(warmup_min=4, max_time_s=10.0, warmup_fraction=0.1, min_samples=1)
    res = sample_latency(timer, policy, clock)
    assert res.warmup == 4


# -- sampling --------------------------------------------------------------------------------


@pytest.mark.parametrize("min_samples", [1, 10, 25])
def test_constant_times_stop_at_target_after_min_samples(min_samples: int) -> None:
    clock = FakeClock()
    timer = ScriptedTimer(clock, constant(10.0))
    res = sample_latency(timer, no_warmup(min_samples=min_samples), clock)
    assert res.stats.n == min_samples
    assert res.stop_reason == "target"
    assert res.capped is False
    assert res.stats.median == 10.0 and res.stats.ci_median == (10.0, 10.0)


def test_noisy_times_small_budget_stop_on_budget_and_are_capped() -> None:
    clock = FakeClock()
    timer = ScriptedTimer(clock, noisy(7))
    policy = SamplingPolicy(max_time_s=1.0, ci_target=0.001)
    t0 = clock.t
    res = sample_latency(timer, policy, clock)
    assert res.stop_reason == "budget"
    assert res.capped is True
    assert 1 <= res.stats.n < policy.max_samples
    # The last call may run longer than the one before it, never by more than the script's spread.
    assert clock.t - t0 <= policy.max_time_s + 0.015


def test_noisy_times_reach_a_loose_target() -> None:
    clock = FakeClock()
    timer = ScriptedTimer(clock, noisy(11, 9.5, 10.5))
    res = sample_latency(timer, no_warmup(ci_target=0.02, max_time_s=1000.0), clock)
    assert res.stop_reason == "target" and res.capped is False
    s = res.stats
    assert max(s.median - s.ci_median[0], s.ci_median[1] - s.median) / s.median <= 0.02


def test_max_samples_is_never_exceeded() -> None:
    clock = FakeClock()
    timer = ScriptedTimer(clock, noisy(3))
    policy = no_warmup(min_samples=10, max_samples=50, ci_target=1e-6, max_time_s=1e6)
    res = sample_latency(timer, policy, clock)
    assert res.stats.n == 50
    assert timer.calls == 50
    assert res.stop_reason == "max_samples" and res.capped is True


@settings(max_examples=60, deadline=None)
@given(
    times=st.lists(st.floats(min_value=0.01, max_value=400.0), min_size=1, max_size=40),
    min_samples=st.integers(1, 15),
    extra=st.integers(0, 40),
    max_time_s=st.floats(min_value=0.05, max_value=5.0),
    warmup_min=st.integers(0, 5),
    warmup_extra=st.integers(0, 10),
    ci_target=st.floats(min_value=1e-4, max_value=0.5),
)
def test_sampling_invariants(times, min_samples, extra, max_time_s, warmup_min, warmup_extra, ci_target) -> None:
    clock = FakeClock()
    timer = ScriptedTimer(clock, lambda i: times[i % len(times)])
    policy = SamplingPolicy(
        min_samples=min_samples,
        max_samples=min_samples + extra,
        max_time_s=max_time_s,
        warmup_min=warmup_min,
        warmup_max=warmup_min + warmup_extra,
        ci_target=ci_target,
    )
    res = sample_latency(timer, policy, clock)
    n = res.stats.n
    assert 1 <= n <= policy.max_samples
    assert res.warmup <= policy.warmup_max
    # Every call is kept, in order: warm-up first, then the samples.
    assert list(res.warmup_ms) + list(res.samples_ms) == timer.returned
    assert len(res.samples_ms) == n
    assert res.stats == summarize(res.samples_ms, policy.confidence)
    assert res.capped == (res.stop_reason != "target")
    assert res.stop_reason in ("target", "budget", "max_samples", "ceiling")
    # The budget never cuts the minimum: only the hard ceiling leaves a result insufficient.
    assert res.insufficient == (n < min_samples)
    assert res.insufficient == (res.stop_reason == "ceiling")
    if res.stop_reason in ("target", "budget"):
        assert n >= min_samples
    if res.stop_reason == "max_samples":
        assert n == policy.max_samples
    lat = res.latency_dict()
    assert lat["samples"] == list(res.samples_ms)


def test_every_sample_is_kept_in_order() -> None:
    clock = FakeClock()
    script = [12.0, 9.0, 30.0, 11.0, 10.0, 10.5, 9.5, 100.0, 10.0, 10.2, 9.8, 10.1]
    timer = ScriptedTimer(clock, script)
    res = sample_latency(timer, no_warmup(min_samples=12, max_samples=12), clock)
    assert res.samples_ms == tuple(script)
    assert res.latency_dict()["samples"] == script
    assert res.stats.max == 100.0  # outliers are not dropped


def test_on_sample_sees_every_sample() -> None:
    clock = FakeClock()
    seen: list[float] = []
    timer = ScriptedTimer(clock, noisy(5))
    res = sample_latency(timer, SamplingPolicy(max_time_s=0.5, min_samples=3), clock, on_sample=seen.append)
    assert seen == list(res.samples_ms)


# -- budget ----------------------------------------------------------------------------------


def test_the_budget_does_not_cut_the_minimum() -> None:
    """A slow first test (its build charged to the budget) still gets ``min_samples`` calls."""
    clock = FakeClock()
    timer = ScriptedTimer(clock, lambda i: 190.0 if i % 2 else 210.0)  # never within a 1 % interval
    policy = no_warmup(min_samples=10, max_time_s=2.0)
    res = sample_latency(timer, policy, clock, start=clock.t - 1.5)  # 1.5 s of the 2 s spent on the build
    assert res.stats.n == 10 and not res.insufficient
    assert res.stop_reason == "budget" and res.capped is True


def test_the_hard_ceiling_leaves_a_result_insufficient() -> None:
    clock = FakeClock()
    timer = ScriptedTimer(clock, constant(700.0))
    t0 = clock.t
    res = sample_latency(timer, no_warmup(min_samples=10, max_time_s=1.0), clock)
    # 4 calls end at 2.8 s; a 5th would end at 3.5 s, past the ceiling of 3 x 1 s.
    assert res.stats.n == 4
    assert res.stop_reason == "ceiling" and res.insufficient is True
    assert clock.t - t0 <= 3.0


def test_ceiling_factor_is_validated() -> None:
    with pytest.raises(ValueError, match="ceiling_factor"):
        SamplingPolicy(ceiling_factor=0.5)


def test_budget_check_stops_before_a_call_that_would_overrun() -> None:
    clock = FakeClock()
    timer = ScriptedTimer(clock, lambda i: 240.0 if i % 2 == 0 else 260.0)
    t0 = clock.t
    res = sample_latency(timer, no_warmup(min_samples=3, max_time_s=1.0), clock)
    # 4 calls end exactly at the deadline (allowed); a 5th would end 0.25 s past it.
    assert res.stats.n == 4
    assert res.stop_reason == "budget" and res.capped is True
    assert clock.t - t0 == pytest.approx(1.0)


def test_budget_check_uses_the_last_call_time() -> None:
    clock = FakeClock()
    timer = ScriptedTimer(clock, lambda i: 290.0 if i % 2 == 0 else 310.0)
    t0 = clock.t
    res = sample_latency(timer, no_warmup(min_samples=2, max_time_s=1.0), clock)
    # After 3 calls (0.9 s) a 4th would end at 1.2 s: stop, and never pass the deadline.
    assert res.stats.n == 3
    assert clock.t - t0 <= 1.0


def test_always_at_least_one_sample() -> None:
    clock = FakeClock()
    timer = ScriptedTimer(clock, constant(5000.0))  # one call is 5x the whole budget
    res = sample_latency(timer, SamplingPolicy(max_time_s=1.0), clock)
    assert res.stats.n == 1
    # A second call would end past the hard ceiling (3 x the budget): one sample, said to be too few.
    assert res.stop_reason == "ceiling" and res.capped is True and res.insufficient is True
    assert res.latency_dict()["insufficient"] is True


def test_always_at_least_one_sample_even_when_the_budget_is_spent_before() -> None:
    clock = FakeClock()
    timer = ScriptedTimer(clock, constant(10.0))
    res = sample_latency(timer, SamplingPolicy(max_time_s=1.0), clock, start=clock.t - 100.0)
    assert res.stats.n == 1
    assert res.capped is True and res.insufficient is True


def test_start_charges_earlier_time_against_the_budget() -> None:
    policy = no_warmup(min_samples=4, max_time_s=1.0)
    script = lambda i: 120.0 if i % 2 == 0 else 130.0  # noqa: E731 - never within a 1 % interval

    clock = FakeClock()
    res_now = sample_latency(ScriptedTimer(clock, script), policy, clock)

    clock = FakeClock()
    res_early = sample_latency(ScriptedTimer(clock, script), policy, clock, start=clock.t - 0.5)

    assert res_now.stats.n == 8
    assert res_early.stats.n == 4
    assert res_early.elapsed_s == pytest.approx(1.0)  # measured from ``start``
    assert res_now.elapsed_s == pytest.approx(1.0)


def test_warmup_respects_the_overall_deadline() -> None:
    clock = FakeClock()
    timer = ScriptedTimer(clock, lambda i: 100.0 if i % 2 == 0 else 200.0)
    policy = SamplingPolicy(warmup_min=30, warmup_max=50, max_time_s=1.0, min_samples=10)
    t0 = clock.t
    res = sample_latency(timer, policy, clock)
    # warmup_min is not honoured past the overall deadline; sampling still reaches the minimum
    # (the floor the budget does not cut), within the hard ceiling.
    assert res.warmup < 30
    assert res.stats.n == policy.min_samples and not res.insufficient
    assert clock.t - t0 <= policy.ceiling_factor * policy.max_time_s


# -- before_sampling -------------------------------------------------------------------------


def test_before_sampling_runs_once_between_warmup_and_first_sample() -> None:
    clock = FakeClock()
    log: list = []
    timer = ScriptedTimer(clock, [50, 20, 10] + [10] * 100, log=log)
    res = sample_latency(timer, SamplingPolicy(warmup_min=3), clock, before_sampling=lambda: log.append("start"))
    assert log.count("start") == 1
    k = log.index("start")
    assert k == res.warmup  # every warm-up call before, every timed call after
    assert len(log) - k - 1 == res.stats.n
    assert [v for _, v in log[k + 1 :]] == list(res.samples_ms)


def test_before_sampling_runs_without_warmup_too() -> None:
    clock = FakeClock()
    log: list = []
    timer = ScriptedTimer(clock, constant(1.0), log=log)
    sample_latency(timer, no_warmup(min_samples=2), clock, before_sampling=lambda: log.append("start"))
    assert log[0] == "start" and log.count("start") == 1


# -- results ---------------------------------------------------------------------------------


def test_latency_dict_has_the_record_keys() -> None:
    clock = FakeClock()
    res = sample_latency(ScriptedTimer(clock, noisy(1)), SamplingPolicy(max_time_s=0.3), clock)
    d = res.latency_dict()
    assert LATENCY_KEYS <= set(d)
    assert d["n"] == len(d["samples"]) == res.stats.n
    assert d["warmup"] == res.warmup
    assert d["capped"] is res.capped
    assert d["ci_median"] == list(res.stats.ci_median)
    assert d["median"] == res.stats.median


# -- policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_samples": 0},
        {"min_samples": 10, "max_samples": 9},
        {"ci_target": 0.0},
        {"ci_target": -0.01},
        {"ci_target": math.nan},
        {"max_time_s": 0.0},
        {"max_time_s": -1.0},
        {"max_time_s": math.nan},
        {"warmup_min": -1},
        {"warmup_min": 5, "warmup_max": 4},
        {"confidence": 0.0},
        {"confidence": 1.0},
        {"confidence": 95.0},
        {"stable_window": 0},
    ],
)
def test_policy_rejects_inconsistent_values(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SamplingPolicy(**kwargs)


def test_policy_defaults_follow_the_design() -> None:
    p = SamplingPolicy()
    assert p.min_samples == 10  # the paper's count
    assert p.ci_target == 0.01  # +-1 %
    assert p.confidence == 0.95


# -- perf_counter_timer ----------------------------------------------------------------------


def test_perf_counter_timer_returns_milliseconds() -> None:
    ticks = iter([1_000_000, 3_500_000, 10_000_000, 10_000_250])
    calls: list[str] = []

    def clock() -> int:
        calls.append("clock")
        return next(ticks)

    timer = perf_counter_timer(lambda: calls.append("fn"), clock=clock)
    assert timer() == 2.5
    assert timer() == 0.00025
    assert calls == ["clock", "fn", "clock"] * 2


# -- the reference workload (the machine's speed) ----------------------------------------------------------------


def test_the_reference_is_timed_after_every_sample_and_charged_to_the_budget() -> None:
    clock = FakeClock()
    log: list = []
    model = ScriptedTimer(clock, lambda i: 9.0 if i % 2 == 0 else 11.0, log)  # never narrow enough to stop
    ref = ScriptedTimer(clock, constant(2.0), log)
    policy = no_warmup(max_time_s=0.12, min_samples=3)
    r = sample_latency(model, policy, clock, reference=ref, reference_workload="w")
    assert model.calls == ref.calls == len(r.samples_ms) == len(r.reference_ms)
    assert log[:4] == [("call", 9.0), ("call", 2.0), ("call", 11.0), ("call", 2.0)]  # interleaved
    # 12 ms per sample with its reference: 10 samples in the 120 ms budget, not 12 (its time is charged).
    assert len(r.samples_ms) == 10 and r.elapsed_s <= 0.12 + 1e-9
    alone = FakeClock()
    assert (
        len(sample_latency(ScriptedTimer(alone, lambda i: 9.0 if i % 2 == 0 else 11.0), policy, alone).samples_ms) == 12
    )
    ref_block = r.latency_dict()["reference"]
    assert ref_block["workload"] == "w" and ref_block["median"] == 2.0 and ref_block["relative"] == pytest.approx(5.0)
    assert ref_block["samples"] == [2.0] * 10 and ref_block["relative_ci"] == [pytest.approx(4.5), pytest.approx(5.5)]


def test_the_relative_latency_follows_the_machine_not_the_samples_alone() -> None:
    """Calls 1.6x slower half of the time, the reference alike: the relative latency does not move."""
    clock = FakeClock()
    speed = lambda i: 1.6 if (i // 7) % 2 else 1.0  # noqa: E731
    model = ScriptedTimer(clock, lambda i: 10.0 * speed(i))
    ref = ScriptedTimer(clock, lambda i: 2.0 * speed(i))
    r = sample_latency(model, no_warmup(max_time_s=1.0, max_samples=40, ci_target=1e-9), clock, reference=ref,
                       reference_workload="w")  # fmt: skip
    assert max(r.samples_ms) / min(r.samples_ms) == pytest.approx(1.6)
    assert r.reference_dict()["relative"] == pytest.approx(5.0)  # type: ignore[index]


def test_without_a_reference_nothing_is_recorded_of_it() -> None:
    clock = FakeClock()
    r = sample_latency(ScriptedTimer(clock, constant(3.0)), no_warmup(max_samples=5, min_samples=3), clock)
    assert r.reference_ms == () and r.reference_dict() is None and "reference" not in r.latency_dict()
