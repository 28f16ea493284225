"""The results file (schema ``pytest-dnnbench/2``): atomic writes, reading, and JSON helpers.

The record itself is :class:`~.record.Record`; this module writes records as the JSON documents
described in docs/usage.md. :func:`load_results` reads every earlier version too
(:data:`READ_SCHEMAS`), upgraded in memory (:mod:`.upgrade`). No torch, no pytest here.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .record import LATENCY_KEYS, RECORD_KEYS, JsonMapping, JsonObject
from .upgrade import upgrade_environment, upgrade_record

__all__ = [
    "SCHEMA",
    "READ_SCHEMAS",
    "LATENCY_KEYS",
    "RECORD_KEYS",
    "ResultsFile",
    "atomic_write_text",
    "document",
    "jsonable",
    "load_results",
    "plain",
    "upgrade_results",
]

#: The version this package writes.
SCHEMA = "pytest-dnnbench/2"
#: The versions :func:`load_results` reads: every one so far, the earlier ones upgraded as they are read.
READ_SCHEMAS = ("pytest-dnnbench/1", SCHEMA)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half of one.

    The temporary file beside it is named ``.NAME.<pid>.<random>.tmp``: one left by a writer that was
    killed (``kill -9``) is removed by the next writer, once no process of that PID is alive.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=str(path.parent))
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


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove ``.NAME.<pid>.*.tmp`` files beside ``path`` whose writer is no longer alive; return them."""
    removed: list[Path] = []
    prefix = f".{path.name}."
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(".tmp")]
    except OSError:
        return removed
    for tmp in candidates:
        pid_text = tmp.name[len(prefix) :].split(".", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or not a PID: leave its file alone
    return True


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def document(environment: JsonObject, records: Iterable[JsonObject], missing: Iterable[JsonObject] = ()) -> JsonObject:
    """The results document; ``missing`` (tests that left no record, with the reason) only where there are any."""
    doc: JsonObject = {"schema": SCHEMA, "environment": environment, "records": list(records)}
    missing = list(missing)
    if missing:
        doc["missing"] = missing
    return doc


class ResultsFile:
    """The ``--dnn-json`` file: rewritten atomically after every record."""

    def __init__(self, path: Path, environment: JsonObject | None = None):
        self.path = Path(path)
        self.environment: JsonObject = dict(environment or {})
        self.records: list[JsonObject] = []
        #: Tests that left no record (a model that could not be built, a batch out of memory), with the reason.
        self.missing: list[JsonObject] = []

    def add(self, record: JsonMapping) -> None:
        """Add one record (JSON form, as :meth:`.record.Record.to_json` gives it) and rewrite the file."""
        self.records.append(dict(record))
        self.flush()

    def set_environment(self, environment: JsonObject) -> None:
        self.environment = dict(environment)

    def flush(self) -> None:
        doc = document(self.environment, self.records, self.missing)
        text = json.dumps(doc, indent=1, allow_nan=False, default=jsonable)
        atomic_write_text(self.path, text + "\n")


def jsonable(obj: object) -> object:
    """``default=`` of ``json.dumps``: sets and tuples as lists, paths as strings."""
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def plain(obj: JsonMapping) -> JsonObject:
    """``obj`` as plain JSON data (str subclasses such as torch's version become str, tuples lists).

    Records and the environment travel with test reports, through pytest-xdist's
    serializer, which accepts builtin types only.
    """
    data: JsonObject = json.loads(json.dumps(obj, allow_nan=False, default=jsonable))
    return data


def load_results(path: Path) -> JsonObject:
    """Read a results file of any version (:data:`READ_SCHEMAS`), upgraded to :data:`SCHEMA`
    (:func:`upgrade_results`); raises ValueError with what was wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read results file {path}: {exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from exc
    schema = data.get("schema") if isinstance(data, dict) else None
    if not isinstance(data, dict) or schema not in READ_SCHEMAS:
        later = isinstance(schema, str) and schema.startswith("pytest-dnnbench/")
        raise ValueError(
            f"{path} is not a pytest-dnnbench results file (schema {schema!r}; this version reads "
            f"{', '.join(map(repr, READ_SCHEMAS))}" + ("; it was written by a later version)" if later else ")")
        )
    return upgrade_results(data)


def upgrade_results(document: JsonMapping) -> JsonObject:
    """A results document of any version as this version writes it: schema :data:`SCHEMA`, the
    environment and every record (a JSON object) upgraded (:mod:`.upgrade`); other keys kept.
    A record that is not a JSON object is left as it is (readers report it)."""
    out = dict(document)
    out["schema"] = SCHEMA
    env = document.get("environment")
    if isinstance(env, dict):
        out["environment"] = upgrade_environment(env)
    records = document.get("records")
    if isinstance(records, list):
        out["records"] = [upgrade_record(r) if isinstance(r, dict) else r for r in records]
    return out
