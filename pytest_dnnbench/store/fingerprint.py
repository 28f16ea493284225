"""The fingerprint of a record: one hash of everything that must match for two figures to be comparable.

As conbench's ``history_fingerprint``: two records with one fingerprint measured the same work on the same
kind of machine in the same way, so their figures form one history (a change between them is the code's, the
library's or the machine's, never the benchmark's). Pure: no SQLAlchemy, no torch, no pytest.

The fields (:data:`FIELDS`), each read from the record as the results file writes it (docs/usage.md):

``version``
    :data:`VERSION`, so that a later change of these rules makes new fingerprints instead of mixing histories.
``model``, ``source``
    The model's short name and the library that built it (``torchvision``, ``timm``, ``custom``...).
``weights``
    Which weights the model ran with: ``as-built`` (the builder's own: random weights from the seed, or what a
    user's factory loads), ``pretrained:<file name>`` or ``file:<file name>`` (``--dnn-weights``; the file's
    name, not its folder: caches sit in other folders on other machines, and hub file names carry the
    weights' hash). Read from the record's ``accuracy.weights`` and ``accuracy.weights_file``.
``batch_size``, ``input_size``
    The batch and one input's shape (``[3, 224, 224]``).
``mode``, ``precision``
    The deployment mode (``eager``, ``compile``, ``onnxruntime``...) and the precision (``fp32``, ``fp16``...).
``threads``
    The intra-op threads the measurement ran with (also on CUDA: the host side launches the kernels).
``channels_last``, ``tf32``, ``cudnn_benchmark``
    The memory format; TF32 allowed for fp32 work on a GPU; cuDNN's autotuner (None on the CPU for both).
``platform``
    The platform key of the baseline files (:func:`~pytest_dnnbench.baseline_store.platform_key`): the
    device kind and name (CPU model or GPU), threads on the CPU, precision, mode, ``-tf32``, ``-cl``.

Left out on purpose: the seed (it changes the draw of the weights and the input, not the work), software
versions (torch, the plugin: a history is *for* seeing what they change), the host's name (two hosts of one
platform key are one history, told apart in the run's metadata), every measured figure and everything a
check or a report adds (``checks``, ``outcome``, ``baseline``, ``extra``...).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import PurePath, PurePosixPath, PureWindowsPath

from ..baseline_store import platform_key
from ..jsontypes import JsonMapping, JsonObject

__all__ = ["FIELDS", "VERSION", "comparability", "fingerprint"]

#: The version of these rules: part of every fingerprint.
VERSION = 1

#: The fields hashed, in the order documented above.
FIELDS = (
    "version",
    "model",
    "source",
    "weights",
    "batch_size",
    "input_size",
    "mode",
    "precision",
    "threads",
    "channels_last",
    "tf32",
    "cudnn_benchmark",
    "platform",
)


def _text(value: object, default: str | None = None) -> str | None:
    return value if isinstance(value, str) and value else default


def _int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if float(value).is_integer() else None


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _file_name(path: str) -> str:
    """The last part of a path written on any system."""
    pure: PurePath = PureWindowsPath(path) if "\\" in path and "/" not in path else PurePosixPath(path)
    return pure.name or path


def _weights(record: JsonMapping) -> str:
    accuracy = record.get("accuracy")
    kind = file = None
    if isinstance(accuracy, Mapping):
        kind, file = _text(accuracy.get("weights")), _text(accuracy.get("weights_file"))
    if kind in (None, "random", "factory"):
        return "as-built"
    return f"{kind}:{_file_name(file)}" if file else str(kind)


def comparability(record: JsonMapping, environment: JsonMapping | None = None) -> JsonObject:
    """The fields of :data:`FIELDS` read from ``record`` (a record's JSON), with the defaults a record's
    reader gives a key it lacks (``device`` cpu, ``precision`` fp32, ``mode`` eager); ``environment`` (the
    run's) gives the device name and the threads where the record lacks them, as the baseline files do."""
    env = environment or {}
    device = _text(record.get("device"), "cpu") or "cpu"
    on_cuda = device.startswith("cuda")
    precision = _text(record.get("precision"), "fp32") or "fp32"
    mode = _text(record.get("mode"), "eager") or "eager"
    threads = _int(record.get("threads"))
    if threads is None:
        threads = _int(env.get("threads"))
    channels_last = bool(_flag(record.get("channels_last")))
    tf32 = bool(_flag(record.get("tf32"))) if on_cuda else None
    device_name = _text(record.get("device_name")) or _text(env.get("device_name")) or "unknown"
    size = record.get("input_size")
    input_size = [_int(v) for v in size] if isinstance(size, (list, tuple)) else None
    return {
        "version": VERSION,
        "model": _text(record.get("model")),
        "source": _text(record.get("source"), "custom"),
        "weights": _weights(record),
        "batch_size": _int(record.get("batch_size")),
        "input_size": input_size,
        "mode": mode,
        "precision": precision,
        "threads": threads,
        "channels_last": channels_last,
        "tf32": tf32,
        "cudnn_benchmark": _flag(record.get("cudnn_benchmark")) if on_cuda else None,
        "platform": platform_key(device, device_name, threads, precision, mode, channels_last, bool(tf32)),
    }


def fingerprint(record: JsonMapping, environment: JsonMapping | None = None) -> str:
    """The record's fingerprint: the SHA-256 (hex) of the canonical JSON of :func:`comparability`
    (keys sorted, no spaces, ASCII)."""
    text = json.dumps(comparability(record, environment), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()
