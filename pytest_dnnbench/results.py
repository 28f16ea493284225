"""Results records (schema ``pytest-dnnbench/1``, DESIGN §6) and the atomic results file.

Records are plain JSON data, so that they travel with pytest reports (and so
through pytest-xdist) unchanged. No torch, no pytest here.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional

SCHEMA = "pytest-dnnbench/1"

#: Keys every record has (DESIGN §6); tests hold records against this list.
RECORD_KEYS = (
    "model", "paper_name", "source", "device", "device_name", "precision", "mode", "channels_last",
    "threads", "cudnn_benchmark", "seed", "batch_size", "input_size", "latency_ms", "per_image_ms", "fps",
    "memory_bytes", "macs", "flops", "macs_check", "counters_disagree", "params", "param_file_mb",
    "accuracy", "checks", "outcome", "reason",
)
LATENCY_KEYS = ("median", "mean", "stdev", "min", "max", "p90", "p99", "n", "ci_median", "warmup", "capped",
                "samples")


def unavailable_accuracy(reason: str) -> dict:
    return {"top1": None, "top5": None, "status": "unavailable", "source": reason, "n_images": None}


def make_record(
    *,
    model: str,
    paper_name: Optional[str],
    source: str,
    settings: Any,
    device_name: str,
    threads: int,
    measurement: Any,
    complexity: Any,
    accuracy: Optional[dict] = None,
    extra: Optional[dict] = None,
) -> dict:
    """Assemble one record from a :class:`Measurement` and a :class:`Complexity`."""
    rec: dict[str, Any] = {
        "model": model,
        "paper_name": paper_name,
        "source": source,
        "device": settings.device,
        "device_name": device_name,
        "precision": settings.precision,
        "mode": settings.mode,
        "channels_last": settings.channels_last,
        "threads": threads,
        "cudnn_benchmark": settings.cudnn_benchmark,
        "seed": settings.seed,
        "batch_size": measurement.batch_size,
        "input_size": list(measurement.input_size),
        "latency_ms": measurement.timing.latency_dict(),
        "per_image_ms": measurement.per_image_ms,
        "fps": measurement.fps,
        "memory_bytes": dict(measurement.memory),
        "memory_method": measurement.memory_method,
    }
    rec.update(complexity.as_record())
    if complexity.error:
        rec["complexity_error"] = complexity.error
    rec["accuracy"] = accuracy or unavailable_accuracy("accuracy was not evaluated in this run")
    rec["checks"] = []
    rec["outcome"] = None
    rec["reason"] = None
    if extra:
        rec.update(extra)
    return rec


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            # mkstemp creates the file 0600; give it the mode a plain open() would (0666 minus the umask).
            os.chmod(tmp, 0o666 & ~_umask())
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def document(environment: dict, records: Iterable[dict]) -> dict:
    return {"schema": SCHEMA, "environment": environment, "records": list(records)}


class ResultsFile:
    """The ``--dnn-json`` file: rewritten atomically after every record."""

    def __init__(self, path: Path, environment: Optional[dict] = None):
        self.path = Path(path)
        self.environment: dict = dict(environment or {})
        self.records: list[dict] = []

    def add(self, record: dict) -> None:
        self.records.append(record)
        self.flush()

    def set_environment(self, environment: dict) -> None:
        self.environment = dict(environment)

    def flush(self) -> None:
        text = json.dumps(document(self.environment, self.records), indent=1, allow_nan=False, default=_jsonable)
        atomic_write_text(self.path, text + "\n")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def plain(obj: Any) -> Any:
    """``obj`` as plain JSON data (str subclasses such as torch's version become str, tuples lists).

    Records and the environment travel with test reports, through pytest-xdist's
    serializer, which accepts builtin types only.
    """
    return json.loads(json.dumps(obj, allow_nan=False, default=_jsonable))


def load_results(path: Path) -> dict:
    """Read a results file, checking its schema; raises ValueError with what was wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read results file {path}: {exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a pytest-dnnbench results file (schema {SCHEMA!r} expected)")
    return data
