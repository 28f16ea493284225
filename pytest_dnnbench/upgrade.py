"""Files of earlier versions, upgraded in memory to the shapes this version writes (pure JSON; no torch, no pytest).

Results files ``pytest-dnnbench/1`` and baseline files ``pytest-dnnbench-baseline/1`` (and sets,
``pytest-dnnbench-baseline-set/1``) differ from version 2 in three places, all renames or moves;
no figure changes:

- ``param_file_mb`` (which held MiB) is ``param_file_mib``;
- ``accuracy`` was flat, ``{"top1", "top5", "status": measured|reference|unavailable, "source",
  "n_images", ...}``: a published figure sat in ``top1`` beside measured ones. It is now
  ``{"measured": {...} | null, "reference": {...} | null, "reason": ...}`` (:func:`upgrade_accuracy`);
- the environment's ``cuda`` (torch's build, written on CPU runs too) is ``torch_cuda_build``; on
  CPU runs the cuDNN and TF32 entries, and a record's ``cudnn_benchmark``, are left out
  (:data:`CUDA_ONLY_ENVIRONMENT`); ``cuda`` stays on CUDA runs.

Baseline documents are upgraded by :func:`upgrade_document` (the platform's environment, each
entry and round); the schema names are the reader's (:mod:`.baseline_store` passes them), so that
this module imports neither the reader nor the writer of baseline files.

Every function here takes data of any version and returns a new object of the current shape (the
input is never changed; unchanged values may be shared with it). Each is idempotent: data already
current comes back equal.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .jsontypes import JsonMapping, JsonObject

__all__ = [
    "CUDA_ONLY_ENVIRONMENT",
    "MEASURED_KEYS",
    "accuracy_parts",
    "is_cuda",
    "upgrade_accuracy",
    "upgrade_document",
    "upgrade_environment",
    "upgrade_record",
]

#: Environment entries that describe cuDNN or TF32, written on CUDA runs only.
CUDA_ONLY_ENVIRONMENT = (
    "cudnn",
    "cudnn_benchmark",
    "tf32_matmul",
    "tf32_cudnn",
    "tf32_api",
    "tf32_env_overrides",
    "tf32_requested",
)
#: The keys of a flat (version 1) accuracy that describe a measurement: they move to ``accuracy.measured``.
MEASURED_KEYS = (
    "top1",
    "top5",
    "n_images",
    "source",
    "dataset",
    "layout",
    "n_classes",
    "n_available",
    "limit",
    "label_order",
    "device",
    "preprocess",
    "seconds",
    "tie_rule",
)
#: The keys of a flat accuracy that the new shape holds elsewhere (or no longer holds).
_FLAT_KEYS = frozenset(MEASURED_KEYS) | {"status", "reason", "reference"}


def is_cuda(device: object) -> bool:
    """Whether a device string (``cuda``, ``cuda:0``, ``cpu``...) names a CUDA device."""
    return isinstance(device, str) and device.startswith("cuda")


def _is_flat(acc: JsonMapping) -> bool:
    """A version-1 accuracy: it has ``status`` or a top-level ``top1``; the current shape has neither."""
    return "status" in acc or "top1" in acc


def upgrade_accuracy(acc: object) -> JsonObject:
    """An ``accuracy`` object in the current shape: ``measured`` and ``reference`` apart.

    A flat one is split by its ``status``: ``measured`` moves the measurement's keys
    (:data:`MEASURED_KEYS`) into ``measured``; ``reference`` (or no status, with a figure) makes its
    figure the ``reference`` (``{"top1", "top5", "source"}``), unless the record carried the
    published figure apart already (``reference``); ``unavailable`` has neither, and its
    ``source`` becomes the ``reason`` where none was given. Other keys (``unit``, ``paper_top1``,
    the weights) are kept after them, in their order. Not a JSON object: returned as ``{}``.
    """
    if not isinstance(acc, Mapping):
        return {}
    if not _is_flat(acc):
        return copy.deepcopy(dict(acc))
    status = acc.get("status")
    top1 = acc.get("top1")
    kept = {k: copy.deepcopy(v) for k, v in acc.items() if k not in _FLAT_KEYS}
    published = acc.get("reference")
    reference: JsonObject | None = copy.deepcopy(dict(published)) if isinstance(published, Mapping) else None
    measured: JsonObject | None = None
    reason = acc.get("reason")
    if status == "measured":
        measured = {k: copy.deepcopy(acc[k]) for k in MEASURED_KEYS if k in acc}
    elif top1 is not None and status != "unavailable":
        if reference is None:
            reference = {"top1": top1, "top5": acc.get("top5"), "source": acc.get("source")}
    elif reason is None and acc.get("source") is not None:
        reason = acc.get("source")
    out: JsonObject = {"measured": measured, "reference": reference}
    if reason is not None or "reason" in acc:
        out["reason"] = reason
    out.update(kept)
    return out


def accuracy_parts(acc: object) -> tuple[JsonMapping | None, JsonMapping | None]:
    """``(measured, reference)`` of an accuracy object of any version; each None where absent."""
    new = upgrade_accuracy(acc)
    measured, reference = new.get("measured"), new.get("reference")
    return (
        measured if isinstance(measured, Mapping) else None,
        reference if isinstance(reference, Mapping) else None,
    )


def renamed(data: JsonMapping, old: str, new: str) -> JsonObject:
    """``data`` with key ``old`` renamed ``new`` in its place (unchanged where ``new`` is there already)."""
    if old not in data or new in data:
        return dict(data)
    return {(new if k == old else k): v for k, v in data.items()}


def upgrade_record(record: JsonMapping) -> JsonObject:
    """A record of any version in the current shape (a new object; its values deep-copied where changed).

    ``param_file_mb`` -> ``param_file_mib``; a flat ``accuracy`` -> :func:`upgrade_accuracy`; a CPU
    record's ``cudnn_benchmark`` is left out.
    """
    out = renamed(record, "param_file_mb", "param_file_mib")
    if "cudnn_benchmark" in out and "device" in out and not is_cuda(out["device"]):
        del out["cudnn_benchmark"]
    acc = out.get("accuracy")
    if isinstance(acc, Mapping) and _is_flat(acc):
        out["accuracy"] = upgrade_accuracy(acc)
    return out


def upgrade_environment(environment: JsonMapping, device: object = None) -> JsonObject:
    """An environment of any version in the current shape.

    ``cuda`` (torch's CUDA build, written by version 1 on every run) becomes ``torch_cuda_build`` in
    its place; on a CUDA run ``cuda`` stays too. On a CPU run the cuDNN and TF32 entries
    (:data:`CUDA_ONLY_ENVIRONMENT`) are left out. ``device`` is the run's device where the
    environment does not name it (a baseline's platform block); where neither tells, only the
    rename is made.
    """
    dev = environment.get("device", device)
    known = isinstance(dev, str) and bool(dev)
    cuda = is_cuda(dev)
    out: dict[str, Any] = {}
    for key, value in environment.items():
        if key == "cuda" and "torch_cuda_build" not in environment:
            out["torch_cuda_build"] = value
            if cuda:
                out["cuda"] = value
        elif known and not cuda and key in CUDA_ONLY_ENVIRONMENT:
            continue
        else:
            out[key] = value
    return out


def upgrade_document(document: JsonObject, *, schema: str, read_schemas: Sequence[str]) -> JsonObject:
    """A single-platform baseline document of any version as version 2 writes it (a new object; the
    input is not changed); one of version 2 comes back equal.

    ``schema``: the schema this version writes (``baseline_store.SCHEMA``); a document whose schema
    is one of ``read_schemas`` (the versions read, ``baseline_store.READ_SCHEMAS``) gets it, any
    other schema is left as it is. Version 1 differs in names only: the platform's environment
    (``cuda`` -> ``torch_cuda_build``; on a CPU platform no cuDNN or TF32 entries), each entry's and
    round's ``accuracy`` (``measured`` and ``reference`` apart, :func:`upgrade_accuracy`), a CPU
    round's ``cudnn_benchmark`` (left out). Rounds, figures and their order are kept. Anything
    malformed is left for the checks of the loader to report.
    """
    doc = dict(document)
    if doc.get("schema") in read_schemas:
        doc["schema"] = schema
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
