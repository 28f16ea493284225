"""Adaptive latency sampling (pure: no torch, no pytest).

A *timer* is a zero-argument callable that runs the model once and returns
the elapsed time of that call in milliseconds (CPU: ``perf_counter_ns`` around
the call; CUDA: events, see :mod:`pytest_dnnbench.measure.backends`). The
sampler warms up until call times are stable, then samples until the median's
confidence interval is narrow enough or the time budget runs out. Every sample
is kept. The budget clock is injectable so that tests can use a fake clock.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .stats import LatencyStats, ci_half_width, summarize

if TYPE_CHECKING:
    from ..jsontypes import JsonObject

Timer = Callable[[], float]
Clock = Callable[[], float]

__all__ = ["SamplingPolicy", "TimingResult", "sample_latency", "perf_counter_timer"]


@dataclass(frozen=True)
class SamplingPolicy:
    """How long to warm up and how many samples to take.

    - warm-up: at least ``warmup_min`` calls (the first call of a new shape runs
      cuDNN's autotuner when ``cudnn.benchmark`` is on), then on until the median
      of the last ``stable_window`` calls is within ``warmup_tolerance`` of the
      median of the window before, at most ``warmup_max`` calls or
      ``warmup_fraction`` of the budget;
    - sampling: at least ``min_samples`` (the paper's 10), then on until the
      relative half-width of the median's ``confidence`` interval is at most
      ``ci_target``, ``max_samples`` is reached, or the budget ``max_time_s``
      (warm-up included) runs out. Stopping for any reason but the target marks
      the result ``capped``.
    - the minimum is a floor the budget does not cut: below ``min_samples``,
      sampling goes on past the budget, up to a hard ceiling of
      ``ceiling_factor`` times the budget (a model whose single call outlasts
      the budget cannot stall a run). A result that still has fewer than
      ``min_samples`` samples is ``insufficient``.
    """

    min_samples: int = 10
    max_samples: int = 5000
    ci_target: float = 0.01
    confidence: float = 0.95
    max_time_s: float = 10.0
    warmup_min: int = 3
    warmup_max: int = 50
    warmup_tolerance: float = 0.05
    warmup_fraction: float = 0.3
    stable_window: int = 3
    #: The hard ceiling, as a multiple of ``max_time_s``, up to which sampling goes on to reach ``min_samples``.
    ceiling_factor: float = 3.0

    def __post_init__(self) -> None:
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, got {self.min_samples}")
        if self.max_samples < self.min_samples:
            raise ValueError(f"max_samples ({self.max_samples}) is below min_samples ({self.min_samples})")
        if not 0 < self.ci_target:
            raise ValueError(f"ci_target must be positive, got {self.ci_target}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be within (0, 1), got {self.confidence}")
        if self.stable_window < 1:
            raise ValueError(f"stable_window must be at least 1, got {self.stable_window}")
        if not self.max_time_s > 0:
            raise ValueError(f"max_time_s must be positive, got {self.max_time_s}")
        if not self.ceiling_factor >= 1.0:
            raise ValueError(f"ceiling_factor must be at least 1 (the budget itself), got {self.ceiling_factor}")
        if self.warmup_min < 0 or self.warmup_max < self.warmup_min:
            raise ValueError(f"warm-up bounds are inconsistent: min {self.warmup_min}, max {self.warmup_max}")


@dataclass(frozen=True)
class TimingResult:
    samples_ms: tuple[float, ...]
    warmup_ms: tuple[float, ...]
    stats: LatencyStats
    capped: bool
    stop_reason: str  # "target" | "budget" | "max_samples" | "ceiling"
    elapsed_s: float
    ci_target: float
    #: Fewer samples than the policy's minimum: the hard ceiling stopped sampling first.
    insufficient: bool = False
    #: The reference workload's time after each timed call (:mod:`.reference`), empty where none was timed.
    reference_ms: tuple[float, ...] = ()
    reference_workload: str | None = None

    def reference_dict(self) -> JsonObject | None:
        """``latency_ms.reference``: the workload, its median, and the model's latency in units of it (the median
        of the per-call ratios, with its 95 % interval); None where no reference was timed."""
        pairs = [(s, r) for s, r in zip(self.samples_ms, self.reference_ms, strict=False) if s > 0 and r > 0]
        if not pairs or self.reference_workload is None:
            return None
        ratios = summarize([s / r for s, r in pairs])
        return {
            "workload": self.reference_workload,
            "median": statistics.median(r for _, r in pairs),
            "relative": ratios.median,
            "relative_ci": list(ratios.ci_median),
            "samples": list(self.reference_ms),
        }

    @property
    def warmup(self) -> int:
        return len(self.warmup_ms)

    def latency_dict(self) -> JsonObject:
        """The ``latency_ms`` block of a results record (docs/usage.md, "Results file")."""
        d = self.stats.as_dict()
        d.update(
            warmup=self.warmup,
            capped=self.capped,
            stop_reason=self.stop_reason,
            insufficient=self.insufficient,
            ci_target=self.ci_target,
            samples=list(self.samples_ms),
            warmup_samples=list(self.warmup_ms),
        )
        reference = self.reference_dict()
        if reference is not None:
            d["reference"] = reference
        return d


def perf_counter_timer(fn: Callable[[], object], clock: Callable[[], int] = time.perf_counter_ns) -> Timer:
    """Time one call of ``fn`` on the host clock, in milliseconds."""

    def once() -> float:
        t0 = clock()
        fn()
        t1 = clock()
        return (t1 - t0) / 1e6

    return once


def _stable(times: list[float], window: int, tolerance: float) -> bool:
    if len(times) < 2 * window:
        return False
    last = statistics.median(times[-window:])
    before = statistics.median(times[-2 * window : -window])
    return before > 0 and abs(last - before) / before <= tolerance


def warm_up(timer: Timer, policy: SamplingPolicy, clock: Clock, deadline: float) -> list[float]:
    """Call ``timer`` until times are stable; returns the warm-up times."""
    times: list[float] = []
    warm_deadline = clock() + policy.warmup_fraction * policy.max_time_s
    warm_deadline = min(warm_deadline, deadline)
    while len(times) < policy.warmup_max:
        if len(times) >= policy.warmup_min and (
            _stable(times, policy.stable_window, policy.warmup_tolerance) or clock() >= warm_deadline
        ):
            break
        if len(times) >= 1 and clock() >= deadline:
            break
        times.append(timer())
    return times


def _check_due(n: int, min_samples: int) -> bool:
    """Recompute the interval every sample at first, then every ~5 % more samples."""
    if n < min_samples:
        return False
    step = max(1, n // 20)
    return (n - min_samples) % step == 0


def sample_latency(
    timer: Timer,
    policy: SamplingPolicy = SamplingPolicy(),
    clock: Clock = time.monotonic,
    on_sample: Callable[[float], None] | None = None,
    start: float | None = None,
    before_sampling: Callable[[], None] | None = None,
    reference: Timer | None = None,
    reference_workload: str | None = None,
) -> TimingResult:
    """Warm up, then sample ``timer`` adaptively (see :class:`SamplingPolicy`).

    ``start`` is when the budget began (default: now); passing an earlier
    time lets the caller charge work done before, such as building the model.
    ``before_sampling`` runs between warm-up and the first timed call (memory
    probes reset their peaks there).
    """
    t0 = clock() if start is None else start
    deadline = t0 + policy.max_time_s
    warm = warm_up(timer, policy, clock, deadline)
    if before_sampling is not None:
        # Preparing the memory probe (gc, malloc_trim) is not the model's time: not charged.
        t_prep = clock()
        before_sampling()
        deadline += clock() - t_prep
    # Below the minimum, sampling goes on past the budget up to the hard ceiling.
    ceiling = deadline + (policy.ceiling_factor - 1.0) * policy.max_time_s
    samples: list[float] = []
    refs: list[float] = []
    reason = "max_samples"
    while len(samples) < policy.max_samples:
        now = clock()
        last = samples[-1] if samples else (warm[-1] if warm else 0.0)
        if refs:
            last += refs[-1]
        # Stop before a call that would run past the budget (or, below the minimum, past the
        # ceiling): a huge model must not stall a run. At least one sample is always taken.
        limit = deadline if len(samples) >= policy.min_samples else ceiling
        if samples and now + last / 1000.0 > limit:
            reason = "budget" if limit == deadline else "ceiling"
            break
        value = timer()
        samples.append(value)
        if reference is not None:
            refs.append(reference())
        if on_sample is not None:
            on_sample(value)
        if _check_due(len(samples), policy.min_samples):
            s = summarize(samples, policy.confidence)
            if ci_half_width(s.median, s.ci_median) <= policy.ci_target:
                reason = "target"
                break
    stats = summarize(samples, policy.confidence)
    capped = reason != "target"
    return TimingResult(
        samples_ms=tuple(samples),
        warmup_ms=tuple(warm),
        stats=stats,
        capped=capped,
        stop_reason=reason,
        elapsed_s=clock() - t0,
        ci_target=policy.ci_target,
        insufficient=len(samples) < policy.min_samples,
        reference_ms=tuple(refs),
        reference_workload=reference_workload if refs else None,
    )
