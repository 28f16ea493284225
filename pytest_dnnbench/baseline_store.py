"""Baseline files: the format, platform keys, loading and validation, merging rounds, atomic saving.

Pure (no torch, no pytest). The comparisons that turn a record and a baseline entry into checks
live in :mod:`.gate`; the paper's figures as baselines in :mod:`.paperdata`. The format is
documented in ``docs/baselines.md``; in short, one JSON file per platform::

    {"schema": "pytest-dnnbench-baseline/2",
     "platform": {"key": ..., "device": ..., "device_name": ..., "threads": ...,
                  "precision": ..., "mode": ..., "channels_last": ..., "source": "measured|paper",
                  "provenance": ..., "environment": {...}},
     "max_rounds": 10,
     "entries": [{"model": ..., "batch_size": ..., "input_size": [...], "rounds": [round, ...],
                  "latency_ms": {"median": ..., "round_medians": [...], "rounds": K, "spread": ...},
                  "per_image_ms": ..., "fps": ..., "memory_bytes": {"total": ..., "delta": ...},
                  "macs": ..., "flops": ..., "params": ...,
                  "accuracy": {"measured": {...} or null, "reference": {...} or null}}, ...]}

Each ``--dnn-save-baseline`` run appends one *round* per (model, batch size) and keeps the last
``max_rounds``; the latency gate uses the spread between rounds, because between processes the
median moves far more than within one (docs/measurements.md).

A file named by path may hold several deployment modes of one platform (same key apart from the
mode): a *baseline set*, one unchanged single-platform document per mode, sorted by key::

    {"schema": "pytest-dnnbench-baseline-set/2",
     "baselines": [{"schema": "pytest-dnnbench-baseline/2", "platform": {"key": "...-fp32-compile", ...}, ...},
                   {"schema": "pytest-dnnbench-baseline/2", "platform": {"key": "...-fp32-eager", ...}, ...}]}

It is written only when a second mode is saved to the file; a file of one platform stays a
``pytest-dnnbench-baseline/2`` document. :func:`load_baselines` reads either kind as a
:class:`BaselineSet` (platform key -> :class:`Baseline`); :func:`load_baseline` reads a file of one platform.

Files of version 1 (``pytest-dnnbench-baseline/1``, ``pytest-dnnbench-baseline-set/1``) are read as
well, upgraded in memory (:func:`upgrade_document`); a save to such a file writes it in version 2,
every round kept.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import socket
import statistics
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .jsonfile import JsonFileError, load_json
from .jsontypes import JsonMapping, JsonObject
from .measure.stats import percentile
from .results import atomic_write_text
from .upgrade import is_cuda, renamed, upgrade_accuracy, upgrade_environment

if TYPE_CHECKING:
    from .record import Record

__all__ = [
    "SCHEMA",
    "SET_SCHEMA",
    "READ_SCHEMAS",
    "READ_SET_SCHEMAS",
    "DEFAULT_MAX_ROUNDS",
    "Baseline",
    "BaselineSet",
    "BaselineError",
    "base_key",
    "baselines_from_document",
    "load_baseline",
    "load_baselines",
    "set_document",
    "split_key",
    "merge_records",
    "new_document",
    "platform_key",
    "platform_from_record",
    "record_key",
    "round_from_record",
    "save_document",
    "paper_baseline_files",
    "paper_benchmark_files",
    "upgrade_document",
    "PAPER_DIR",
]

#: One platform's baseline, as this version writes it.
SCHEMA = "pytest-dnnbench-baseline/2"
#: Several deployment modes of one platform in one file: ``{"schema": SET_SCHEMA, "baselines": [<document>, ...]}``.
SET_SCHEMA = "pytest-dnnbench-baseline-set/2"
#: The versions read (earlier ones upgraded in memory: :func:`upgrade_document`).
READ_SCHEMAS = ("pytest-dnnbench-baseline/1", SCHEMA)
READ_SET_SCHEMAS = ("pytest-dnnbench-baseline-set/1", SET_SCHEMA)
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


def platform_key(
    device: str,
    device_name: str,
    threads: int | None,
    precision: str,
    mode: str,
    channels_last: bool = False,
    tf32: bool = False,
) -> str:
    """The documented key of a platform.

    GPU: ``cuda-<GPU name>-<precision>-<mode>``; CPU: ``cpu-<CPU model name>-<threads>t-<precision>-<mode>``;
    ``-cl`` is appended for channels-last runs, and ``-tf32`` for fp32 runs on a GPU with TF32 allowed
    (``--dnn-tf32``). Names are lower-cased and every run of other
    characters becomes one ``-``: ``NVIDIA H100 80GB HBM3``, fp32, eager ->
    ``cuda-nvidia-h100-80gb-hbm3-fp32-eager``. The key is also the file name in ``baselines/``.
    """
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    parts = [kind, slug(device_name)]
    if kind == "cpu":
        parts.append(f"{int(threads) if threads else 0}t")
    parts += [slug(precision), slug(mode)]
    key = "-".join(parts)
    if tf32 and kind == "cuda" and precision == "fp32":
        key += "-tf32"
    return key + "-cl" if channels_last else key


#: What stands for the mode in a base key (:func:`split_key`).
ANY_MODE = "*"
#: The suffixes :func:`platform_key` appends after the mode, innermost first.
_KEY_SUFFIXES = ("-tf32", "-cl")


def split_key(key: str, mode: str | None = None) -> tuple[str, str]:
    """A platform key split into its *base* (the mode replaced by ``*``) and its mode part.

    The mode is the part before the ``-tf32`` and ``-cl`` suffixes (:func:`platform_key`):
    ``cuda-nvidia-h200-fp32-compile-tf32-cl`` -> (``cuda-nvidia-h200-fp32-*-tf32-cl``, ``compile``).
    ``mode`` (the platform block's ``mode``, or the record's) names it where it could hold a ``-``;
    without it, or where the key does not carry it there, the mode is the last ``-`` part. Two keys
    with one base are the same platform in two deployment modes. A key with no ``-`` is its own base.
    """
    rest, suffix = key, ""
    for s in reversed(_KEY_SUFFIXES):
        if rest.endswith(s) and len(rest) > len(s):
            rest, suffix = rest[: -len(s)], s + suffix
    wanted = slug(mode) if mode else None
    if wanted and rest.endswith("-" + wanted) and len(rest) > len(wanted) + 1:
        head, part = rest[: -len(wanted) - 1], wanted
    else:
        head, _, part = rest.rpartition("-")
    if not head:
        return key, ""
    return f"{head}-{ANY_MODE}{suffix}", part


def base_key(key: str, mode: str | None = None) -> str:
    """The key with its mode replaced by ``*`` (:func:`split_key`): the same for every mode of a platform."""
    return split_key(key, mode)[0]


def record_key(record: Record) -> str:
    """The platform key of a record: the baseline block it is compared with (:func:`platform_key`)."""
    return platform_key(
        record.device,
        record.device_name or "unknown",
        record.threads,
        record.precision,
        record.mode,
        record.channels_last,
        bool(record.tf32),
    )


def platform_from_record(record: JsonMapping, environment: JsonMapping | None = None) -> JsonObject:
    """The ``platform`` block of a baseline made from this record (and the run's environment)."""
    env = dict(environment or {})
    device = str(record.get("device", env.get("device", "cpu")))
    plat = {
        "key": platform_key(
            device,
            record.get("device_name") or env.get("device_name") or "unknown",
            record.get("threads", env.get("threads")),
            record.get("precision", "fp32"),
            record.get("mode", "eager"),
            bool(record.get("channels_last", False)),
            bool(record.get("tf32")),
        ),
        "device": "cuda" if device.startswith("cuda") else "cpu",
        "device_name": record.get("device_name") or env.get("device_name"),
        "threads": record.get("threads", env.get("threads")),
        "precision": record.get("precision"),
        "mode": record.get("mode"),
        "channels_last": bool(record.get("channels_last", False)),
        "source": "measured",
        "provenance": "measured by pytest-dnnbench (--dnn-save-baseline), one round per run",
    }
    keep = (
        "cpu",
        "cpu_count",
        "torch",
        "torchvision",
        "timm",
        "torch_cuda_build",
        "cuda",
        "cudnn",
        "driver",
        "plugin_version",
        "python",
        "platform",
        "hostname",
        "cudnn_benchmark",
        "tf32_matmul",
        "tf32_cudnn",
        "tf32_requested",
    )
    plat["environment"] = {k: env[k] for k in keep if k in env}
    return plat


# -- the loaded form -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """A loaded baseline file.

    ``platform``: ``key``, ``device``, ``device_name``, ``precision``, ``mode``, ``source``
    (``measured`` or ``paper``), ``provenance``, ...; ``entries``: (model, batch size) ->
    entry dict with at least ``per_image_ms``, ``fps``, ``memory_bytes`` (``{"total": bytes or
    None}``), ``accuracy`` (``{"measured": {"top1": ...} or None, "reference": {"top1": ...} or
    None}``), ``macs``, ``params``, ``latency_ms`` and ``rounds`` (None where unknown).
    ``document`` is the file's document in version 2 (upgraded where the file is of version 1).
    """

    path: Path | None
    platform: JsonObject
    entries: dict[tuple[str, int], JsonObject]
    max_rounds: int = DEFAULT_MAX_ROUNDS
    document: JsonObject = field(default_factory=dict, repr=False, compare=False)

    @property
    def key(self) -> str:
        return str(self.platform.get("key"))

    @property
    def mode(self) -> str:
        """The deployment mode: the platform's ``mode``, else the key's mode part (:func:`split_key`)."""
        mode = self.platform.get("mode")
        return str(mode) if isinstance(mode, str) and mode else split_key(self.key)[1]

    @property
    def base_key(self) -> str:
        """The key with its mode replaced by ``*``: equal for the modes of one platform."""
        mode = self.platform.get("mode")
        return base_key(self.key, mode if isinstance(mode, str) else None)

    def entry(self, model: str, batch_size: int) -> JsonObject | None:
        return self.entries.get((model, int(batch_size)))


@dataclass(frozen=True, eq=False)
class BaselineSet(Mapping[str, Baseline]):
    """A loaded baseline file of either kind, as platform key -> :class:`Baseline` (sorted by key).

    ``single``: the file is one platform's ``pytest-dnnbench-baseline/2`` document (its one
    baseline's ``document`` is then ``document``); otherwise a ``pytest-dnnbench-baseline-set/2``
    document holding the modes of one platform, each block's ``document`` its inner document.
    Either is in version 2, upgraded in memory where the file is of version 1.
    """

    path: Path | None
    baselines: dict[str, Baseline]
    single: bool = True
    document: JsonObject = field(default_factory=dict, repr=False)

    def __getitem__(self, key: str) -> Baseline:
        return self.baselines[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.baselines)

    def __len__(self) -> int:
        return len(self.baselines)

    @property
    def modes(self) -> list[str]:
        """The deployment modes it holds, in key order."""
        return [b.mode for b in self.baselines.values()]

    @property
    def base_key(self) -> str:
        """The platform's key with the mode replaced by ``*`` (every block shares it)."""
        return next(iter(self.baselines.values())).base_key

    def describe(self) -> str:
        """``platform K`` for one platform, ``platforms K1, K2`` for several (as messages name them)."""
        keys = list(self.baselines)
        return f"platform {keys[0]}" if len(keys) == 1 else f"platforms {', '.join(keys)}"


def _where(path: Path | str | None) -> str:
    return str(path) if path is not None else "<baseline>"


def load_baseline(path: Path | str) -> Baseline:
    """Read and check a baseline file of one platform; :class:`BaselineError` names the file and what is wrong.

    A baseline set (several modes, :data:`SET_SCHEMA`) is checked whole; one that holds several
    platforms is a :class:`BaselineError` saying to read it with :func:`load_baselines`.
    """
    p = Path(path)
    data = _read_document(p)
    if isinstance(data, dict) and data.get("schema") in READ_SET_SCHEMAS:
        found = baselines_from_document(data, p)
        if len(found) == 1:
            return next(iter(found.values()))
        raise BaselineError(
            f"baseline file {p} holds {len(found)} platforms ({', '.join(found)}: a baseline set, {SET_SCHEMA!r}); "
            "read it with load_baselines(), which maps each platform key to its baseline"
        )
    return baseline_from_document(data, p)


def load_baselines(path: Path | str) -> BaselineSet:
    """Read and check a baseline file of either kind (one platform, or a set of one platform's modes).

    :class:`BaselineError` names the file, and for a set the block (its index and key) that is wrong.
    """
    p = Path(path)
    return baselines_from_document(_read_document(p), p)


def _read_document(p: Path) -> object:
    """The parsed JSON of a baseline file, read once (:func:`~.jsonfile.load_json`); :class:`BaselineError`
    says why it cannot be read (missing, a loop of links, a directory, not UTF-8, empty, truncated, not
    JSON, nested too deep, an absurd number)."""
    try:
        return load_json(p, "baseline file", regular_only=True)
    except JsonFileError as exc:
        raise BaselineError(str(exc)) from None


def _schema_problem(schema: object, wanted: Sequence[str]) -> str:
    """Why a document of ``schema`` is not one of ``wanted`` (the versions read), for an error message."""
    families = {w.rsplit("/", 1)[0] + "/" for w in wanted}
    if isinstance(schema, str) and any(schema.startswith(f) for f in families):
        return (
            f"schema {schema!r} is a version this one does not read (written by a later version? "
            f"it reads {', '.join(map(repr, wanted))})"
        )
    return f"schema {schema!r} is not {' nor '.join(map(repr, wanted))}"


def baseline_from_document(data: object, path: Path | str | None = None) -> Baseline:
    """One platform's baseline from its parsed ``pytest-dnnbench-baseline`` document of any version (checked;
    upgraded in memory)."""
    where = _where(path)
    if not isinstance(data, dict):
        raise BaselineError(f"baseline file {where}: the top level must be a JSON object, not {type(data).__name__}")
    if data.get("schema") in READ_SET_SCHEMAS:
        raise BaselineError(
            f"baseline file {where} is a baseline set ({data.get('schema')!r}), not one platform's baseline: "
            "read it with load_baselines() or baselines_from_document()"
        )
    if data.get("schema") not in READ_SCHEMAS:
        raise BaselineError(
            f"baseline file {where}: {_schema_problem(data.get('schema'), READ_SCHEMAS)} "
            "(is this a pytest-benchmark or results file rather than a baseline?)"
        )
    return _single(upgrade_document(data), path, where)


def baselines_from_document(data: object, path: Path | str | None = None) -> BaselineSet:
    """The baselines of a parsed baseline file of either kind and any version, by platform key (checked;
    upgraded in memory, :func:`upgrade_document`).

    A set must hold at least one block, each a valid ``pytest-dnnbench-baseline`` document, no
    key twice, all of one platform (one base key, :func:`split_key`); the error names the block.
    """
    where = _where(path)
    if not isinstance(data, dict):
        raise BaselineError(f"baseline file {where}: the top level must be a JSON object, not {type(data).__name__}")
    schema = data.get("schema")
    if schema in READ_SCHEMAS:
        doc = upgrade_document(data)
        one = _single(doc, path, where)
        return BaselineSet(Path(path) if path is not None else None, {one.key: one}, True, doc)
    if schema not in READ_SET_SCHEMAS:
        raise BaselineError(
            f"baseline file {where}: {_schema_problem(schema, (*READ_SCHEMAS, *READ_SET_SCHEMAS))} "
            "(is this a pytest-benchmark or results file rather than a baseline?)"
        )
    blocks = data.get("baselines")
    if not isinstance(blocks, list) or not blocks:
        raise BaselineError(f"baseline file {where}: 'baselines' must be a non-empty list of baseline documents")
    found: dict[str, Baseline] = {}
    first: Baseline | None = None
    upgraded: list[JsonObject] = []
    for i, block in enumerate(blocks):
        label = f"{where}, block {i}"
        if not isinstance(block, dict):
            raise BaselineError(f"baseline file {label}: must be a JSON object, not {type(block).__name__}")
        plat = block.get("platform")
        if isinstance(plat, dict) and isinstance(plat.get("key"), str) and plat["key"]:
            label += f" ({plat['key']})"
        if block.get("schema") not in READ_SCHEMAS:
            raise BaselineError(f"baseline file {label}: {_schema_problem(block.get('schema'), READ_SCHEMAS)}")
        block = upgrade_document(block)
        upgraded.append(block)
        one = _single(block, path, label)
        if one.key in found:
            raise BaselineError(f"baseline file {label}: repeats platform {one.key}")
        if first is not None and one.base_key != first.base_key:
            raise BaselineError(
                f"baseline file {label}: is another platform than {first.key} "
                "(a baseline set holds the deployment modes of one platform)"
            )
        first = first or one
        found[one.key] = one
    doc = {**data, "schema": SET_SCHEMA, "baselines": upgraded}
    return BaselineSet(Path(path) if path is not None else None, dict(sorted(found.items())), False, doc)


def upgrade_document(document: JsonObject) -> JsonObject:
    """A single-platform baseline document of any version as version 2 writes it (a new object; the
    input is not changed); one of version 2 comes back equal.

    Version 1 differs in names only: the platform's environment (``cuda`` -> ``torch_cuda_build``;
    on a CPU platform no cuDNN or TF32 entries), each entry's and round's ``accuracy`` (``measured``
    and ``reference`` apart, :func:`~.upgrade.upgrade_accuracy`), a CPU round's ``cudnn_benchmark``
    (left out). Rounds, figures and their order are kept. Anything malformed is left for the checks
    of the loader to report.
    """
    doc = dict(document)
    if doc.get("schema") in READ_SCHEMAS:
        doc["schema"] = SCHEMA
    platform = doc.get("platform")
    device = platform.get("device") if isinstance(platform, dict) else None
    if isinstance(platform, dict) and isinstance(platform.get("environment"), dict):
        doc["platform"] = {**platform, "environment": upgrade_environment(platform["environment"], device)}
    entries = doc.get("entries")
    if isinstance(entries, list):
        doc["entries"] = [_upgrade_entry(e, device) if isinstance(e, dict) else e for e in entries]
    return doc


def _upgrade_entry(entry: JsonObject, device: object) -> JsonObject:
    out = dict(entry)
    if isinstance(out.get("accuracy"), dict):
        out["accuracy"] = upgrade_accuracy(out["accuracy"])
    out = renamed(out, "param_file_mb", "param_file_mib")
    rounds = out.get("rounds")
    if isinstance(rounds, list):
        out["rounds"] = [_upgrade_round(r, device) if isinstance(r, dict) else r for r in rounds]
    return out


def _upgrade_round(rnd: JsonObject, device: object) -> JsonObject:
    out = dict(rnd)
    if isinstance(out.get("accuracy"), dict):
        out["accuracy"] = upgrade_accuracy(out["accuracy"])
    if device is not None and not is_cuda(device):
        out.pop("cudnn_benchmark", None)
    return out


def _single(data: JsonObject, path: Path | str | None, where: str) -> Baseline:
    """Check a single-platform document of this version (schema already checked, upgraded); ``where`` names it
    in errors."""
    platform = data.get("platform")
    if not isinstance(platform, dict) or not isinstance(platform.get("key"), str) or not platform["key"]:
        raise BaselineError(f"baseline file {where}: 'platform' must be an object with a 'key' string")
    max_rounds = data.get("max_rounds", DEFAULT_MAX_ROUNDS)
    if not isinstance(max_rounds, int) or isinstance(max_rounds, bool) or max_rounds < 1:
        raise BaselineError(f"baseline file {where}: 'max_rounds' must be a positive integer, not {max_rounds!r}")
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, list):
        raise BaselineError(f"baseline file {where}: 'entries' must be a list")
    entries: dict[tuple[str, int], JsonObject] = {}
    for i, e in enumerate(raw_entries):
        _check_entry(e, i, where)
        k = (e["model"], int(e["batch_size"]))
        if k in entries:
            raise BaselineError(f"baseline file {where}: entry {i} repeats {k[0]} at batch {k[1]}")
        entries[k] = e
    return Baseline(
        path=Path(path) if path is not None else None,
        platform=platform,
        entries=entries,
        max_rounds=max_rounds,
        document=data,
    )


def _num(v: object) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))


def _check_entry(e: object, i: int, where: str) -> None:
    if not isinstance(e, dict):
        raise BaselineError(f"baseline file {where}: entry {i} is not an object")
    if not isinstance(e.get("model"), str) or not e["model"]:
        raise BaselineError(f"baseline file {where}: entry {i} has no 'model' name")
    bs = e.get("batch_size")
    if not isinstance(bs, int) or isinstance(bs, bool) or bs < 1:
        raise BaselineError(
            f"baseline file {where}: entry {i} ({e['model']}): 'batch_size' must be a positive integer, not {bs!r}"
        )
    what = f"entry {i} ({e['model']} at batch {bs})"
    for key in ("per_image_ms", "fps", "macs", "flops", "params"):
        if not _num(e.get(key)):
            raise BaselineError(f"baseline file {where}: {what}: {key!r} must be a number or null, not {e.get(key)!r}")
    mem = e.get("memory_bytes", {})
    if not isinstance(mem, dict) or not all(_num(v) for v in mem.values()):
        raise BaselineError(f"baseline file {where}: {what}: 'memory_bytes' must map names to numbers or null")
    acc = e.get("accuracy", {})
    if not isinstance(acc, dict):
        raise BaselineError(f"baseline file {where}: {what}: 'accuracy' must be an object")
    for part in ("measured", "reference"):
        fig = acc.get(part)
        if fig is not None and (not isinstance(fig, dict) or not _num(fig.get("top1")) or not _num(fig.get("top5"))):
            raise BaselineError(
                f"baseline file {where}: {what}: 'accuracy.{part}' must be null or an object with a numeric "
                "or null 'top1' and 'top5'"
            )
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
        if ci is not None and (
            not isinstance(ci, list) or len(ci) != 2 or not all(_num(v) and v is not None for v in ci)
        ):
            raise BaselineError(f"baseline file {where}: {what}: round {j}: 'ci_median_ms' must be [low, high]")
    lat = e.get("latency_ms", {})
    if not isinstance(lat, dict) or not _num(lat.get("median")):
        raise BaselineError(
            f"baseline file {where}: {what}: 'latency_ms' must be an object with a numeric or null 'median'"
        )


# -- rounds, entries, merging, saving ----------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def round_from_record(record: JsonMapping, created: str | None = None) -> JsonObject:
    """One round: what a later comparison needs from this run, bounded in size (21 quantiles, not every sample)."""
    lat = record["latency_ms"]
    samples = sorted(float(s) for s in lat.get("samples") or [])
    quantiles = [_round6(percentile(samples, q)) for q in ROUND_QUANTILES] if samples else None
    ci = lat.get("ci_median")
    acc = upgrade_accuracy(record.get("accuracy") or {})
    measured, reference = acc.get("measured"), acc.get("reference")
    return {
        "created": created or _now(),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "median_ms": float(lat["median"]),
        "ci_median_ms": [float(ci[0]), float(ci[1])] if ci else None,
        "n": int(lat.get("n") or len(samples)),
        "quantiles_ms": quantiles,
        "capped": bool(lat.get("capped", False)),
        **({"busy": True} if (record.get("load") or {}).get("busy") else {}),
        "memory_bytes": dict(record.get("memory_bytes") or {}),
        "macs": record.get("macs"),
        "params": record.get("params"),
        "accuracy": {
            "measured": {k: measured.get(k) for k in ("top1", "top5", "n_images")} if measured else None,
            "reference": {k: reference.get(k) for k in ("top1", "top5", "source")} if reference else None,
        },
        **({"cudnn_benchmark": record["cudnn_benchmark"]} if "cudnn_benchmark" in record else {}),
        "seed": record.get("seed"),
    }


def _round6(x: float) -> float:
    """Six significant digits: far below timing noise, and keeps the files readable."""
    return float(f"{x:.6g}")


def _median(values: Iterable[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def log_spread(medians: Sequence[float]) -> float | None:
    """Sample standard deviation of the log round medians (None with fewer than two rounds)."""
    logs = [math.log(m) for m in medians if m and m > 0]
    return float(statistics.stdev(logs)) if len(logs) >= 2 else None


def summarize_entry(entry: JsonObject) -> JsonObject:
    """Recompute an entry's headline figures from its rounds (median over rounds; latest for counts)."""
    rounds = entry.get("rounds") or []
    if not rounds:
        return entry
    medians = [r["median_ms"] for r in rounds]
    med = _median(medians)
    bs = int(entry["batch_size"])
    last = rounds[-1]
    entry["latency_ms"] = {
        "median": med,
        "round_medians": medians,
        "rounds": len(rounds),
        "spread": log_spread(medians),
    }
    entry["per_image_ms"] = med / bs if med else None
    entry["fps"] = 1000.0 * bs / med if med else None
    mem_keys = sorted({k for r in rounds for k in (r.get("memory_bytes") or {})})
    entry["memory_bytes"] = {
        k: _int_or_none(_median((r.get("memory_bytes") or {}).get(k) for r in rounds)) for k in mem_keys
    } or {"total": None}
    entry.setdefault("memory_bytes", {}).setdefault("total", None)
    entry["macs"] = last.get("macs")
    entry["flops"] = 2 * last["macs"] if isinstance(last.get("macs"), (int, float)) else None
    entry["params"] = last.get("params")
    entry["accuracy"] = dict(last.get("accuracy") or {"measured": None, "reference": None})
    return entry


def _int_or_none(v: float | None) -> int | None:
    return None if v is None else int(round(v))


def new_document(platform: JsonObject, max_rounds: int = DEFAULT_MAX_ROUNDS) -> JsonObject:
    return {"schema": SCHEMA, "platform": dict(platform), "max_rounds": int(max_rounds), "entries": []}


def set_document(documents: Iterable[JsonObject]) -> JsonObject:
    """A baseline set of these single-platform documents (the modes of one platform), sorted by key.

    The documents are kept as they are (not copied): each block of the file is exactly one of them.
    """
    blocks = sorted(documents, key=lambda d: str((d.get("platform") or {}).get("key")))
    return {"schema": SET_SCHEMA, "baselines": blocks}


def merge_records(
    document: JsonObject | None,
    records: Iterable[JsonMapping],
    platform: JsonObject,
    max_rounds: int | None = None,
    created: str | None = None,
) -> JsonObject:
    """Add one round per record to ``document`` (a new one if None); other entries are kept.

    Rounds beyond ``max_rounds`` (the oldest) are dropped. An entry whose network changed
    (MACs, parameters or input size differ from its last round) restarts its rounds: the old
    ones timed another network. Returns a new document of this version (``document`` may be of an
    earlier one: :func:`upgrade_document`, every round kept); ``document`` is not modified.
    """
    doc = upgrade_document(json.loads(json.dumps(document))) if document is not None else new_document(platform)
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


def _changed_network(last_round: JsonObject, rec: JsonMapping, entry: JsonObject) -> bool:
    for key in ("macs", "params"):
        a, b = last_round.get(key), rec.get(key)
        if a is not None and b is not None and a != b:
            return True
    size = entry.get("input_size")
    return bool(size) and list(rec.get("input_size") or size or ()) != list(size or ())


def document_text(document: JsonObject) -> str:
    return json.dumps(document, indent=1, allow_nan=False, sort_keys=False) + "\n"


def save_document(path: Path | str, document: JsonObject) -> None:
    """Write atomically: readers (and a crash or Ctrl-C) see the old file or the new one, never half of one."""
    baselines_from_document(document, path)  # never write what we could not read back
    atomic_write_text(Path(path), document_text(document))


# -- the paper's figures -------------------------------------------------------------------------


def paper_baseline_files(directory: Path | None = None) -> dict[str, Path]:
    """Paths of the shipped paper baselines (this format): ``{"titan_xp": ..., "jetson_tx1": ...}``.

    They live in the repository's ``baselines/paper/``; :func:`paper_baseline` builds the same
    data in memory where the package is installed without that folder.
    """
    d = Path(directory) if directory is not None else PAPER_DIR
    return {p: d / f"bianco2018-{p.replace('_', '-')}.json" for p in PAPER_PLATFORMS}


def paper_benchmark_files(directory: Path | None = None) -> dict[str, Path]:
    """Paths of the paper's figures as pytest-benchmark runs (for ``--benchmark-compare``)."""
    d = Path(directory) if directory is not None else PAPER_DIR
    return {p: d / f"{i + 1:04d}_bianco2018-{p.replace('_', '-')}.json" for i, p in enumerate(PAPER_PLATFORMS)}


#: Seconds a saver waits for another run's save of the same file to finish.
LOCK_TIMEOUT_S = 120.0


# -- saving a run ----------------------------------------------------------------------------------


@dataclass
class SaveOutcome:
    """What saving a run's rounds did: the notes for the summary (in order), the files written, the
    notes among them that say what was saved (the summary lists those with the files written), whether
    it failed."""

    notes: list[str] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)
    failed: bool = False
    saved_notes: list[str] = field(default_factory=list)


#: A run's records to save, by platform key: (the platform block, the records).
Groups = dict[str, tuple[JsonObject, list[JsonMapping]]]


def save_run(
    typed: Sequence[Record],
    environment: JsonMapping | None,
    *,
    choice: str,
    root: Path,
    max_rounds: int,
    force: bool,
    regressions: int,
    interrupted: bool,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> SaveOutcome:
    """Add this run's records as one round each to the baseline file(s) ``choice`` names (a round is the
    record's JSON form, cut to what a baseline keeps).

    ``choice``: ``"auto"`` (one file per platform key, so per mode, under ``root/baselines``) or a
    path. A path holds one platform: the records of one mode make (or merge into) a
    ``pytest-dnnbench-baseline/2`` document as ever; those of several modes of one platform, or a
    mode added to a file of another, make a baseline set with one block per mode (an existing
    file's blocks and rounds kept). A file of version 1 is rewritten in version 2, every round
    kept. Records of several platforms (apart from the mode) are never saved to one path. A run
    that was interrupted, produced no record, or regressed (unless ``force``) saves nothing;
    neither does a file that cannot be read, or that belongs to another platform (unless
    ``force``): it is left untouched and the outcome says why.
    """
    records = [r.to_json() for r in typed]  # the file boundary: a round is written as JSON
    out = SaveOutcome()
    usable = [r for r in records if (r.get("latency_ms") or {}).get("median")]
    too_few = [r for r in usable if (r.get("latency_ms") or {}).get("insufficient")]
    if too_few:
        names = ", ".join(f"{r['model']} at batch {r['batch_size']} (n = {r['latency_ms'].get('n')})" for r in too_few)
        out.notes.append(
            f"not saved as baseline rounds: {len(too_few)} result(s) with fewer samples than the minimum: {names} "
            "(raise --dnn-max-time)"
        )
        usable = [r for r in usable if r not in too_few]
    if not usable:
        out.notes.append(
            "baseline not saved: this run produced no benchmark records" + (" with enough samples" if too_few else "")
        )
        return out
    if interrupted:
        out.notes.append("baseline not saved: the run was interrupted")
        return out
    if regressions and not force:
        out.notes.append(
            f"baseline not saved: {regressions} regression(s) in this run; a regressed run never "
            "overwrites the baseline (add --dnn-baseline-force to accept it)"
        )
        return out
    groups: Groups = {}
    for rec in usable:
        plat = platform_from_record(rec, environment)
        groups.setdefault(plat["key"], (plat, []))[1].append(rec)
    targets: list[tuple[Path, Groups]]
    if choice == "auto":
        targets = [(root / "baselines" / f"{key}.json", {key: group}) for key, group in groups.items()]
    else:
        bases = {base_key(key, plat.get("mode")) for key, (plat, _) in groups.items()}
        if len(bases) > 1:
            out.notes.append(
                f"baseline not saved: the records come from {len(bases)} platforms "
                f"({', '.join(groups)}); one file holds the deployment modes of one platform: use "
                "--dnn-save-baseline without a path (one file per platform)"
            )
            out.failed = True
            return out
        targets = [(Path(choice), groups)]
    for path, file_groups in targets:
        shown = shown_path(path, root)
        try:
            with file_lock(path, lock_timeout_s):
                _save_file(
                    out, path, shown, file_groups, max_rounds, force, bool(regressions), by_mode=choice != "auto"
                )
        except LockTimeout as exc:
            out.notes.append(f"baseline not saved to {shown}: {exc}")
            out.failed = True
        except OSError as exc:  # no lock file can be made there (a read-only folder, ...)
            out.notes.append(f"baseline not saved to {shown}: cannot make the lock file {lock_path(path)} ({exc})")
            out.failed = True
    return out


class LockTimeout(Exception):
    """Another process held a file's lock for longer than the bounded wait."""


#: Seconds between two tries of a lock another process holds.
LOCK_POLL_S = 0.05


@contextlib.contextmanager
def file_lock(path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the inter-process lock of ``path`` (a hidden ``.NAME.lock`` file beside it, :func:`lock_path`)
    while reading, merging and writing it, so that concurrent savers on one host all keep their rounds.

    The lock file exists only while a process holds it: its holder removes it before it lets go, so that
    no lock file is left in a ``baselines/`` folder that ``git add`` takes whole. A waiter that then gets
    the lock of the removed file sees that the path no longer names the file it locked, and locks the file
    at the path instead (``flock``; the lock beside the file, not in a temporary folder, so that every
    process that reaches the file, under any user, ``TMPDIR`` or container, agrees on it). Only a run
    killed while it held the lock leaves the file behind (empty, or with its PID: safe to delete once no
    run is saving). Advisory and per host: several hosts writing one file on a network volume are not
    covered (each host saves its own file; docs/baselines.md).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_path(path)
    try:
        import fcntl  # noqa: F401
    except ImportError:  # Windows: filelock's lock there removes its file on release
        fd = None
    else:
        fd = _acquire_flock(lock, timeout_s)
    if fd is None:  # no fcntl, or a filesystem without flock
        with _filelock(lock, timeout_s):
            yield
        return
    try:
        yield
    finally:
        _release_flock(lock, fd)


def _timeout(lock: Path, timeout_s: float) -> LockTimeout:
    return LockTimeout(
        f"another run has held the lock {lock} for over {timeout_s:g} s "
        "(a save still running, or a process stuck on that file); the file was left untouched"
    )


def _acquire_flock(lock: Path, timeout_s: float) -> int | None:
    """The descriptor of ``lock``, locked (``flock``) and still the file at that path; None where the
    filesystem has no ``flock`` (the caller falls back to :mod:`filelock`). :class:`LockTimeout` after
    ``timeout_s``; an OSError where the lock file cannot be made."""
    import fcntl

    deadline = time.monotonic() + timeout_s
    extra = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | extra, 0o644)
        except PermissionError as denied:  # another user's lock file? flock needs no write access
            try:
                fd = os.open(lock, os.O_RDONLY | extra)
            except FileNotFoundError:
                if os.access(lock.parent, os.W_OK):
                    continue  # removed by its holder meanwhile: make it
                raise denied from None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK):
                        os.close(fd)
                        return None
                    if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                        raise
                if time.monotonic() >= deadline:
                    raise _timeout(lock, timeout_s)
                time.sleep(LOCK_POLL_S)
            if _names(lock, fd):
                return fd
        except BaseException:
            os.close(fd)
            raise
        # The holder removed this file as it let go (and another process may have made a new one since):
        # this lock guards nothing. Lock the file at the path now.
        os.close(fd)


def _names(lock: Path, fd: int) -> bool:
    """Does the path ``lock`` still name the open file ``fd``?"""
    try:
        return os.path.samestat(os.lstat(lock), os.fstat(fd))
    except FileNotFoundError:
        return False


def _release_flock(lock: Path, fd: int) -> None:
    """Remove the lock file while still holding its lock (a waiter that gets it then tries again), then let go."""
    import fcntl

    try:
        if _names(lock, fd):
            os.unlink(lock)
    except OSError:
        pass  # left behind: still a working lock file
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _filelock(lock: Path, timeout_s: float) -> Iterator[None]:
    """The lock by :mod:`filelock`, where ``flock`` is missing (Windows, some network filesystems)."""
    import filelock

    held = filelock.FileLock(str(lock), timeout=timeout_s)
    try:
        held.acquire()
    except filelock.Timeout:
        raise _timeout(lock, timeout_s) from None
    try:
        yield
    finally:
        held.release()


def lock_path(path: Path) -> Path:
    """The lock file of ``path`` (:func:`file_lock`): ``.NAME.lock`` beside it, there only while a process holds
    the lock (or one killed while holding it left it)."""
    return path.parent / f".{path.name}.lock"


def shown_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` where it lies below it (shorter in messages), else as it is."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def busy_rounds_note(records: Sequence[JsonMapping], entries: Sequence[JsonMapping]) -> str:
    """What the line of a saved file adds about the new rounds measured on a busy machine (``""`` where none
    was): the gate leaves busy rounds out of its comparisons, and judges an entry of busy rounds only
    inconclusive. ``entries``: the updated entries, after the save."""
    busy = sum(1 for r in records if (r.get("load") or {}).get("busy"))
    if not busy:
        return ""
    text = (
        f"; {busy} of the {len(records)} new round(s) {'was' if busy == 1 else 'were'} measured on a busy "
        "machine and will not be compared against (re-record them on a quiet machine)"
    )
    only_busy = [e for e in entries if e.get("rounds") and all(r.get("busy") for r in e["rounds"])]
    if only_busy:
        names = ", ".join(f"{e['model']} at batch {e['batch_size']}" for e in only_busy[:3])
        text += (
            f"; {len(only_busy)} entr{'y holds' if len(only_busy) == 1 else 'ies hold'} busy rounds only "
            f"({names}{', ...' if len(only_busy) > 3 else ''}): {'its' if len(only_busy) == 1 else 'their'} "
            "latency comparisons will be inconclusive"
        )
    return text


def _save_file(
    out: SaveOutcome,
    path: Path,
    shown: str,
    groups: Groups,
    max_rounds: int,
    force: bool,
    forced: bool,
    *,
    by_mode: bool,
) -> None:
    """Merge ``groups`` (one platform's modes) into the file at ``path``; the caller holds its lock.

    ``by_mode`` (a path named by the user): a file of the same platform in other modes takes this
    run's modes as blocks of a baseline set. Otherwise (``auto``) the file must hold the key itself.
    A file of another platform is left untouched unless ``force``.
    """
    existing = None
    if path.exists() or path.is_symlink():  # a broken or looping link is an error, not replaced by a new file
        try:
            existing = load_baselines(path)
        except BaselineError as exc:
            out.notes.append(f"baseline not saved: {exc} (the file was left untouched)")
            out.failed = True
            return
    keys = list(groups)
    docs: dict[str, JsonObject] = {}
    was_set = False
    replaced = None
    if existing is not None:
        first_plat = groups[keys[0]][0]
        if by_mode:
            fits = existing.base_key == base_key(keys[0], first_plat.get("mode"))
        else:
            fits = all(k in existing for k in keys)
        if fits:
            docs = {k: b.document for k, b in existing.items()}
            was_set = not existing.single
        elif not force:
            out.notes.append(
                f"baseline not saved: {shown} is for {existing.describe()}, this run is {', '.join(keys)} "
                "(choose another path, or --dnn-baseline-force to replace its platform)"
            )
            out.failed = True
            return
        elif existing.single and len(keys) == 1:
            docs = {keys[0]: existing.document}  # as ever: its entries are kept under this run's platform
        else:
            replaced = f"{shown}: the baselines of {existing.describe()} were replaced (--dnn-baseline-force)"
    for key, (plat, recs) in groups.items():
        docs[key] = merge_records(docs.get(key), recs, plat, max_rounds=max_rounds)
    as_set = was_set or len(docs) > 1
    doc = set_document(docs.values()) if as_set else docs[keys[0]]
    try:
        save_document(path, doc)
    except (OSError, ValueError) as exc:
        out.notes.append(f"baseline not saved to {shown}: {exc}")
        out.failed = True
        return
    out.saved.append(shown)
    if replaced:
        out.notes.append(replaced)
    for key, (plat, recs) in groups.items():
        block = docs[key]
        where = f"{shown}, mode {plat.get('mode') or split_key(key)[1]}" if as_set else shown
        touched = {(r["model"], int(r["batch_size"])) for r in recs}
        rounds = sorted({len(e["rounds"]) for e in block["entries"] if (e["model"], e["batch_size"]) in touched})
        kept = len(block["entries"]) - len(touched)
        note = (
            f"baseline saved: {where} ({len(touched)} entr{'y' if len(touched) == 1 else 'ies'} "
            f"updated, {kept} kept; rounds per updated entry: {', '.join(map(str, rounds))} of at most "
            f"{block['max_rounds']}{'; forced despite regressions' if forced else ''})"
            + busy_rounds_note(recs, [e for e in block["entries"] if (e["model"], e["batch_size"]) in touched])
        )
        out.notes.append(note)
        out.saved_notes.append(note)
    if as_set and not was_set:
        modes = [str(d["platform"].get("mode") or split_key(k)[1]) for k, d in sorted(docs.items())]
        out.notes.append(
            f"{shown} now holds the modes {', '.join(modes)} of one platform, one block each "
            f"(a baseline set, {SET_SCHEMA!r}; docs/baselines.md)"
        )
