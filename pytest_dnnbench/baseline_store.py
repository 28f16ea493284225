"""Reading baseline files: the format, platform keys, loading and validation.

Pure (no torch, no pytest). Writing them (merging a run's rounds, the lock, atomic saving) is
:mod:`.baseline_save`; upgrading a file of version 1 in memory, :func:`~.upgrade.upgrade_document`.
The comparisons that turn a record and a baseline entry into checks live in :mod:`.gate`; the
paper's figures as baselines in :mod:`.paperdata`. The format is documented in
``docs/baselines.md``; in short, one JSON file per platform::

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
well, upgraded in memory (:func:`~.upgrade.upgrade_document`); a save to such a file
(:func:`~.baseline_save.save_run`) writes it in version 2, every round kept.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .jsonfile import JsonFileError, load_json
from .jsontypes import JsonMapping, JsonObject
from .upgrade import upgrade_document

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
    "baseline_from_document",
    "baselines_from_document",
    "load_baseline",
    "load_baselines",
    "log_spread",
    "split_key",
    "platform_key",
    "platform_from_record",
    "record_key",
    "shown_path",
    "paper_baseline_files",
    "paper_benchmark_files",
    "PAPER_DIR",
]


#: One platform's baseline, as this version writes it.
SCHEMA = "pytest-dnnbench-baseline/2"
#: Several deployment modes of one platform in one file: ``{"schema": SET_SCHEMA, "baselines": [<document>, ...]}``.
SET_SCHEMA = "pytest-dnnbench-baseline-set/2"
#: The versions read (earlier ones upgraded in memory: :func:`~.upgrade.upgrade_document`).
READ_SCHEMAS = ("pytest-dnnbench-baseline/1", SCHEMA)
READ_SET_SCHEMAS = ("pytest-dnnbench-baseline-set/1", SET_SCHEMA)
DEFAULT_MAX_ROUNDS = 10


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
    """The platform key of a record: the baseline block it is compared with (:func:`platform_from_record`)."""
    return str(platform_from_record(record)["key"])


def platform_from_record(record: Record, environment: JsonMapping | None = None) -> JsonObject:
    """The ``platform`` block of a baseline made from this record (and the run's environment)."""
    env = dict(environment or {})
    device = record.device
    threads = record.threads if record.threads is not None else env.get("threads")
    plat = {
        "key": platform_key(
            device,
            record.device_name or env.get("device_name") or "unknown",
            threads,
            record.precision,
            record.mode,
            record.channels_last,
            bool(record.tf32),
        ),
        "device": "cuda" if device.startswith("cuda") else "cpu",
        "device_name": record.device_name or env.get("device_name"),
        "threads": threads,
        "precision": record.precision,
        "mode": record.mode,
        "channels_last": record.channels_last,
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
    return _single(upgrade_document(data, schema=SCHEMA, read_schemas=READ_SCHEMAS), path, where)


def baselines_from_document(data: object, path: Path | str | None = None) -> BaselineSet:
    """The baselines of a parsed baseline file of either kind and any version, by platform key (checked;
    upgraded in memory, :func:`~.upgrade.upgrade_document`).

    A set must hold at least one block, each a valid ``pytest-dnnbench-baseline`` document, no
    key twice, all of one platform (one base key, :func:`split_key`); the error names the block.
    """
    where = _where(path)
    if not isinstance(data, dict):
        raise BaselineError(f"baseline file {where}: the top level must be a JSON object, not {type(data).__name__}")
    schema = data.get("schema")
    if schema in READ_SCHEMAS:
        doc = upgrade_document(data, schema=SCHEMA, read_schemas=READ_SCHEMAS)
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
        block = upgrade_document(block, schema=SCHEMA, read_schemas=READ_SCHEMAS)
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


# -- the spread between rounds (``latency_ms.spread``) ----------------------------------------------


def log_spread(medians: Sequence[float]) -> float | None:
    """Sample standard deviation of the log round medians (None with fewer than two rounds)."""
    logs = [math.log(m) for m in medians if m and m > 0]
    return float(statistics.stdev(logs)) if len(logs) >= 2 else None


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


# -- messages ------------------------------------------------------------------------------------


def shown_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` where it lies below it (shorter in messages), else as it is."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
