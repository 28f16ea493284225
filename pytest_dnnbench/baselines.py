"""Baselines: the file format, platform keys, loading, merging, atomic saving, and the comparisons.

Pure (no torch, no pytest): the pytest glue is ``gating.py``. The format is
documented in ``docs/baselines.md``; in short, one JSON file per platform::

    {"schema": "pytest-dnnbench-baseline/1",
     "platform": {"key": ..., "device": ..., "device_name": ..., "threads": ...,
                  "precision": ..., "mode": ..., "channels_last": ..., "source": "measured|paper",
                  "provenance": ..., "environment": {...}},
     "max_rounds": 10,
     "entries": [{"model": ..., "batch_size": ..., "input_size": [...], "rounds": [round, ...],
                  "latency_ms": {"median": ..., "round_medians": [...], "rounds": K, "spread": ...},
                  "per_image_ms": ..., "fps": ..., "memory_bytes": {"total": ..., "delta": ...},
                  "macs": ..., "flops": ..., "params": ..., "accuracy": {...}}, ...]}

Each ``--dnn-save-baseline`` run appends one *round* per (model, batch size) and
keeps the last ``max_rounds``; the latency gate uses the spread between rounds
(:func:`compare_latency`), because between processes the median moves far more
than within one (DESIGN §3).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from .measure.stats import median_ci, percentile
from .results import atomic_write_text

__all__ = [
    "SCHEMA", "DEFAULT_MAX_ROUNDS", "Baseline", "BaselineError", "LatencyVerdict", "Tolerances",
    "compare_entry", "compare_latency", "load_baseline", "merge_records", "new_document", "platform_key",
    "platform_from_record", "round_from_record", "save_document", "paper_baseline", "paper_baseline_files",
    "paper_benchmark_files", "PAPER_DIR",
]

SCHEMA = "pytest-dnnbench-baseline/1"
DEFAULT_MAX_ROUNDS = 10
#: Quantiles kept per round (0 %, 5 %, ..., 100 %): the shape of each round's distribution, bounded in size.
ROUND_QUANTILES = tuple(range(0, 101, 5))

#: The repository's ``baselines/paper`` folder (present in a source checkout; see :func:`paper_baseline`).
PAPER_DIR = Path(__file__).resolve().parent.parent / "baselines" / "paper"
PAPER_PLATFORMS = ("titan_xp", "jetson_tx1")


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message names the file and what is wrong."""


# -- platform ----------------------------------------------------------------------------------

def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s or "unknown"


def platform_key(device: str, device_name: str, threads: Optional[int], precision: str, mode: str,
                 channels_last: bool = False) -> str:
    """The documented key of a platform.

    GPU: ``cuda-<GPU name>-<precision>-<mode>``; CPU: ``cpu-<CPU model name>-<threads>t-<precision>-<mode>``;
    ``-cl`` is appended for channels-last runs. Names are lower-cased and every run of other
    characters becomes one ``-``: ``NVIDIA H100 80GB HBM3``, fp32, eager ->
    ``cuda-nvidia-h100-80gb-hbm3-fp32-eager``. The key is also the file name in ``baselines/``.
    """
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    parts = [kind, slug(device_name)]
    if kind == "cpu":
        parts.append(f"{int(threads) if threads else 0}t")
    parts += [slug(precision), slug(mode)]
    key = "-".join(parts)
    return key + "-cl" if channels_last else key


def platform_from_record(record: Mapping[str, Any], environment: Optional[Mapping[str, Any]] = None) -> dict:
    """The ``platform`` block of a baseline made from this record (and the run's environment)."""
    env = dict(environment or {})
    device = str(record.get("device", env.get("device", "cpu")))
    plat = {
        "key": platform_key(device, record.get("device_name") or env.get("device_name") or "unknown",
                            record.get("threads", env.get("threads")), record.get("precision", "fp32"),
                            record.get("mode", "eager"), bool(record.get("channels_last", False))),
        "device": "cuda" if device.startswith("cuda") else "cpu",
        "device_name": record.get("device_name") or env.get("device_name"),
        "threads": record.get("threads", env.get("threads")),
        "precision": record.get("precision"),
        "mode": record.get("mode"),
        "channels_last": bool(record.get("channels_last", False)),
        "source": "measured",
        "provenance": "measured by pytest-dnnbench (--dnn-save-baseline), one round per run",
    }
    keep = ("cpu", "cpu_count", "torch", "torchvision", "timm", "cuda", "cudnn", "driver", "plugin_version",
            "python", "platform", "hostname", "cudnn_benchmark", "tf32_matmul", "tf32_cudnn")
    plat["environment"] = {k: env[k] for k in keep if k in env}
    return plat


# -- the loaded form -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Baseline:
    """A loaded baseline file.

    ``platform``: ``key``, ``device``, ``device_name``, ``precision``, ``mode``, ``source``
    (``measured`` or ``paper``), ``provenance``, ...; ``entries``: (model, batch size) ->
    entry dict with at least ``per_image_ms``, ``fps``, ``memory_bytes`` (``{"total": bytes or
    None}``), ``accuracy`` (``{"top1": ..., "status": ...}``), ``macs``, ``params``,
    ``latency_ms`` and ``rounds`` (None where unknown).
    """

    path: Optional[Path]
    platform: dict
    entries: dict
    max_rounds: int = DEFAULT_MAX_ROUNDS
    document: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def key(self) -> str:
        return str(self.platform.get("key"))

    def entry(self, model: str, batch_size: int) -> Optional[dict]:
        return self.entries.get((model, int(batch_size)))


def _where(path: Any) -> str:
    return str(path) if path is not None else "<baseline>"


def load_baseline(path: Any) -> Baseline:
    """Read and check a baseline file; :class:`BaselineError` names the file and what is wrong."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise BaselineError(f"baseline file {p} does not exist") from None
    except OSError as exc:
        raise BaselineError(f"cannot read baseline file {p}: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BaselineError(f"baseline file {p} is not UTF-8 text ({exc})") from None
    if not text.strip():
        raise BaselineError(f"baseline file {p} is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        what = "truncated (it ends inside an unfinished object, list or string)" if _unbalanced(text) \
            else "not valid JSON"
        raise BaselineError(f"baseline file {p} is {what}: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    return baseline_from_document(data, p)


def _unbalanced(text: str) -> bool:
    """True when ``text`` ends inside a string, object or list: the mark of a truncated file."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
    return in_string or depth > 0


def baseline_from_document(data: Any, path: Any = None) -> Baseline:
    where = _where(path)
    if not isinstance(data, dict):
        raise BaselineError(f"baseline file {where}: the top level must be a JSON object, not {type(data).__name__}")
    if data.get("schema") != SCHEMA:
        raise BaselineError(f"baseline file {where}: schema {data.get('schema')!r} is not {SCHEMA!r} "
                            "(is this a pytest-benchmark or results file rather than a baseline?)")
    platform = data.get("platform")
    if not isinstance(platform, dict) or not isinstance(platform.get("key"), str) or not platform["key"]:
        raise BaselineError(f"baseline file {where}: 'platform' must be an object with a 'key' string")
    max_rounds = data.get("max_rounds", DEFAULT_MAX_ROUNDS)
    if not isinstance(max_rounds, int) or isinstance(max_rounds, bool) or max_rounds < 1:
        raise BaselineError(f"baseline file {where}: 'max_rounds' must be a positive integer, not {max_rounds!r}")
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, list):
        raise BaselineError(f"baseline file {where}: 'entries' must be a list")
    entries: dict = {}
    for i, e in enumerate(raw_entries):
        _check_entry(e, i, where)
        k = (e["model"], int(e["batch_size"]))
        if k in entries:
            raise BaselineError(f"baseline file {where}: entry {i} repeats {k[0]} at batch {k[1]}")
        entries[k] = e
    return Baseline(path=Path(path) if path is not None else None, platform=platform, entries=entries,
                    max_rounds=max_rounds, document=data)


def _num(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))


def _check_entry(e: Any, i: int, where: str) -> None:
    if not isinstance(e, dict):
        raise BaselineError(f"baseline file {where}: entry {i} is not an object")
    if not isinstance(e.get("model"), str) or not e["model"]:
        raise BaselineError(f"baseline file {where}: entry {i} has no 'model' name")
    bs = e.get("batch_size")
    if not isinstance(bs, int) or isinstance(bs, bool) or bs < 1:
        raise BaselineError(f"baseline file {where}: entry {i} ({e['model']}): 'batch_size' must be a positive "
                            f"integer, not {bs!r}")
    what = f"entry {i} ({e['model']} at batch {bs})"
    for key in ("per_image_ms", "fps", "macs", "flops", "params"):
        if not _num(e.get(key)):
            raise BaselineError(f"baseline file {where}: {what}: {key!r} must be a number or null, not {e.get(key)!r}")
    mem = e.get("memory_bytes", {})
    if not isinstance(mem, dict) or not all(_num(v) for v in mem.values()):
        raise BaselineError(f"baseline file {where}: {what}: 'memory_bytes' must map names to numbers or null")
    acc = e.get("accuracy", {})
    if not isinstance(acc, dict) or not _num(acc.get("top1")):
        raise BaselineError(f"baseline file {where}: {what}: 'accuracy' must be an object with a numeric or null 'top1'")
    rounds = e.get("rounds", [])
    if not isinstance(rounds, list):
        raise BaselineError(f"baseline file {where}: {what}: 'rounds' must be a list")
    for j, r in enumerate(rounds):
        if not isinstance(r, dict):
            raise BaselineError(f"baseline file {where}: {what}: round {j} is not an object")
        med = r.get("median_ms")
        if not _num(med) or med is None or med <= 0:
            raise BaselineError(f"baseline file {where}: {what}: round {j} needs a positive 'median_ms', not {med!r}")
        ci = r.get("ci_median_ms")
        if ci is not None and (not isinstance(ci, list) or len(ci) != 2 or not all(_num(v) and v is not None for v in ci)):
            raise BaselineError(f"baseline file {where}: {what}: round {j}: 'ci_median_ms' must be [low, high]")
    lat = e.get("latency_ms", {})
    if not isinstance(lat, dict) or not _num(lat.get("median")):
        raise BaselineError(f"baseline file {where}: {what}: 'latency_ms' must be an object with a numeric or null 'median'")


# -- rounds, entries, merging, saving ----------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def round_from_record(record: Mapping[str, Any], created: Optional[str] = None) -> dict:
    """One round: what a later comparison needs from this run, bounded in size (21 quantiles, not every sample)."""
    lat = record["latency_ms"]
    samples = sorted(float(s) for s in lat.get("samples") or [])
    quantiles = [_round6(percentile(samples, q)) for q in ROUND_QUANTILES] if samples else None
    ci = lat.get("ci_median")
    acc = record.get("accuracy") or {}
    return {
        "created": created or _now(),
        "median_ms": float(lat["median"]),
        "ci_median_ms": [float(ci[0]), float(ci[1])] if ci else None,
        "n": int(lat.get("n") or len(samples)),
        "quantiles_ms": quantiles,
        "capped": bool(lat.get("capped", False)),
        "memory_bytes": dict(record.get("memory_bytes") or {}),
        "macs": record.get("macs"),
        "params": record.get("params"),
        "accuracy": {k: acc.get(k) for k in ("top1", "top5", "status", "n_images")},
        "cudnn_benchmark": record.get("cudnn_benchmark"),
        "seed": record.get("seed"),
    }


def _round6(x: float) -> float:
    """Six significant digits: far below timing noise, and keeps the files readable."""
    return float(f"{x:.6g}")


def _median(values: Iterable[Optional[float]]) -> Optional[float]:
    vals = [float(v) for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def log_spread(medians: Sequence[float]) -> Optional[float]:
    """Sample standard deviation of the log round medians (None with fewer than two rounds)."""
    logs = [math.log(m) for m in medians if m and m > 0]
    return float(statistics.stdev(logs)) if len(logs) >= 2 else None


def summarize_entry(entry: dict) -> dict:
    """Recompute an entry's headline figures from its rounds (median over rounds; latest for counts)."""
    rounds = entry.get("rounds") or []
    if not rounds:
        return entry
    medians = [r["median_ms"] for r in rounds]
    med = _median(medians)
    bs = int(entry["batch_size"])
    last = rounds[-1]
    entry["latency_ms"] = {"median": med, "round_medians": medians, "rounds": len(rounds),
                           "spread": log_spread(medians)}
    entry["per_image_ms"] = med / bs if med else None
    entry["fps"] = 1000.0 * bs / med if med else None
    mem_keys = sorted({k for r in rounds for k in (r.get("memory_bytes") or {})})
    entry["memory_bytes"] = {k: _int_or_none(_median((r.get("memory_bytes") or {}).get(k) for r in rounds))
                             for k in mem_keys} or {"total": None}
    entry.setdefault("memory_bytes", {}).setdefault("total", None)
    entry["macs"] = last.get("macs")
    entry["flops"] = 2 * last["macs"] if isinstance(last.get("macs"), (int, float)) else None
    entry["params"] = last.get("params")
    entry["accuracy"] = dict(last.get("accuracy") or {"top1": None, "status": "unavailable"})
    return entry


def _int_or_none(v: Optional[float]) -> Optional[int]:
    return None if v is None else int(round(v))


def new_document(platform: dict, max_rounds: int = DEFAULT_MAX_ROUNDS) -> dict:
    return {"schema": SCHEMA, "platform": dict(platform), "max_rounds": int(max_rounds), "entries": []}


def merge_records(document: Optional[dict], records: Iterable[Mapping[str, Any]], platform: dict,
                  max_rounds: Optional[int] = None, created: Optional[str] = None) -> dict:
    """Add one round per record to ``document`` (a new one if None); other entries are kept.

    Rounds beyond ``max_rounds`` (the oldest) are dropped. An entry whose network changed
    (MACs, parameters or input size differ from its last round) restarts its rounds: the old
    ones timed another network. Returns a new document; ``document`` is not modified.
    """
    doc = json.loads(json.dumps(document)) if document is not None else new_document(platform)
    if max_rounds is not None:
        doc["max_rounds"] = int(max_rounds)
    limit = int(doc.get("max_rounds", DEFAULT_MAX_ROUNDS))
    env = dict((doc.get("platform") or {}).get("environment") or {})
    env.update(platform.get("environment") or {})
    doc["platform"] = {**(doc.get("platform") or {}), **platform, "environment": env}
    stamp = created or _now()
    doc["platform"]["updated"] = stamp
    doc["platform"].setdefault("created", stamp)
    index = {(e["model"], int(e["batch_size"])): e for e in doc["entries"]}
    for rec in records:
        k = (rec["model"], int(rec["batch_size"]))
        new_round = round_from_record(rec, stamp)
        entry = index.get(k)
        if entry is None:
            entry = {"model": rec["model"], "batch_size": int(rec["batch_size"]), "rounds": []}
            index[k] = entry
            doc["entries"].append(entry)
        rounds = entry.get("rounds") or []
        if rounds and _changed_network(rounds[-1], rec, entry):
            rounds = []
        entry["paper_name"] = rec.get("paper_name")
        entry["input_size"] = list(rec.get("input_size") or [])
        entry["rounds"] = (rounds + [new_round])[-limit:]
        summarize_entry(entry)
    doc["entries"].sort(key=lambda e: (e["model"], int(e["batch_size"])))
    return doc


def _changed_network(last_round: dict, rec: Mapping[str, Any], entry: dict) -> bool:
    for key in ("macs", "params"):
        a, b = last_round.get(key), rec.get(key)
        if a is not None and b is not None and a != b:
            return True
    size = entry.get("input_size")
    return bool(size) and list(rec.get("input_size") or size) != list(size)


def document_text(document: dict) -> str:
    return json.dumps(document, indent=1, allow_nan=False, sort_keys=False) + "\n"


def save_document(path: Any, document: dict) -> None:
    """Write atomically: readers (and a crash or Ctrl-C) see the old file or the new one, never half of one."""
    baseline_from_document(document, path)  # never write what we could not read back
    atomic_write_text(Path(path), document_text(document))


# -- the decisions -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tolerances:
    """Relative tolerances for latency and memory, points of Top-1 for accuracy; ``alpha`` of the latency test."""

    latency: float = 0.10
    memory: float = 0.10
    top1: float = 0.5
    alpha: float = 0.001

    def replace(self, **kwargs: Any) -> "Tolerances":
        from dataclasses import replace

        return replace(self, **kwargs)


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
        return (f"t = {self.statistic:+.2f} vs critical {self.threshold:.2f} ({sig}; {self.rounds} round(s), "
                f"between-round spread {100 * self.spread:.1f} %)")


def _run_log_se(samples: Sequence[float], ci: Optional[Sequence[float]] = None) -> float:
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


def compare_latency(round_medians: Sequence[float], samples: Sequence[float], tolerance: float,
                    alpha: float = 0.001, ci_median: Optional[Sequence[float]] = None,
                    measured_median: Optional[float] = None) -> LatencyVerdict:
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
    s2 = ((k - 1) * s_rounds ** 2 + PRIOR_DOF * PRIOR_SIGMA ** 2) / dof
    se = _run_log_se(vals, ci_median)
    scale = math.sqrt(s2 * (1.0 + 1.0 / k) + se ** 2)
    stat = (math.log(m) - mu) / scale if scale > 0 else 0.0
    crit = t_quantile(1.0 - alpha, dof)
    ratio = m / base
    limit = base * (1.0 + tolerance)
    stale_limit = base / (1.0 + tolerance)
    slower = m > limit
    faster = m < stale_limit
    significant = stat > crit if slower else (stat < -crit if faster else abs(stat) > crit)
    return LatencyVerdict(
        regressed=bool(slower and stat > crit), stale=bool(faster and stat < -crit), significant=bool(significant),
        ratio=ratio, baseline_ms=base, measured_ms=m, limit_ms=limit, stale_limit_ms=stale_limit,
        statistic=stat, threshold=crit, rounds=k, spread=math.sqrt(s2), dof=dof,
    )


def compare_entry(record: Mapping[str, Any], entry: Mapping[str, Any], tol: Tolerances) -> list[dict]:
    """Baseline checks of one record against its entry: latency, memory, MACs, parameters, Top-1."""
    checks: list[dict] = []
    where = f"{record.get('model')} at batch {record.get('batch_size')}"
    lat = record.get("latency_ms") or {}
    medians = [r["median_ms"] for r in entry.get("rounds") or []]
    if not medians and (entry.get("latency_ms") or {}).get("median"):
        medians = [entry["latency_ms"]["median"]]
    if medians and lat.get("median"):
        v = compare_latency(medians, lat.get("samples") or [], tol.latency, tol.alpha,
                            ci_median=lat.get("ci_median"), measured_median=lat["median"])
        if v.regressed:
            verdict = f"{v.ratio:.2f}x the baseline, above the limit and significant"
        elif v.stale:
            verdict = (f"{1 / v.ratio:.2f}x faster than the baseline, beyond the tolerance and significant: "
                       "the baseline is stale (save a new one)")
        elif v.ratio > 1 + tol.latency:
            verdict = f"{v.ratio:.2f}x the baseline, above the limit but within the between-run noise: passed"
        else:
            verdict = f"{v.ratio:.2f}x the baseline: within the limit"
        checks.append({
            "kind": "baseline", "metric": "latency", "baseline": v.baseline_ms, "measured": v.measured_ms,
            "limit": v.limit_ms, "tolerance": tol.latency, "passed": not v.regressed, "stale": v.stale,
            "ratio": v.ratio, "significant": v.significant, "statistic": v.statistic, "threshold": v.threshold,
            "rounds": v.rounds, "spread": v.spread, "alpha": tol.alpha,
            "message": (f"latency of {where}: median {v.measured_ms:.4g} ms per batch, baseline {v.baseline_ms:.4g} ms "
                        f"(median of {v.rounds} round(s)), limit {v.limit_ms:.4g} ms (+{100 * tol.latency:g} %): "
                        f"{verdict}; {v.describe()}"),
        })
    mem_now = (record.get("memory_bytes") or {}).get("total")
    mem_base = (entry.get("memory_bytes") or {}).get("total")
    if mem_now is not None and mem_base:
        limit = mem_base * (1.0 + tol.memory)
        ok = mem_now <= limit
        checks.append({
            "kind": "baseline", "metric": "memory", "baseline": mem_base, "measured": mem_now, "limit": limit,
            "tolerance": tol.memory, "passed": ok, "ratio": mem_now / mem_base,
            "message": (f"memory of {where}: total {mem_now / 2**20:.1f} MiB ({int(mem_now):,} bytes), baseline "
                        f"{mem_base / 2**20:.1f} MiB, limit {limit / 2**20:.1f} MiB (+{100 * tol.memory:g} %)"
                        + ("" if ok else f": {mem_now / mem_base:.2f}x the baseline")),
        })
    for metric in ("macs", "params"):
        now, base = record.get(metric), entry.get(metric)
        if now is not None and base is not None:
            ok = now == base
            checks.append({
                "kind": "baseline", "metric": metric, "baseline": base, "measured": now, "limit": base,
                "tolerance": 0, "passed": ok,
                "message": (f"{'MACs' if metric == 'macs' else 'parameters'} of {where}: {now:,} against baseline "
                            f"{base:,} (limit: no change)" + ("" if ok else f", changed by {now - base:+,}")),
            })
    acc_now, acc_base = record.get("accuracy") or {}, entry.get("accuracy") or {}
    if (acc_now.get("status") == "measured" and acc_base.get("status") == "measured"
            and acc_now.get("top1") is not None and acc_base.get("top1") is not None):
        limit = acc_base["top1"] - tol.top1
        ok = acc_now["top1"] >= limit
        checks.append({
            "kind": "baseline", "metric": "top1", "baseline": acc_base["top1"], "measured": acc_now["top1"],
            "limit": limit, "tolerance": tol.top1, "passed": ok,
            "message": (f"Top-1 of {where}: {acc_now['top1']:.2f} % against baseline {acc_base['top1']:.2f} %, "
                        f"limit {limit:.2f} % (-{tol.top1:g} points)"),
        })
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


# -- the paper's figures -------------------------------------------------------------------------

def paper_baseline_files(directory: Optional[Path] = None) -> dict[str, Path]:
    """Paths of the shipped paper baselines (this format): ``{"titan_xp": ..., "jetson_tx1": ...}``.

    They live in the repository's ``baselines/paper/``; :func:`paper_baseline` builds the same
    data in memory where the package is installed without that folder.
    """
    d = Path(directory) if directory is not None else PAPER_DIR
    return {p: d / f"bianco2018-{p.replace('_', '-')}.json" for p in PAPER_PLATFORMS}


def paper_benchmark_files(directory: Optional[Path] = None) -> dict[str, Path]:
    """Paths of the paper's figures as pytest-benchmark runs (for ``--benchmark-compare``)."""
    d = Path(directory) if directory is not None else PAPER_DIR
    return {p: d / f"{i + 1:04d}_bianco2018-{p.replace('_', '-')}.json" for i, p in enumerate(PAPER_PLATFORMS)}


def paper_baseline(platform: str) -> Baseline:
    """The paper's figures for ``titan_xp`` or ``jetson_tx1`` (from the shipped file, else built in memory)."""
    if platform not in PAPER_PLATFORMS:
        raise ValueError(f"unknown paper platform {platform!r}; use one of {', '.join(PAPER_PLATFORMS)}")
    path = paper_baseline_files()[platform]
    if path.is_file():
        return load_baseline(path)
    from .paperdata import baseline_document

    return baseline_from_document(baseline_document(platform), None)
