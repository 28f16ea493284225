"""Report inputs: results files (schema ``pytest-dnnbench/2``, or an earlier version) and baseline files.

A file is told apart by its ``schema`` field; files of earlier versions are upgraded as they are read
(:func:`~..results.load_results`, :func:`~..baseline_store.load_baselines`). Baseline files are read through
``pytest_dnnbench.baseline_store.load_baseline`` (imported lazily, so that this module works before
and without it); :func:`records_from_baseline` is the one place that knows a baseline's shape. A
results file that holds several deployment modes is shown as one platform per mode
(:func:`by_mode`, eager first).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..jsonfile import JsonFileError, load_json
from ..record import record_problems
from ..results import READ_SCHEMAS, SCHEMA, results_from_document
from ..upgrade import upgrade_accuracy
from .tables import Platform, platform_label, split_modes

if TYPE_CHECKING:  # pragma: no cover
    from ..jsontypes import JsonMapping, JsonObject


class InputError(ValueError):
    """A report input cannot be read; the message says which file and why."""


class BaselineLike(Protocol):
    """What :func:`records_from_baseline` reads of a ``baseline_store.Baseline``."""

    @property
    def platform(self) -> JsonMapping: ...

    @property
    def entries(self) -> Mapping[tuple[str, int], JsonMapping]: ...


def load_platform(path: Path, warn: Callable[[str], None] = lambda message: None) -> Platform:
    """The platform in a results or baseline file; ``warn`` hears of every record left out, and why."""
    path = Path(path)
    try:
        data = load_json(path, "report input")  # read once: a FIFO or `<(cat results.json)` can be read once only
    except JsonFileError as exc:
        raise InputError(str(exc)) from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema in READ_SCHEMAS or (isinstance(schema, str) and schema.startswith("pytest-dnnbench/")):
        try:
            doc = results_from_document(data, path)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        env = doc.get("environment") or {}
        if not isinstance(env, dict):
            raise InputError(f"{path}: 'environment' must be an object")
        raw = doc.get("records")
        if not isinstance(raw, list):
            raise InputError(f"{path}: 'records' must be a list")
        records = []
        for i, r in enumerate(raw):
            problems = record_problems(r)
            if problems:
                warn(f"{path}: record {i} is left out: {'; '.join(problems)}")
            else:
                records.append(r)
        if raw and not records:
            raise InputError(f"{path}: none of its {len(raw)} record(s) can be used (see above); nothing to report")
        return Platform(
            platform_label(env, records, path.stem), records, env, list(doc.get("missing") or []), str(path), "results"
        )
    if isinstance(schema, str) and "baseline" in schema:
        return _baseline_platform(data, path)
    raise InputError(
        f"{path}: schema {schema!r} is neither a results file ({SCHEMA!r} or an earlier version) nor a baseline "
        "file; give files written by --dnn-json/--dnn-report or pytest-dnnbench baseline files"
    )


def by_mode(platform: Platform) -> list[Platform]:
    """The platform of one input as the report shows it: one platform per mode, eager first,
    labelled ``<label> · <mode>``; a file of eager records only stays one platform, as it is."""
    return split_modes(platform)


def load_baseline_platform(path: Path) -> Platform:
    """A baseline file as a platform: one platform's entries, or (a file of several modes) every mode's
    entries in one platform, which :func:`by_mode` puts side by side."""
    try:
        data = load_json(path, "baseline file")
    except JsonFileError as exc:
        raise InputError(str(exc)) from None
    return _baseline_platform(data, path)


def _baseline_platform(data: object, path: Path) -> Platform:
    """:func:`load_baseline_platform` of a baseline file's parsed document."""
    from ..baseline_store import baselines_from_document

    try:
        baselines = baselines_from_document(data, path)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: {exc}") from None
    platforms = [records_from_baseline(b, source=str(path)) for b in baselines.values()]
    if len(platforms) == 1:
        return platforms[0]
    first = platforms[0]
    records = [r for p in platforms for r in p.records]
    env = {
        **first.environment,
        "baseline_platform": {**dict(first.environment.get("baseline_platform") or {}), "mode": None},
    }
    return Platform(str(baselines.base_key), records, env, [], str(path), "baseline")


def records_from_baseline(baseline: BaselineLike, source: str = "") -> Platform:
    """Turn a ``Baseline`` (``.platform`` dict, ``.entries``: (model, batch) -> figures) into a
    platform of records with the results file's keys, so that every table and figure takes it."""
    from ..registry import REGISTRY

    platform = dict(getattr(baseline, "platform", {}) or {})
    entries = getattr(baseline, "entries", {}) or {}
    device_name = platform.get("device_name") or platform.get("key") or "baseline"
    precision = platform.get("precision")
    device = platform.get("device")
    records: list[JsonObject] = []
    for key, entry in entries.items():
        model, batch = key
        entry = dict(entry or {})
        try:
            paper_name = REGISTRY.get(model).paper_name
        except Exception:
            paper_name = None
        mem = entry.get("memory_bytes") or {}
        acc = upgrade_accuracy(entry.get("accuracy") or {})
        for part in ("measured", "reference"):  # a figure without its source comes from this file
            figure = acc.get(part)
            if isinstance(figure, dict) and not figure.get("source"):
                acc[part] = {**figure, "source": source}
        records.append(
            {
                "model": model,
                "paper_name": entry.get("paper_name") or paper_name,
                "device": device,
                "device_name": device_name,
                "precision": precision,
                "mode": platform.get("mode"),
                "batch_size": int(batch),
                "per_image_ms": entry.get("per_image_ms"),
                "fps": _fps(entry),
                "memory_bytes": {"total": mem.get("total")} if isinstance(mem, dict) else {"total": None},
                "macs": entry.get("macs"),
                "flops": entry.get("flops"),
                "params": entry.get("params"),
                "param_file_mib": entry.get("param_file_mib"),
                "accuracy": {
                    "measured": acc.get("measured"),
                    "reference": acc.get("reference"),
                    **({"reason": acc["reason"]} if acc.get("reason") else {}),
                },
                "outcome": "passed",
                "reason": None,
                "baseline": True,
                "missing": dict(entry.get("missing") or {}) if isinstance(entry.get("missing"), dict) else {},
            }
        )
    records.sort(key=lambda r: (r["model"], r["batch_size"]))
    env = {"device": device, "device_name": device_name, "precision": precision, "baseline_platform": platform}
    if platform.get("source") == "paper":
        label = f"{device_name} (paper" + (f", {precision})" if precision else ")")
    else:
        label = str(platform.get("key") or device_name)
        if precision and str(precision) not in label:
            label += f" ({precision})"
    return Platform(label, records, env, [], source, "baseline")


def _fps(entry: JsonMapping) -> float | None:
    if entry.get("fps") is not None:
        fps: float = entry["fps"]  # a number: load_baseline checks that each entry's fps is a number or null
        return fps
    ms = entry.get("per_image_ms")
    return 1000.0 / ms if ms else None
