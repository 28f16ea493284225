"""Regression gating: a record and its baseline entry -> typed checks (pure: no torch, no pytest).

The latency decision (:func:`compare_latency`) models the between-run spread of medians,
estimated from the baseline's rounds; memory, MACs, parameters and Top-1 are compared directly
(:func:`compare_entry`). :func:`baseline_checks` finds the entry that applies to a record (the
file of its platform, through a :class:`BaselineSource` that reads each file once) and says why
none applies where none does; :func:`summary_lines` turns a run's records into the end-of-run
section. The session calls these in a visible order; none of them knows pytest.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .baseline_store import (
    BaselineError,
    BaselineSet,
    base_key,
    load_baselines,
    record_key,
    shown_path,
)
from .jsontypes import JsonMapping, JsonObject
from .measure.stats import median_ci, t_quantile
from .record import Check, Record
from .upgrade import accuracy_parts

if TYPE_CHECKING:
    from typing import Protocol

    class HistoryBaselines(Protocol):
        """Baseline entries drawn from a history (``--dnn-baseline=store``: :class:`.store_baseline.StoreBaselines`)."""

        def where(self) -> str: ...

        def entry(self, record: Record) -> tuple[JsonObject | None, str | None]: ...

# -- the decisions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerances:
    """Relative tolerances for latency and memory, points of Top-1 for accuracy; ``alpha`` of the latency test;
    ``max_slowdown``: the hard ceiling, a ratio to the baseline that fails a quiet measurement whatever the
    baseline's spread."""

    latency: float = 0.10
    memory: float = 0.10
    top1: float = 0.5
    alpha: float = 0.01
    max_slowdown: float = 2.0


#: Prior for the between-round spread of log medians: 5 % with the weight of 2 rounds'
#: degrees of freedom. It keeps one or two lucky, close rounds from making the test
#: hair-trigger, and is outweighed as rounds accumulate.
PRIOR_SIGMA = 0.05
PRIOR_DOF = 2.0
_Z95 = 1.959963984540054
#: A baseline is too noisy when, even against a perfectly precise measurement, the smallest slowdown it
#: could flag is above this multiple of the latency tolerance (default: +20 % for a 10 % tolerance).
NOISY_FACTOR = 2.0
#: A latency is cleared (``pass``), by its own process or by fresh processes (``--dnn-confirm``), only
#: where the upper bound of their ratio to the baseline at this one-sided confidence is within the limit
#: -- also one at or below the baseline's median: on a machine whose processes fall into states 1.3-1.5x
#: apart, a +25 % slowdown on a fast state measures below the median of rounds taken on a slow one.
#: Where one process's bound is not within the limit, it is confirmed; fresh processes whose median is
#: within the limit but whose bound is not leave it ``inconclusive``. The bound counts the new
#: processes' spread only: the baseline is the reference (its own spread is what the fail test and
#: ``noisy`` account for). Simulated with a 10 % between-process spread, five rounds and 4 + 4
#: processes, 0.9 leaves about 1.5 of 20 no-change tests inconclusive and 1.3 of 20 +25 % slowdowns
#: passing; measured with ``benchmarks/false_alarms.py confirm`` (docs/baselines.md).
CLEAR_CONFIDENCE = 0.9


@dataclass(frozen=True)
class LatencyVerdict:
    regressed: bool
    stale: bool
    significant: bool
    ratio: float
    baseline_ms: float
    measured_ms: float
    limit_ms: float
    stale_limit_ms: float
    statistic: float
    threshold: float
    rounds: int
    spread: float
    dof: float
    #: The ratio to the baseline over which the hard ceiling fails a quiet measurement.
    max_slowdown: float = math.inf
    #: The smallest slowdown (as a ratio to the baseline) this comparison flags: the tolerance, or where the
    #: spread is wider the significance threshold, and never more than the hard ceiling.
    resolvable: float = math.inf
    #: The same for a perfectly precise measurement: what the baseline alone can resolve (no ceiling).
    baseline_resolvable: float = math.inf
    #: The baseline cannot resolve ``NOISY_FACTOR`` times the tolerance.
    noisy: bool = False
    #: The upper bound of this process's ratio to the baseline at :data:`CLEAR_CONFIDENCE`: its own draw of
    #: the between-process spread and its standard error (the baseline is the reference).
    upper: float = math.inf

    @property
    def over_ceiling(self) -> bool:
        return self.ratio > self.max_slowdown

    @property
    def failed(self) -> bool:
        """Regressed (beyond the tolerance and significant), or over the hard ceiling."""
        return self.regressed or self.over_ceiling

    def describe(self) -> str:
        sig = "significant" if self.significant else "not significant"
        return (
            f"t = {self.statistic:+.2f} vs critical {self.threshold:.2f} ({sig}; {self.rounds} round(s), "
            f"between-round spread {100 * self.spread:.1f} %)"
        )


def _run_log_se(samples: Sequence[float], ci: Sequence[float] | None = None) -> float:
    """Standard error of log(median) of one run, from the distribution-free 95 % interval of its median.

    With one or two calls there is no interval: half the log range, at least ``2 * PRIOR_SIGMA``.
    """
    vals = sorted(float(s) for s in samples if s is not None and s > 0)
    if 0 < len(vals) < 3:
        return max(2 * PRIOR_SIGMA, math.log(vals[-1] / vals[0]) / 2.0)
    if ci is None:
        if not vals:
            return 2 * PRIOR_SIGMA
        ci = median_ci(vals)
    lo, hi = float(ci[0]), float(ci[1])
    if lo <= 0 or hi <= 0 or hi < lo:
        return 2 * PRIOR_SIGMA
    return math.log(hi / lo) / (2 * _Z95)


def compare_latency(
    round_medians: Sequence[float],
    samples: Sequence[float],
    tolerance: float,
    alpha: float = 0.01,
    ci_median: Sequence[float] | None = None,
    measured_median: float | None = None,
    max_slowdown: float = math.inf,
) -> LatencyVerdict:
    """Is this run slower than the baseline beyond ``tolerance``, and significantly so?

    Model: the log of a run's median is a draw from ``N(mu, sigma^2)``, where sigma is the
    *between-run* spread (process start, kernel selection, machine load), estimated from the
    baseline's K round medians and pooled with a weak prior (``PRIOR_SIGMA`` with ``PRIOR_DOF``
    degrees of freedom). Under "no change" this run's log median is one more such draw, so

        t = (log m - mean(log rounds)) / sqrt(s^2 (1 + 1/K) + se^2)

    follows Student's t with ``K - 1 + PRIOR_DOF`` degrees of freedom (a prediction
    interval for a new observation), where ``se`` is this run's own standard error of its
    log median (from its median's distribution-free confidence interval: large with tiny
    samples, so that a run of three calls cannot raise an alarm on its own; counting it on
    top of the rounds' spread, which already contains the rounds' own sampling error, errs
    on the side of fewer alarms).

    Regression: ``m > B (1 + tolerance)`` *and* ``t > t_{1-alpha}``; stale baseline: ``m <
    B / (1 + tolerance)`` and ``t < -t_{1-alpha}``; B = median of the round medians.

    The verdict also says what the comparison can see: ``resolvable``, the smallest ratio to B that
    it flags (``max(1 + tolerance, exp(mean + t_{1-alpha} * scale) / B)``, at most ``max_slowdown``,
    the hard ceiling over which :attr:`LatencyVerdict.failed` holds whatever the spread), and
    ``noisy`` where the baseline alone (a precise measurement, ``se = 0``) could not flag
    ``NOISY_FACTOR`` times the tolerance.
    """
    meds = [float(m) for m in round_medians if m is not None and m > 0]
    if not meds:
        raise ValueError("no baseline round medians to compare with")
    vals = [float(s) for s in samples if s is not None and s > 0]
    if measured_median is None:
        if not vals:
            raise ValueError("no samples in this run")
        measured_median = float(statistics.median(vals))
    m = float(measured_median)
    k = len(meds)
    base = float(statistics.median(meds))
    logs = [math.log(v) for v in meds]
    mu = statistics.fmean(logs)
    s_rounds = statistics.stdev(logs) if k >= 2 else 0.0
    dof = (k - 1) + PRIOR_DOF
    s2 = ((k - 1) * s_rounds**2 + PRIOR_DOF * PRIOR_SIGMA**2) / dof
    se = _run_log_se(vals, ci_median)
    scale = math.sqrt(s2 * (1.0 + 1.0 / k) + se**2)
    stat = (math.log(m) - mu) / scale if scale > 0 else 0.0
    crit = t_quantile(1.0 - alpha, dof)
    ratio = m / base
    limit = base * (1.0 + tolerance)
    stale_limit = base / (1.0 + tolerance)
    slower = m > limit
    faster = m < stale_limit
    significant = stat > crit if slower else (stat < -crit if faster else abs(stat) > crit)
    threshold = math.exp(mu + crit * scale) / base
    baseline_only = math.exp(mu + crit * math.sqrt(s2 * (1.0 + 1.0 / k))) / base
    return LatencyVerdict(
        regressed=bool(slower and stat > crit),
        stale=bool(faster and stat < -crit),
        significant=bool(significant),
        ratio=ratio,
        baseline_ms=base,
        measured_ms=m,
        limit_ms=limit,
        stale_limit_ms=stale_limit,
        statistic=stat,
        threshold=crit,
        rounds=k,
        spread=math.sqrt(s2),
        dof=dof,
        max_slowdown=max_slowdown,
        resolvable=min(max_slowdown, max(1.0 + tolerance, threshold)),
        baseline_resolvable=max(1.0 + tolerance, baseline_only),
        noisy=baseline_only > 1.0 + NOISY_FACTOR * tolerance,
        upper=m * math.exp(t_quantile(CLEAR_CONFIDENCE, dof) * math.sqrt(s2 + se**2)) / base,
    )


@dataclass(frozen=True)
class Confirmation:
    """The latency medians of a suspicious test measured again in fresh processes (``--dnn-confirm``).

    ``medians``: one per fresh process that measured (ms per batch); ``problem``: why none could be taken
    (a model registered with a Python callable, a mode a fresh process does not run) or why some were left
    out (children that failed, a busy machine); ``seconds``: what they cost; ``left_out``: the reason for
    each process left out.
    """

    medians: tuple[float, ...] = ()
    problem: str | None = None
    seconds: float = 0.0
    left_out: tuple[str, ...] = ()
    #: Each process's latency in units of the reference workload (:mod:`.measure.reference`), in the order of
    #: ``medians``; empty where a process did not time it.
    relatives: tuple[float, ...] = ()

    def to_json(self) -> JsonObject:
        return {
            "medians": list(self.medians),
            **({"relatives": list(self.relatives)} if self.relatives else {}),
            "problem": self.problem,
            "seconds": round(self.seconds, 3),
            "left_out": len(self.left_out),
        }


#: Fewer fresh processes than this cannot confirm anything: the first verdict stands, with the reason.
MIN_CONFIRMATIONS = 2

#: The machine's drift between eras, as a spread of log medians: every process started within minutes of
#: another shares its era (the machine's state: co-tenants, clocks, the host's load), and a set of fresh
#: processes is one draw of it, however many processes it holds. A confirmation is significant only where
#: the shift of the new processes' mean log median from the rounds' clears their own spreads *and* this
#: (once for the new set's era, twice where the rounds were saved back to back and share one era too).
#: Measured on this project's 2-core VM with nothing changed: sets of 8 fresh processes 1.10-1.11x the
#: rounds they were compared with, minutes later (docs/baselines.md); 5 % puts such a shift within two
#: standard deviations of the difference of two eras.
ERA_SIGMA = 0.05


@dataclass(frozen=True)
class ConfirmationVerdict:
    """Fresh processes' medians against the baseline's rounds: each process is one draw."""

    #: ``fail`` (confirmed), ``pass`` (not confirmed: their median is within the limit) or ``inconclusive``.
    outcome: str
    ratio: float
    p_value: float
    #: The smallest p-value the rank test can give with these many rounds and processes.
    min_p: float
    #: The smallest slowdown (ratio to the baseline) this set of processes can resolve.
    resolvable: float
    spread: float
    reason: str
    #: The upper bound of the fresh processes' ratio to the baseline (:data:`CLEAR_CONFIDENCE`, their spread).
    upper: float = math.inf


def judge_confirmation(
    round_medians: Sequence[float],
    medians: Sequence[float],
    tolerance: float,
    alpha: float,
    back_to_back: bool = False,
) -> ConfirmationVerdict:
    """Is the slowdown real? The fresh processes' medians against the baseline's round medians.

    The process is the unit: a one-sided Mann-Whitney rank test (scipy) of "the new processes are
    slower than the rounds", plus the tolerance on the ratio of their medians. Three outcomes:

    - ``fail`` (confirmed): the ratio of the medians is above ``1 + tolerance``, the rank test is
      significant at ``alpha``, and so is the shift of the mean log medians against the spread of a
      difference of eras, ``t = (mean(log new) - mean(log rounds)) / sqrt(s^2 (1/K + 1/N) + e^2)`` with
      ``e^2 = ERA_SIGMA^2`` (twice that where the rounds were saved ``back_to_back``): the rank test alone
      takes a whole set of processes that landed on a slower state of the machine for a regression;
    - ``pass`` (cleared): the ratio is within the limit *and* so is ``upper``, the upper bound of the
      fresh processes' ratio, ``exp(mean(log new) + t_c * s / sqrt(N)) / B`` at
      :data:`CLEAR_CONFIDENCE`: a median just under the limit from a few scattered processes does not
      clear a test;
    - ``inconclusive`` otherwise, with what this set can resolve:
      ``exp(t_{1-alpha} * sqrt(s^2 (1/K + 1/N) + e^2))``.

    s is the between-process spread of the log medians pooled over both sets (and
    :data:`PRIOR_SIGMA`), K rounds, N processes, B the median of the rounds.
    """
    from scipy.stats import mannwhitneyu

    rounds = [float(m) for m in round_medians if m is not None and m > 0]
    new = [float(m) for m in medians if m is not None and m > 0]
    if not rounds or len(new) < MIN_CONFIRMATIONS:
        raise ValueError("no rounds, or too few fresh processes, to judge")
    k, n = len(rounds), len(new)
    base = statistics.median(rounds)
    ratio = statistics.median(new) / base
    p_value = float(mannwhitneyu(new, rounds, alternative="greater", method="exact").pvalue)
    min_p = 1.0 / math.comb(k + n, n)
    logs_r, logs_n = [math.log(v) for v in rounds], [math.log(v) for v in new]
    squares = sum((v - statistics.fmean(logs_r)) ** 2 for v in logs_r) + sum(
        (v - statistics.fmean(logs_n)) ** 2 for v in logs_n
    )
    dof = (k - 1) + (n - 1) + PRIOR_DOF
    spread = math.sqrt((squares + PRIOR_DOF * PRIOR_SIGMA**2) / dof)
    era2 = ERA_SIGMA**2 * (2.0 if back_to_back else 1.0)
    scale = math.sqrt(spread**2 * (1 / k + 1 / n) + era2)
    crit = t_quantile(1.0 - alpha, dof)
    resolvable = max(1.0 + tolerance, math.exp(crit * scale))
    upper = math.exp(statistics.fmean(logs_n) + t_quantile(CLEAR_CONFIDENCE, dof) * spread / math.sqrt(n)) / base
    limit = 1.0 + tolerance
    shift = (statistics.fmean(logs_n) - statistics.fmean(logs_r)) / scale
    significant = p_value < alpha and shift > crit
    figures = f"{n} fresh processes measured {ratio:.2f}x the baseline (Mann-Whitney p = {p_value:.2g})"

    def verdict(outcome: str, why: str) -> ConfirmationVerdict:
        return ConfirmationVerdict(outcome, ratio, p_value, min_p, resolvable, spread, why, upper)

    if ratio > limit and significant:
        return verdict("fail", f"confirmed: {figures}")
    if ratio <= limit and upper <= limit:
        return verdict("pass", f"not confirmed: {figures}, within the limit (at most {upper:.2f}x)")
    if ratio <= limit:
        return verdict(
            "inconclusive",
            f"not confirmed: {figures}, within the limit, but with this machine's between-process spread "
            f"({100 * spread:.1f} %) they cannot rule out {upper:.2f}x "
            f"({100 * CLEAR_CONFIDENCE:.0f} % bound): they resolve +{100 * (resolvable - 1):.0f} %",
        )
    if p_value < alpha:
        why = (
            f"not confirmed: {figures}, above the limit, but a shift of {100 * (ratio - 1):.0f} % is within "
            f"what two states of this machine differ by (between-process spread {100 * spread:.1f} %; "
            f"{100 * ERA_SIGMA:g} % between states"
            f"{', counted twice: the rounds were saved back to back' if back_to_back else ''}): they resolve "
            f"+{100 * (resolvable - 1):.0f} %"
        )
    elif min_p >= alpha:
        why = (
            f"not confirmed: {figures}; {k} round(s) and {n} processes can never be significant at "
            f"alpha {alpha:g} (the smallest p is {min_p:.2g}): save more baseline rounds or raise --dnn-confirm"
        )
    else:
        why = (
            f"not confirmed: {figures}, above the limit but not significant; with this machine's "
            f"between-process spread ({100 * spread:.1f} %) they resolve +{100 * (resolvable - 1):.0f} %"
        )
    return verdict("inconclusive", why)


@dataclass(frozen=True)
class MachineSpeed:
    """A latency comparison with the machine's speed divided out (docs/baselines.md, "The machine's speed").

    Every process times a fixed reference workload after each call (:mod:`.measure.reference`); a round and a
    record keep their latency in units of it (``relative``). Compared here are those, in milliseconds at the
    rounds' speed: ``relative x`` the rounds' median reference time. A process on a state of the machine 1.5x
    slower measures the model and the workload 1.5x slower alike: its relative latency does not move. A change
    of the model moves the model alone. (What it cannot see: a change that slows the workload as much as the
    model, such as a slower build of torch's convolutions; the raw ratio is shown beside.)"""

    workload: str
    #: The rounds' median reference time, and this process's.
    reference_ms: float
    measured_reference_ms: float
    #: The rounds' medians and this process's median and samples, at the rounds' speed (ms per batch).
    round_medians: tuple[float, ...]
    measured_ms: float
    samples: tuple[float, ...]
    #: This process's median over the rounds' median, as measured (the machine's speed not divided out).
    raw_ratio: float

    @property
    def slower(self) -> float:
        """How much slower the machine ran the workload in this process than in the rounds (1.5: 1.5x slower)."""
        return self.measured_reference_ms / self.reference_ms

    def at_rounds_speed(self, relatives: Sequence[float]) -> list[float]:
        return [r * self.reference_ms for r in relatives]

    def to_json(self) -> JsonObject:
        return {
            "workload": self.workload,
            "reference_ms": self.reference_ms,
            "measured_reference_ms": self.measured_reference_ms,
            "slower": self.slower,
            "raw_ratio": self.raw_ratio,
        }


def machine_speed(record: Record, rounds: Sequence[JsonMapping]) -> MachineSpeed | None:
    """The comparison at the rounds' speed, where the record and every round timed the same reference workload;
    None otherwise (a GPU, a baseline saved by an earlier version: compared as measured)."""
    ref = record.latency.reference
    if ref is None or not rounds or not ref.relative or not ref.median:
        return None
    refs = [r.get("reference") for r in rounds]
    usable = [
        x
        for x in refs
        if isinstance(x, Mapping)
        and x.get("workload") == ref.workload
        and _number(x.get("median_ms")) > 0
        and _number(x.get("relative")) > 0
    ]
    if len(usable) != len(rounds):
        return None
    base_ref = float(statistics.median(_number(x.get("median_ms")) for x in usable))
    pairs = [(s, r) for s, r in zip(record.latency.samples, ref.samples, strict=False) if s > 0 and r > 0]
    raw = [_number(r.get("median_ms")) for r in rounds]
    return MachineSpeed(
        workload=ref.workload,
        reference_ms=base_ref,
        measured_reference_ms=float(ref.median),
        round_medians=tuple(_number(x.get("relative")) * base_ref for x in usable),
        measured_ms=float(ref.relative) * base_ref,
        samples=tuple(s / r * base_ref for s, r in pairs),
        raw_ratio=float(record.latency.median) / float(statistics.median(raw)) if all(v > 0 for v in raw) else math.nan,
    )


def compare_entry(
    record: Record,
    entry: JsonMapping,
    tol: Tolerances,
    strict: bool = False,
    confirmation: Confirmation | None = None,
) -> list[Check]:
    """Baseline checks of one record against its entry: latency, memory, MACs, parameters, Top-1.

    The latency check's ``verdict`` is ``pass``, ``fail``, ``stale`` (faster beyond the tolerance: passes) or
    ``inconclusive``: the measurement was taken on a busy machine (whatever its ratio, also over the hard
    ceiling), every baseline round was, or it has fewer samples than the minimum and did not fail. An
    inconclusive check passes unless ``strict`` (``--dnn-strict``).
    """
    checks: list[Check] = []
    where = f"{record.model} at batch {record.batch_size}"
    rounds = [r for r in entry.get("rounds") or [] if isinstance(r, dict)]
    quiet = [r for r in rounds if not r.get("busy")]
    medians = [r["median_ms"] for r in (quiet or rounds)]
    if not medians and (entry.get("latency_ms") or {}).get("median"):
        medians = [entry["latency_ms"]["median"]]
    if medians and record.latency.median:
        checks.append(
            _latency_check(
                record,
                medians,
                len(rounds) - len(quiet),
                not quiet and bool(rounds),
                tol,
                strict,
                confirmation,
                back_to_back=_back_to_back(rounds) is not None,
                speed=machine_speed(record, quiet or rounds),
            )
        )
    mem_now = record.memory.get("total")
    mem_base = (entry.get("memory_bytes") or {}).get("total")
    if mem_now is not None and mem_base:
        limit = mem_base * (1.0 + tol.memory)
        ok = mem_now <= limit
        checks.append(
            Check.make(
                **{
                    "kind": "baseline",
                    "metric": "memory",
                    "baseline": mem_base,
                    "measured": mem_now,
                    "limit": limit,
                    "tolerance": tol.memory,
                    "passed": ok,
                    "ratio": mem_now / mem_base,
                    "message": (
                        f"memory of {where}: total {mem_now / 2**20:.1f} MiB ({int(mem_now):,} bytes), baseline "
                        f"{mem_base / 2**20:.1f} MiB, limit {limit / 2**20:.1f} MiB (+{100 * tol.memory:g} %)"
                        + ("" if ok else f": {mem_now / mem_base:.2f}x the baseline")
                    ),
                }
            )
        )
    for metric in ("macs", "params"):
        now, base = getattr(record, metric), entry.get(metric)
        if now is not None and base is not None:
            ok = now == base
            checks.append(
                Check.make(
                    **{
                        "kind": "baseline",
                        "metric": metric,
                        "baseline": base,
                        "measured": now,
                        "limit": base,
                        "tolerance": 0,
                        "passed": ok,
                        "message": (
                            f"{'MACs' if metric == 'macs' else 'parameters'} of {where}: {now:,} against baseline "
                            f"{base:,} (limit: no change)" + ("" if ok else f", changed by {now - base:+,}")
                        ),
                    }
                )
            )
    # Measured figures only: a published reference figure (accuracy.reference) is never compared.
    top1_now = record.accuracy.measured.top1 if record.accuracy.measured is not None else None
    top1_base = measured_top1(entry.get("accuracy"))
    if top1_now is not None and top1_base is not None:
        limit = top1_base - tol.top1
        ok = top1_now >= limit
        checks.append(
            Check.make(
                **{
                    "kind": "baseline",
                    "metric": "top1",
                    "baseline": top1_base,
                    "measured": top1_now,
                    "limit": limit,
                    "tolerance": tol.top1,
                    "passed": ok,
                    "message": (
                        f"Top-1 of {where}: {top1_now:.2f} % against baseline {top1_base:.2f} %, "
                        f"limit {limit:.2f} % (-{tol.top1:g} points)"
                    ),
                }
            )
        )
    return checks


def measured_top1(accuracy: object) -> float | None:
    """The Top-1 measured by pytest-dnnbench (``accuracy.measured.top1``, percent) of a record's or a baseline
    entry's accuracy of any version; None where none was measured (a reference figure does not count)."""
    measured, _ = accuracy_parts(accuracy)
    top1 = measured.get("top1") if measured is not None else None
    if isinstance(top1, bool) or not isinstance(top1, (int, float)):
        return None
    return float(top1)


def _latency_check(
    record: Record,
    medians: Sequence[float],
    busy_rounds: int,
    baseline_busy: bool,
    tol: Tolerances,
    strict: bool,
    confirmation: Confirmation | None = None,
    back_to_back: bool = False,
    speed: MachineSpeed | None = None,
) -> Check:
    where = f"{record.model} at batch {record.batch_size}"
    lat = record.latency
    if speed is not None:  # at the rounds' machine speed: the per-call ratios to the reference workload
        v = compare_latency(
            speed.round_medians,
            speed.samples,
            tol.latency,
            tol.alpha,
            measured_median=speed.measured_ms,
            max_slowdown=tol.max_slowdown,
        )
    else:
        v = compare_latency(
            medians,
            lat.samples,
            tol.latency,
            tol.alpha,
            ci_median=lat.ci_median,
            measured_median=lat.median,
            max_slowdown=tol.max_slowdown,
        )
    load = record.load or {}
    busy = bool(load.get("busy"))
    insufficient = bool(lat.insufficient)
    reason = None
    if busy:
        why = "; ".join(load.get("reasons") or []) or "the machine was busy"
        reason = f"measured on a busy machine ({why}): {v.ratio:.2f}x the baseline cannot be trusted either way"
    elif baseline_busy:
        reason = (
            f"{v.ratio:.2f}x the baseline, but every baseline round was recorded on a busy machine: "
            "re-record the baseline on a quiet one"
        )
    if reason is not None:
        outcome = "inconclusive"
    elif v.over_ceiling:
        outcome, reason = (
            "fail",
            (
                f"{v.ratio:.2f}x the baseline, over the hard ceiling of {v.max_slowdown:g}x (--dnn-max-slowdown), "
                "whatever the baseline's spread"
            ),
        )
    elif v.regressed:
        outcome, reason = "fail", f"{v.ratio:.2f}x the baseline, above the limit and significant"
    elif insufficient:
        outcome = "inconclusive"
        reason = (
            f"{v.ratio:.2f}x the baseline from only {lat.n} sample(s), fewer than the minimum: "
            "too few to pass a latency gate (raise --dnn-max-time)"
        )
    elif v.stale:
        outcome, reason = (
            "stale",
            (
                f"{1 / v.ratio:.2f}x faster than the baseline, beyond the tolerance and significant: "
                "the baseline is stale (save a new one)"
            ),
        )
    elif v.ratio > 1 + tol.latency:
        outcome, reason = "pass", f"{v.ratio:.2f}x the baseline, above the limit but within the between-run noise"
    else:
        outcome, reason = "pass", f"{v.ratio:.2f}x the baseline: within the limit"
    # Above the limit, quiet, under the hard ceiling: one process cannot tell a regression from a slow
    # process. Nor, within the limit, whether it is within: where the upper bound of its ratio is not (a
    # regression beyond the limit may have landed on a fast state, even below the baseline's median, where
    # the machine's between-process spread is wide). Fresh processes measure it again (--dnn-confirm) and
    # their set is judged against the rounds. On a quiet machine the bound clears a process up to about
    # 1.05x; the cost grows with the machine's spread, which is where one process says least.
    borderline = outcome == "pass" and v.upper > 1.0 + tol.latency
    suspicious = outcome in ("fail", "pass") and not v.over_ceiling and (v.ratio > 1 + tol.latency or borderline)
    confirmed: JsonObject | None = None
    if suspicious and confirmation is not None:
        confirmed = confirmation.to_json()
        if len(confirmation.medians) >= MIN_CONFIRMATIONS:
            if speed is not None and len(confirmation.relatives) == len(confirmation.medians):
                old, new = list(speed.round_medians), speed.at_rounds_speed(confirmation.relatives)
            else:  # a process without the reference: every figure as measured
                old, new = list(medians), list(confirmation.medians)
            c = judge_confirmation(old, new, tol.latency, tol.alpha, back_to_back)
            confirmed.update(
                verdict=c.outcome,
                ratio=c.ratio,
                p_value=c.p_value,
                resolution=c.resolvable - 1.0,
                spread=c.spread,
                upper=c.upper,
            )
            outcome, reason = c.outcome, f"{v.ratio:.2f}x the baseline in this process; {c.reason}"
            if confirmation.problem:
                reason += f" ({confirmation.problem})"
        else:
            reason += f"; not confirmed in fresh processes: {confirmation.problem or 'too few measured'}"
    if outcome == "inconclusive":
        reason += " -- inconclusive" + (": a failure under --dnn-strict" if strict else " (--dnn-strict fails it)")
    resolves = f"resolves +{100 * (v.resolvable - 1):.0f} %"
    if v.noisy:
        resolves += (
            f"; the baseline is too noisy: it cannot resolve +{100 * NOISY_FACTOR * tol.latency:.0f} % "
            f"(at best +{100 * (v.baseline_resolvable - 1):.0f} %): re-record it on a quiet machine"
        )
    if busy_rounds and not baseline_busy:
        resolves += f"; {busy_rounds} busy baseline round(s) left out"
    if speed is not None:
        resolves += (
            f"; at the rounds' machine speed (the reference workload ran {speed.slower:.2f}x its time in the "
            f"rounds; {speed.raw_ratio:.2f}x the baseline as measured)"
        )
    return Check.make(
        **{
            "kind": "baseline",
            "metric": "latency",
            "baseline": v.baseline_ms,
            "measured": v.measured_ms,
            "limit": v.limit_ms,
            "tolerance": tol.latency,
            "passed": outcome != "fail" and not (outcome == "inconclusive" and strict),
            "verdict": outcome,
            "stale": outcome == "stale",
            "inconclusive": outcome == "inconclusive",
            "ratio": v.ratio,
            "resolution": v.resolvable - 1.0,
            "noisy": v.noisy,
            "max_slowdown": v.max_slowdown,
            "significant": v.significant,
            "statistic": v.statistic,
            "threshold": v.threshold,
            "rounds": v.rounds,
            "spread": v.spread,
            "alpha": tol.alpha,
            "suspicious": suspicious,
            "confirmation": confirmed,
            **({"machine_speed": speed.to_json()} if speed is not None else {}),
            "message": (
                f"latency of {where}: median {v.measured_ms:.4g} ms per batch, baseline {v.baseline_ms:.4g} ms "
                f"(median of {v.rounds} round(s)), limit {v.limit_ms:.4g} ms (+{100 * tol.latency:g} %): "
                f"{reason}; {resolves}; {v.describe()}"
            ),
        }
    )


# -- which baseline applies to a record ----------------------------------------------------------

#: What a record says about its baseline (``record.baseline``): key, path, status, rounds, reason.
BaselineInfo = JsonObject


@dataclass
class BaselineSource:
    """Where baselines come from in this run, each file read once.

    ``choice``: ``"auto"`` (``<root>/baselines/<platform key>.json``), ``"none"`` or a file path.
    """

    choice: str
    root: Path
    require: bool = False
    #: ``--dnn-baseline=store``: the results store's history, which gives each record its entry.
    history: HistoryBaselines | None = None
    _cache: dict[str, BaselineSet | BaselineError | None] = field(default_factory=dict)

    def path_for(self, key: str) -> Path | None:
        if self.choice == "none":
            return None
        if self.choice == "auto":
            return self.root / "baselines" / f"{key}.json"
        return Path(self.choice)

    def load(self, path: Path) -> BaselineSet | BaselineError | None:
        """The baselines in ``path`` by platform key (one, or a set of one platform's modes), None where
        there is no file, the error where it cannot be used."""
        k = str(path)
        if k not in self._cache:
            if not path.exists() and not path.is_symlink():  # a broken or looping link: the loader names it
                self._cache[k] = None
            else:
                try:
                    self._cache[k] = load_baselines(path)
                except BaselineError as exc:
                    self._cache[k] = exc
        return self._cache[k]

    def display(self, path: Path) -> str:
        return shown_path(path, self.root)


#: Rounds saved less than this far apart on average are saved back to back (:func:`rounds_note`).
ROUND_SPACING_S = 60.0


def rounds_note(rounds: Sequence[JsonMapping]) -> str | None:
    """What to say of a baseline entry whose rounds were all saved within minutes of each other, or None.

    Rounds saved back to back (less than :data:`ROUND_SPACING_S` apart on average, by their ``created``
    times) share one state of the machine, and understate the drift between processes that the latency
    test takes from their spread. The rounds the gate compares with are judged: the quiet ones, or all
    where none is quiet; rounds without a readable time (hand-made files) are left out, and fewer than
    two say nothing.
    """
    found = _back_to_back(rounds)
    if found is None:
        return None
    count, span = found
    within = "a minute" if span < 60 else f"{math.ceil(span / 60)} minutes"
    return (
        f"its {count} rounds were all saved within {within}: rounds saved back to back share one "
        "machine state and understate the drift between processes; space them (docs/baselines.md)"
    )


def _back_to_back(rounds: Sequence[JsonMapping]) -> tuple[int, float] | None:
    """How many of the rounds the gate compares with were saved back to back, and within how many seconds;
    None where they were spaced (or fewer than two have a readable time). See :func:`rounds_note`."""
    rounds = [r for r in rounds if isinstance(r, Mapping)]
    used = [r for r in rounds if not r.get("busy")] or rounds
    times = sorted(t for t in (_saved_at(r) for r in used) if t is not None)
    if len(times) < 2:
        return None
    span = times[-1] - times[0]
    if span >= ROUND_SPACING_S * (len(times) - 1):
        return None
    return len(times), span


def _saved_at(rnd: JsonMapping) -> float | None:
    """A round's ``created`` time (ISO 8601) in seconds since the epoch; None where it has none."""
    text = rnd.get("created")
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def lookup_entry(source: BaselineSource, record: Record) -> tuple[JsonMapping | None, BaselineInfo, list[Check]]:
    """The baseline entry that applies to ``record`` (None where none does), what the record says about its
    baseline (``status`` ``compared`` where an entry applies; see :data:`NO_BASELINE`), and the check of an
    unusable file. The record is looked up in its own platform's block of the file (its key, mode included);
    a named file of the same platform without this mode is ``no-mode``, one of another platform
    ``platform-mismatch``."""
    key = record_key(record)
    if source.history is not None:  # --dnn-baseline=store: the record's own history
        info = {"key": key, "path": source.history.where(), "status": "compared", "rounds": 0}
        found, why = source.history.entry(record)
        if found is None:
            info.update(status="no-entry", reason=why)
        else:
            info["rounds"] = len(found.get("rounds") or [])
        return found, info, []
    path = source.path_for(key)
    info = {"key": key, "path": None, "status": "disabled", "rounds": 0}
    if path is None:
        return None, info, []
    shown = source.display(path)
    info["path"] = shown
    loaded = source.load(path)
    if isinstance(loaded, BaselineError):
        info["status"] = "error"
        return None, info, [_unusable("file", f"{loaded} (the file was left untouched)")]
    entry = None
    if loaded is None:
        info["status"] = "no-file"
        info["reason"] = f"no baseline file {shown}"
    elif key not in loaded:
        mode = record.mode or "eager"
        if source.choice != "auto" and loaded.base_key == base_key(key, mode):
            held = loaded.modes
            info["status"] = "no-mode"
            info["reason"] = (
                f"{shown} has no rounds for mode {mode} (it holds mode{'s' if len(held) > 1 else ''} "
                f"{', '.join(held)}); save some with --dnn-save-baseline"
            )
        else:
            info["status"] = "platform-mismatch"
            info["reason"] = f"{shown} is for {loaded.describe()}, this run is {key}"
    else:
        entry = loaded[key].entry(record.model, record.batch_size)
        if entry is None:
            info["status"] = "no-entry"
            info["reason"] = f"{shown} has no entry for {record.model} at batch {record.batch_size}"
        else:
            info["status"] = "compared"
            info["rounds"] = len(entry.get("rounds") or []) or 1
    return entry, info, []


def baseline_checks(
    source: BaselineSource,
    record: Record,
    tol: Tolerances,
    strict: bool = False,
    confirmation: Confirmation | None = None,
) -> tuple[list[Check], BaselineInfo]:
    """The baseline checks of one record against the entry that applies (:func:`lookup_entry`), and what the
    record says about its baseline.

    ``strict`` (``--dnn-strict``) fails an inconclusive latency check; ``source.require``
    (``--dnn-require-baseline``) fails a record that no baseline applies to, or whose baseline is too noisy.
    """
    entry, info, checks = lookup_entry(source, record)
    where = f"{record.model} at batch {record.batch_size}"
    if info["status"] == "error":
        return checks, info
    if entry is not None:
        shown = info["path"]
        checks = [c.with_details(baseline_file=shown) for c in compare_entry(record, entry, tol, strict, confirmation)]
        checks = _with_rounds_note(checks, entry)
        info["stale"] = any(c.get("stale") for c in checks)
        noisy = next((c for c in checks if c.metric == "latency" and c.get("noisy")), None)
        resolution = noisy.get("resolution") if noisy is not None else None
        if isinstance(resolution, (int, float)) and source.require:
            checks.append(
                _unusable(
                    "noise",
                    f"the baseline of {where} in {shown} is too noisy to gate on: it resolves only "
                    f"+{100 * resolution:.0f} % (--dnn-require-baseline); re-record it "
                    "on a quiet machine (several --dnn-save-baseline runs)",
                )
            )
    if info["status"] != "compared" and source.require:
        checks.append(
            _unusable("presence", f"no baseline applies to {where}: {info['reason']} (--dnn-require-baseline)")
        )
    return checks, info


def _with_rounds_note(checks: list[Check], entry: JsonMapping) -> list[Check]:
    """The latency check with ``rounds_note`` (:func:`rounds_note`) where the entry's rounds were saved back
    to back; the summary says it once per baseline file."""
    note = rounds_note(entry.get("rounds") or [])
    if note is None:
        return checks
    return [c.with_details(rounds_note=note) if c.metric == "latency" else c for c in checks]


#: ``record.baseline.status`` values that say no baseline applies (reason in ``record.baseline.reason``):
#: no file; the file has no entry for the (model, batch); a named file of this platform holds other
#: deployment modes but not this one; the file is another platform's.
NO_BASELINE = ("no-file", "no-entry", "no-mode", "platform-mismatch")


def _unusable(metric: str, message: str) -> Check:
    """A failed check that says no baseline could be used (not a regression): see :data:`UNUSABLE`."""
    return Check.make(kind="baseline", metric=metric, limit=None, measured=None, passed=False, message=message)


def short_reason(check: Check) -> str:
    """A failed check in a few words, for pytest's one-line short summary: ``memory 1.16 GB > 1 GB``
    (``1.003 GB > 1 GB``: digits enough to show the violation), ``latency 1.42x baseline``, ``12.1 FPS < 15 FPS``."""
    m, measured, limit = check.metric, check.measured, check.limit
    ratio = check.get("ratio")
    if m == "output":
        if measured is not None:
            return f"output {measured:.1e} of eager's > {limit:g}"
        if check.get("mismatch") is not None:
            return "output structure differs from eager's"
        side = check.get("non_finite")
        return "eager's output not finite" if side == "eager" else "output not finite"
    if m in UNUSABLE:
        return "no usable baseline" if m != "presence" else "no baseline"
    if check.kind == "constraint":
        if measured is None:
            return f"{m} not measured"
        if m == "memory":
            now, most = _apart(measured / 1e9, float(limit or 0) / 1e9)
            return f"memory {now} GB > {most} GB"
        if m == "model_memory":
            now, most = _apart(measured / 1e9, float(limit or 0) / 1e9)
            return f"model memory {now} GB > {most} GB"
        if m == "fps":
            now, least = _apart(measured, float(limit or 0))
            return f"{now} FPS < {least} FPS"
    if check.get("inconclusive"):
        return f"{m} inconclusive (--dnn-strict)"
    if isinstance(ratio, (int, float)) and m in ("latency", "memory"):
        return f"{m} {ratio:.2f}x baseline"
    if m == "top1" and measured is not None:
        now, least = f"{measured:.2f}", f"{float(limit or 0):.2f}"
        if now == least:
            now, least = _apart(measured, float(limit or 0), 5)
        return f"Top-1 {now} % < {least} %"
    return f"{m} changed against the baseline" if check.kind == "baseline" else f"{m} failed"


def _apart(measured: float, limit: float, digits: int = 3) -> tuple[str, str]:
    """Both figures with ``digits`` significant digits, more where they would read the same: a short
    reason must show the violation (``1.003 GB > 1 GB``, not ``1 GB > 1 GB``)."""
    now, bound = f"{measured:.{digits}g}", f"{limit:.{digits}g}"
    while now == bound and digits < 17:
        digits += 1
        now, bound = f"{measured:.{digits}g}", f"{limit:.{digits}g}"
    return now, bound


def failure_message(
    record: Record, bad_constraints: Sequence[Check], bad_baseline: Sequence[Check], info: JsonMapping
) -> str:
    """The text a test fails with when checks failed: constraints and regressions apart. Its first line says
    the reasons in a few words (pytest's short summary shows that line)."""
    lines = [
        "; ".join(short_reason(c) for c in (*bad_constraints, *bad_baseline)),
        f"dnnbench: {record.model} at batch {record.batch_size} failed "
        f"{len(bad_constraints) + len(bad_baseline)} check(s)",
    ]
    if bad_constraints:
        lines.append("deployment constraint violated (too slow or too big for the device):")
        lines += [f"  - {c.message}" for c in bad_constraints]
    regressed = [c for c in bad_baseline if c.metric not in UNUSABLE and not c.get("inconclusive")]
    inconclusive = [c for c in bad_baseline if c.get("inconclusive")]
    unusable = [c for c in bad_baseline if c.metric in UNUSABLE]
    if regressed:
        lines.append(f"baseline regression (against {info.get('path')}):")
        lines += [f"  - {c.message}" for c in regressed]
    if inconclusive:
        lines.append("inconclusive comparison (--dnn-strict):")
        lines += [f"  - {c.message}" for c in inconclusive]
    if unusable:
        lines.append("no usable baseline (not a regression):")
        lines += [f"  - {c.message}" for c in unusable]
    return "\n".join(lines)


#: Baseline checks that say no baseline could be used (missing, unreadable, too noisy): not regressions.
UNUSABLE = ("file", "presence", "noise")


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def _in_failure(record: Record, check: Check, failures_shown: bool) -> bool:
    """Whether pytest's failures section shows this check in full: its test failed with a text that holds it
    (the record's ``reason``; not so where a ``pytest_dnnbench_record`` hook failed the test first)."""
    failed = failures_shown and record.outcome == "failed"
    return failed and bool(check.message) and check.message in (record.reason or "")


def _listing(head: str, found: Sequence[tuple[Record, Check]], failures_shown: bool) -> list[str]:
    """A head line and one line per (record, check): each check in full once (:func:`_listed`)."""
    if any(_in_failure(r, c, failures_shown) for r, c in found):
        head += " (in full in the failures above)"
    return [head] + [_listed(r, c, failures_shown) for r, c in found]


def _listed(record: Record, check: Check, failures_shown: bool) -> str:
    """A check in the summary's list: in full, or in a few words with its test's (model, batch, mode) where the
    failures section shows it in full (:func:`_in_failure`)."""
    if not _in_failure(record, check, failures_shown):
        return f"  - {check.message}"
    mode = record.mode
    where = f"{record.model} at batch {record.batch_size}" + (f" ({mode})" if mode and mode != "eager" else "")
    return f"  - {where}: {short_reason(check)}"


def regressions(records: Sequence[Record]) -> list[tuple[Record, Check]]:
    """(record, check) of every failed baseline comparison (not a missing or unusable file)."""
    return [
        (r, c)
        for r in records
        for c in r.checks
        if c.kind == "baseline" and not c.passed and c.metric not in UNUSABLE and not c.get("inconclusive")
    ]


def back_to_back_lines(records: Sequence[Record]) -> list[str]:
    """One summary line per baseline file whose rounds were saved back to back (the latency checks'
    ``rounds_note``, :func:`rounds_note`), with how many other results compared with it are alike."""
    by_file: dict[str, list[str]] = {}
    for r in records:
        for c in r.checks:
            if c.metric == "latency" and c.get("rounds_note"):
                by_file.setdefault(str(c.get("baseline_file")), []).append(str(c.get("rounds_note")))
    lines = []
    for path, notes in by_file.items():
        others = len(notes) - 1
        alike = f"; so were the rounds of {others} other result(s) compared with it" if others else ""
        lines.append(f"baseline {path}: {notes[0]}{alike}")
    return lines


def summary_lines(
    records: Sequence[Record], notes: Sequence[str], save_requested: bool, failures_shown: bool = True
) -> list[str]:
    """The end-of-run section on baselines and constraints, from the run's records that a baseline was looked up
    for (``record.baseline``).

    A failed check is said in full once: where its test failed and pytest's failures section shows the test's
    text (``failures_shown``: not under ``--tb=no`` or ``--tb=line``), this section names it in a few words."""
    lines: list[str] = []
    by_status: dict[object, list[Record]] = {}
    for r in records:
        by_status.setdefault((r.baseline or {}).get("status"), []).append(r)
    compared = by_status.get("compared", [])
    if compared:
        paths = sorted({str((r.baseline or {}).get("path")) for r in compared})
        lines.append(f"baseline: {', '.join(paths)}: {len(compared)} of {len(records)} result(s) compared")
    missing = [r for r in records if (r.baseline or {}).get("status") in NO_BASELINE]
    if records and not compared and by_status.get("disabled"):
        lines.append("no baseline applies: baseline checks are off (--dnn-baseline=none)")
    elif missing:
        reasons = sorted({str((r.baseline or {}).get("reason", "")) for r in missing})
        head = "no baseline applies" if not compared else f"no baseline applies to {len(missing)} result(s)"
        lines.append(f"{head}: {'; '.join(reasons[:3])}{' ...' if len(reasons) > 3 else ''}")
        if not save_requested:
            lines.append(
                "  create one: run the same command with --dnn-save-baseline, five times or more "
                "(each run adds one round); see docs/baselines.md"
            )
    errors = sorted({c.message for r in records for c in r.checks if c.metric == "file"})
    lines += [f"baseline unusable: {m}" for m in errors]
    for r in records:
        for c in r.checks:
            ratio = c.get("ratio")
            if c.metric == "latency" and c.get("stale") and isinstance(ratio, (int, float)):
                lines.append(
                    f"stale baseline: {r.model} at batch {r.batch_size} ran {1 / ratio:.2f}x faster than "
                    f"{c.get('baseline_file')} ({float(c.measured or 0):.4g} ms against "
                    f"{_number(c.get('baseline')):.4g} ms): refresh it with --dnn-save-baseline"
                )
    inconclusive = [(r, c) for r in records for c in r.checks if c.metric == "latency" and c.get("inconclusive")]
    if inconclusive:
        head = f"inconclusive latency comparisons: {len(inconclusive)} (passed unless --dnn-strict)"
        lines += _listing(head, inconclusive, failures_shown)
    noisy = sorted(
        {
            f"{r.model} at batch {r.batch_size} (resolves +{100 * _number(c.get('resolution')):.0f} %)"
            for r in records
            for c in r.checks
            if c.metric == "latency" and c.get("noisy")
        }
    )
    if noisy:
        lines.append(
            f"baseline too noisy to resolve the latency tolerance for {len(noisy)} result(s): {', '.join(noisy[:4])}"
            f"{' ...' if len(noisy) > 4 else ''}; re-record it on a quiet machine"
        )
    lines += back_to_back_lines(records)
    found = regressions(records)
    violations = [(r, c) for r in records for c in r.checks if c.kind == "constraint" and not c.passed]
    if found:
        lines += _listing(f"baseline regressions: {len(found)}", found, failures_shown)
    if violations:
        lines += _listing(f"deployment constraint violations: {len(violations)}", violations, failures_shown)
    cons = [c for r in records for c in r.checks if c.kind == "constraint"]
    if cons and not violations:
        lines.append(f"deployment constraints: {len(cons)} check(s) passed")
    lines += list(notes)
    return lines
