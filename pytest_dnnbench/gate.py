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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .baseline_store import Baseline, BaselineError, load_baseline, platform_from_record, shown_path
from .measure.stats import median_ci
from .record import Check, JsonMapping, JsonObject

# -- the decisions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerances:
    """Relative tolerances for latency and memory, points of Top-1 for accuracy; ``alpha`` of the latency test."""

    latency: float = 0.10
    memory: float = 0.10
    top1: float = 0.5
    alpha: float = 0.001


#: Prior for the between-round spread of log medians: 5 % with the weight of 2 rounds'
#: degrees of freedom. It keeps one or two lucky, close rounds from making the test
#: hair-trigger, and is outweighed as rounds accumulate.
PRIOR_SIGMA = 0.05
PRIOR_DOF = 2.0
_Z95 = 1.959963984540054


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
    alpha: float = 0.001,
    ci_median: Sequence[float] | None = None,
    measured_median: float | None = None,
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
    )


def compare_entry(record: JsonMapping, entry: JsonMapping, tol: Tolerances) -> list[Check]:
    """Baseline checks of one record against its entry: latency, memory, MACs, parameters, Top-1."""
    checks: list[Check] = []
    where = f"{record.get('model')} at batch {record.get('batch_size')}"
    lat = record.get("latency_ms") or {}
    medians = [r["median_ms"] for r in entry.get("rounds") or []]
    if not medians and (entry.get("latency_ms") or {}).get("median"):
        medians = [entry["latency_ms"]["median"]]
    if medians and lat.get("median"):
        v = compare_latency(
            medians,
            lat.get("samples") or [],
            tol.latency,
            tol.alpha,
            ci_median=lat.get("ci_median"),
            measured_median=lat["median"],
        )
        if v.regressed:
            verdict = f"{v.ratio:.2f}x the baseline, above the limit and significant"
        elif v.stale:
            verdict = (
                f"{1 / v.ratio:.2f}x faster than the baseline, beyond the tolerance and significant: "
                "the baseline is stale (save a new one)"
            )
        elif v.ratio > 1 + tol.latency:
            verdict = f"{v.ratio:.2f}x the baseline, above the limit but within the between-run noise: passed"
        else:
            verdict = f"{v.ratio:.2f}x the baseline: within the limit"
        checks.append(
            Check.make(
                **{
                    "kind": "baseline",
                    "metric": "latency",
                    "baseline": v.baseline_ms,
                    "measured": v.measured_ms,
                    "limit": v.limit_ms,
                    "tolerance": tol.latency,
                    "passed": not v.regressed,
                    "stale": v.stale,
                    "ratio": v.ratio,
                    "significant": v.significant,
                    "statistic": v.statistic,
                    "threshold": v.threshold,
                    "rounds": v.rounds,
                    "spread": v.spread,
                    "alpha": tol.alpha,
                    "message": (
                        f"latency of {where}: median {v.measured_ms:.4g} ms per batch, baseline {v.baseline_ms:.4g} ms "
                        f"(median of {v.rounds} round(s)), limit {v.limit_ms:.4g} ms (+{100 * tol.latency:g} %): "
                        f"{verdict}; {v.describe()}"
                    ),
                }
            )
        )
    mem_now = (record.get("memory_bytes") or {}).get("total")
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
        now, base = record.get(metric), entry.get(metric)
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
    acc_now, acc_base = record.get("accuracy") or {}, entry.get("accuracy") or {}
    if (
        acc_now.get("status") == "measured"
        and acc_base.get("status") == "measured"
        and acc_now.get("top1") is not None
        and acc_base.get("top1") is not None
    ):
        limit = acc_base["top1"] - tol.top1
        ok = acc_now["top1"] >= limit
        checks.append(
            Check.make(
                **{
                    "kind": "baseline",
                    "metric": "top1",
                    "baseline": acc_base["top1"],
                    "measured": acc_now["top1"],
                    "limit": limit,
                    "tolerance": tol.top1,
                    "passed": ok,
                    "message": (
                        f"Top-1 of {where}: {acc_now['top1']:.2f} % against baseline {acc_base['top1']:.2f} %, "
                        f"limit {limit:.2f} % (-{tol.top1:g} points)"
                    ),
                }
            )
        )
    return checks


# -- Student's t (no scipy) ------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, dof: float) -> float:
    x = dof / (dof + t * t)
    tail = 0.5 * betainc(dof / 2.0, 0.5, x)
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, dof: float) -> float:
    """Quantile of Student's t with ``dof`` (> 0, not necessarily whole) degrees of freedom."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must lie in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, dof)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, dof) < p:
        hi *= 2.0
        if hi > 1e12:
            return hi
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, dof) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


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
    _cache: dict[str, Baseline | BaselineError | None] = field(default_factory=dict)

    def path_for(self, key: str) -> Path | None:
        if self.choice == "none":
            return None
        if self.choice == "auto":
            return self.root / "baselines" / f"{key}.json"
        return Path(self.choice)

    def load(self, path: Path) -> Baseline | BaselineError | None:
        """The baseline in ``path``, None where there is no file, the error where it cannot be used."""
        k = str(path)
        if k not in self._cache:
            if not path.exists():
                self._cache[k] = None
            else:
                try:
                    self._cache[k] = load_baseline(path)
                except BaselineError as exc:
                    self._cache[k] = exc
        return self._cache[k]

    def display(self, path: Path) -> str:
        return shown_path(path, self.root)


def baseline_checks(source: BaselineSource, record: JsonMapping, tol: Tolerances) -> tuple[list[Check], BaselineInfo]:
    """The baseline checks of one record (JSON form), and what the record says about its baseline."""
    key = platform_from_record(record)["key"]
    path = source.path_for(key)
    info: BaselineInfo = {"key": key, "path": None, "status": "disabled", "rounds": 0}
    if path is None:
        return [], info
    shown = source.display(path)
    info["path"] = shown
    loaded = source.load(path)
    checks: list[Check] = []
    where = f"{record.get('model')} at batch {record.get('batch_size')}"
    if isinstance(loaded, BaselineError):
        info["status"] = "error"
        checks.append(
            Check.make(
                kind="baseline",
                metric="file",
                limit=None,
                measured=None,
                passed=False,
                message=f"{loaded} (the file was left untouched)",
            )
        )
        return checks, info
    if loaded is None:
        info["status"] = "no-file"
        info["reason"] = f"no baseline file {shown}"
    elif loaded.key != key:
        info["status"] = "platform-mismatch"
        info["reason"] = f"{shown} is for platform {loaded.key}, this run is {key}"
    else:
        entry = loaded.entry(record["model"], record["batch_size"])
        if entry is None:
            info["status"] = "no-entry"
            info["reason"] = f"{shown} has no entry for {where}"
        else:
            info["status"] = "compared"
            info["rounds"] = len(entry.get("rounds") or []) or 1
            checks = [c.with_details(baseline_file=shown) for c in compare_entry(record, entry, tol)]
            info["stale"] = any(c.get("stale") for c in checks)
    if info["status"] != "compared" and source.require:
        checks.append(
            Check.make(
                kind="baseline",
                metric="presence",
                limit=None,
                measured=None,
                passed=False,
                message=f"no baseline applies to {where}: {info['reason']} (--dnn-require-baseline)",
            )
        )
    return checks, info


def failure_message(
    record: JsonMapping, bad_constraints: Sequence[Check], bad_baseline: Sequence[Check], info: JsonMapping
) -> str:
    """The text a test fails with when checks failed: constraints and regressions apart."""
    lines = [
        f"dnnbench: {record.get('model')} at batch {record.get('batch_size')} failed "
        f"{len(bad_constraints) + len(bad_baseline)} check(s)"
    ]
    if bad_constraints:
        lines.append("deployment constraint violated (too slow or too big for the device):")
        lines += [f"  - {c.message}" for c in bad_constraints]
    regressed = [c for c in bad_baseline if c.metric not in ("file", "presence")]
    unusable = [c for c in bad_baseline if c.metric in ("file", "presence")]
    if regressed:
        lines.append(f"baseline regression (against {info.get('path')}):")
        lines += [f"  - {c.message}" for c in regressed]
    if unusable:
        lines.append("no usable baseline (not a regression):")
        lines += [f"  - {c.message}" for c in unusable]
    return "\n".join(lines)


def regressions(records: Sequence[JsonMapping]) -> list[tuple[JsonMapping, JsonMapping]]:
    """(record, check) of every failed baseline comparison (not a missing or unusable file)."""
    return [
        (r, c)
        for r in records
        for c in r.get("checks") or []
        if c.get("kind") == "baseline" and not c.get("passed") and c.get("metric") not in ("presence", "file")
    ]


def summary_lines(records: Sequence[JsonMapping], notes: Sequence[str], save_requested: bool) -> list[str]:
    """The end-of-run section on baselines and constraints, from the run's records (JSON form)."""
    lines: list[str] = []
    by_status: dict[object, list[JsonMapping]] = {}
    for r in records:
        by_status.setdefault(r["baseline"].get("status"), []).append(r)
    compared = by_status.get("compared", [])
    if compared:
        paths = sorted({r["baseline"]["path"] for r in compared})
        lines.append(f"baseline: {', '.join(paths)}: {len(compared)} of {len(records)} result(s) compared")
    missing = [r for r in records if r["baseline"].get("status") in ("no-file", "no-entry", "platform-mismatch")]
    if records and not compared and by_status.get("disabled"):
        lines.append("no baseline applies: baseline checks are off (--dnn-baseline=none)")
    elif missing:
        reasons = sorted({r["baseline"].get("reason", "") for r in missing})
        head = "no baseline applies" if not compared else f"no baseline applies to {len(missing)} result(s)"
        lines.append(f"{head}: {'; '.join(reasons[:3])}{' ...' if len(reasons) > 3 else ''}")
        if not save_requested:
            lines.append(
                "  create one: run the same command with --dnn-save-baseline, five times or more "
                "(each run adds one round); see docs/baselines.md"
            )
    errors = sorted({c["message"] for r in records for c in r.get("checks") or [] if c.get("metric") == "file"})
    lines += [f"baseline unusable: {m}" for m in errors]
    for r in records:
        for c in r.get("checks") or []:
            if c.get("metric") == "latency" and c.get("stale"):
                lines.append(
                    f"stale baseline: {r['model']} at batch {r['batch_size']} ran {1 / c['ratio']:.2f}x faster than "
                    f"{c.get('baseline_file')} ({c['measured']:.4g} ms against {c['baseline']:.4g} ms): "
                    "refresh it with --dnn-save-baseline"
                )
    found = regressions(records)
    violations = [
        (r, c) for r in records for c in r.get("checks") or [] if c.get("kind") == "constraint" and not c.get("passed")
    ]
    if found:
        lines.append(f"baseline regressions: {len(found)}")
        lines += [f"  - {c['message']}" for _, c in found]
    if violations:
        lines.append(f"deployment constraint violations: {len(violations)}")
        lines += [f"  - {c['message']}" for _, c in violations]
    cons = [c for r in records for c in r.get("checks") or [] if c.get("kind") == "constraint"]
    if cons and not violations:
        lines.append(f"deployment constraints: {len(cons)} check(s) passed")
    lines += list(notes)
    return lines
