"""Into the store and out of it: ``history import`` and ``history export`` (no pytest, no torch).

Import takes what earlier runs left:

- a **results file** (``--dnn-json``, schema ``pytest-dnnbench/1`` or ``/2``: upgraded as the report reads it)
  becomes one complete run, started when its environment says (``timestamp``, else the file's time), with the
  commit and branch its environment names (else none), and every record as the run wrote it;
- a **baseline file** (``pytest-dnnbench-baseline/1`` or ``/2``, one platform or a set of modes) becomes one
  complete run per saved round time: each round of each entry is a record (its median, spread, sample count,
  memory, MACs and parameters; its platform's device, threads, precision and mode), so that the rounds join
  the history of the same tests measured later (the fingerprint is the same where the baseline's platform
  block is complete). Rounds of a busy machine keep their ``busy`` flag.

A file that cannot be read is reported with its path and why, and nothing of it is written; the other files
are imported (each file in its own runs: a failure never leaves half a file in the store).

Export writes the latest record of each history (or of one run, ``--run``) in the formats other tools read:

- ``json``: a list of points (fingerprint, model, batch, mode, precision, platform, commit, branch, time and
  every figure column of :data:`.schema.FIGURES`);
- ``csv``: the same as a table, one row per point;
- ``github-action-benchmark``: its ``customSmallerIsBetter`` input, a list of ``{name, unit, value, range,
  extra}`` (latency per batch in ms);
- ``bencher``: Bencher Metric Format, ``{benchmark: {"latency": {"value", "lower_value", "upper_value"}}}``
  (ms; the bounds are the median's 95 % confidence interval).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ..jsontypes import JsonMapping, JsonObject
from .runmeta import RunMeta

if TYPE_CHECKING:  # SQLAlchemy only where a store is used: the command's parser names the formats
    from .db import Point, Store

__all__ = ["EXPORT_FORMATS", "Imported", "export", "import_files"]

EXPORT_FORMATS = ("json", "csv", "github-action-benchmark", "bencher")


@dataclass(frozen=True)
class Imported:
    """What one file gave: the runs and records written, or why nothing was."""

    path: Path
    kind: str
    runs: int = 0
    records: int = 0
    problem: str | None = None


def import_files(store: Store, paths: Sequence[Path]) -> list[Imported]:
    """Import each file (a results file or a baseline file); one :class:`Imported` per file, in order."""
    done = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            done.append(Imported(Path(path), "?", problem=f"cannot be read: {exc}"))
            continue
        schema = str(data.get("schema", "")) if isinstance(data, Mapping) else ""
        try:
            if schema.startswith("pytest-dnnbench-baseline"):
                done.append(_import_baseline(store, Path(path), data))
            else:
                done.append(_import_results(store, Path(path), data))
        except ValueError as exc:  # the readers' own words: schema, truncation, a bad entry
            done.append(Imported(Path(path), "?", problem=str(exc)))
    return done


def _when(text: object, fallback: datetime) -> datetime:
    if isinstance(text, str):
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            return fallback
        return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
    return fallback


def _file_time(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    except OSError:
        return datetime.now(timezone.utc)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _import_results(store: Store, path: Path, data: object) -> Imported:
    from ..results import results_from_document

    doc = results_from_document(data, path)
    env = doc.get("environment")
    environment: JsonMapping = env if isinstance(env, Mapping) else {}
    records = [r for r in doc.get("records") or [] if isinstance(r, Mapping)]
    git = environment.get("git")
    git_info: JsonMapping = git if isinstance(git, Mapping) else {}
    meta = RunMeta(
        started_at=_when(environment.get("timestamp"), _file_time(path)),
        git_commit=_text(environment.get("git_commit")) or _text(git_info.get("commit")),
        git_branch=_text(environment.get("git_branch")) or _text(git_info.get("branch")),
        host=_text(environment.get("hostname")),
        environment=environment,
        plugin_version=_text(environment.get("plugin_version")),
        torch_version=_text(environment.get("torch")),
        run_group=_text(environment.get("run_group")),
    )
    run_id = store.begin_run(meta)
    if environment:
        store.set_environment(run_id, environment)
    for record in records:
        store.add_record(run_id, record)
    store.finish_run(run_id, "complete")
    return Imported(path, "results", runs=1, records=len(records))


def _import_baseline(store: Store, path: Path, data: object) -> Imported:
    from ..baseline_store import baselines_from_document
    from ..registry import REGISTRY

    loaded = baselines_from_document(data, path)
    by_time: dict[str, list[JsonObject]] = {}
    environments: dict[str, JsonMapping] = {}
    for baseline in loaded.values():
        plat = baseline.platform
        env = plat.get("environment")
        for (model, batch), entry in sorted(baseline.entries.items()):
            source = REGISTRY.get(model).source if model in REGISTRY else "custom"
            for rnd in entry.get("rounds") or []:
                if not isinstance(rnd, Mapping) or not isinstance(rnd.get("median_ms"), (int, float)):
                    continue
                created = str(rnd.get("created") or plat.get("updated") or plat.get("created") or "")
                by_time.setdefault(created, []).append(_round_record(plat, model, batch, source, entry, rnd))
                if isinstance(env, Mapping):
                    environments.setdefault(created, env)
    records = 0
    fallback = _file_time(path)
    for created, rows in sorted(by_time.items()):
        env = environments.get(created) or {}
        meta = RunMeta(
            started_at=_when(created, fallback),
            host=_text(env.get("hostname")),
            environment={**env, "imported_from": path.name},
            plugin_version=_text(env.get("plugin_version")),
            torch_version=_text(env.get("torch")),
        )
        run_id = store.begin_run(meta)
        for record in rows:
            store.add_record(run_id, record)
        store.finish_run(run_id, "complete")
        records += len(rows)
    return Imported(path, "baseline", runs=len(by_time), records=records)


def _round_record(
    plat: JsonMapping, model: str, batch: int, source: str, entry: JsonMapping, rnd: JsonMapping
) -> JsonObject:
    """A record (as a results file holds it) of one saved round."""
    median = float(rnd["median_ms"])
    latency: JsonObject = {"median": median, "ci_median": rnd.get("ci_median"), "n": rnd.get("n")}
    quantiles = rnd.get("quantiles_ms")
    if isinstance(quantiles, list) and len(quantiles) == 21:
        latency.update(min=quantiles[0], max=quantiles[-1], p90=quantiles[18])
    memory = rnd.get("memory_bytes") or entry.get("memory_bytes")
    record: JsonObject = {
        "model": model,
        "source": source,
        "batch_size": int(batch),
        "input_size": entry.get("input_size"),
        "device": "cuda" if plat.get("device") == "cuda" else "cpu",
        "device_name": plat.get("device_name"),
        "threads": plat.get("threads"),
        "precision": plat.get("precision") or "fp32",
        "mode": plat.get("mode") or "eager",
        "channels_last": bool(plat.get("channels_last")),
        "latency_ms": latency,
        "per_image_ms": median / int(batch),
        "fps": 1000.0 * int(batch) / median if median > 0 else None,
        "memory_bytes": dict(memory) if isinstance(memory, Mapping) else {},
        "macs": rnd.get("macs", entry.get("macs")),
        "params": rnd.get("params", entry.get("params")),
        "capped": bool(rnd.get("capped")),
        "load": {"busy": bool(rnd.get("busy")), "reasons": []},
        "outcome": "imported",
    }
    if plat.get("tf32_requested") is not None:
        record["tf32"] = bool(plat.get("tf32_requested"))
    return record


# -- export ---------------------------------------------------------------------------------------------------


def latest_points(store: Store, run_id: int | None = None) -> list[Point]:
    """The latest point of each history (``run_id``: the points of that run), ordered by model, batch, mode."""
    points: list[Point] = []
    for info in store.fingerprints():
        history = store.history(info.fingerprint)
        if run_id is not None:
            history = [p for p in history if p.run_id == run_id]
        if history:
            points.append(history[-1])
    return sorted(points, key=lambda p: (p.model, p.batch_size, p.mode, p.precision, p.platform_key))


def _name(p: Point) -> str:
    return f"{p.model} bs{p.batch_size} {p.mode} {p.precision} [{p.platform_key}]"


def _row(p: Point) -> JsonObject:
    from .schema import FIGURES

    row: JsonObject = {
        "fingerprint": p.fingerprint,
        "model": p.model,
        "batch_size": p.batch_size,
        "mode": p.mode,
        "precision": p.precision,
        "device": p.device,
        "platform_key": p.platform_key,
        "run_id": p.run_id,
        "started_at": p.started_at.isoformat(),
        "git_commit": p.git_commit,
        "git_branch": p.git_branch,
        "host": p.host,
        "busy": p.busy,
        "insufficient": p.insufficient,
    }
    row.update({name: p.figures.get(name) for name in FIGURES})
    return row


def export(points: Iterable[Point], fmt: str) -> str:
    """The points in format ``fmt`` (:data:`EXPORT_FORMATS`), as text."""
    pts = list(points)
    if fmt == "json":
        return json.dumps([_row(p) for p in pts], indent=1) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        rows = [_row(p) for p in pts]
        from .schema import FIGURES

        names = list(rows[0]) if rows else ["fingerprint", "model", "batch_size", *FIGURES]
        writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    if fmt == "github-action-benchmark":
        out = []
        for p in pts:
            median = p.figures.get("latency_median_ms")
            if median is None:
                continue
            low, high = p.figures.get("latency_ci_low_ms"), p.figures.get("latency_ci_high_ms")
            entry: JsonObject = {"name": _name(p), "unit": "ms", "value": float(median)}
            if low is not None and high is not None:
                entry["range"] = f"± {(float(high) - float(low)) / 2:.4g}"
            entry["extra"] = f"commit {p.git_commit or '?'}; {p.figures.get('latency_samples') or '?'} samples"
            out.append(entry)
        return json.dumps(out, indent=1) + "\n"
    if fmt == "bencher":
        bmf: JsonObject = {}
        for p in pts:
            median = p.figures.get("latency_median_ms")
            if median is None:
                continue
            measure: JsonObject = {"value": float(median)}
            low, high = p.figures.get("latency_ci_low_ms"), p.figures.get("latency_ci_high_ms")
            if low is not None and high is not None:
                measure.update(lower_value=float(low), upper_value=float(high))
            bmf[_name(p)] = {"latency": measure}
        return json.dumps(bmf, indent=1) + "\n"
    raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
