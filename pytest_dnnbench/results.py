"""The results file (schema ``pytest-dnnbench/2``): atomic writes, reading, and JSON helpers.

The record itself is :class:`~.record.Record`; this module writes records as the JSON documents
described in docs/usage.md. :func:`load_results` reads every earlier version too
(:data:`READ_SCHEMAS`), upgraded in memory (:mod:`.upgrade`). No torch, no pytest here.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from .jsontypes import JsonMapping, JsonObject
from .record import LATENCY_KEYS, RECORD_KEYS
from .upgrade import upgrade_environment, upgrade_record

__all__ = [
    "SCHEMA",
    "READ_SCHEMAS",
    "LATENCY_KEYS",
    "RECORD_KEYS",
    "FALLBACK_NAME",
    "ResultsFile",
    "atomic_write_text",
    "lock_holder",
    "not_a_regular_file",
    "note_lock_holder",
    "probe_temporary",
    "document",
    "jsonable",
    "load_results",
    "plain",
    "results_from_document",
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


def not_a_regular_file(path: Path) -> str | None:
    """What stands at ``path`` (through symlinks) where it is not a regular file (``"a character device"``,
    ``"a FIFO (named pipe)"``, ...); None where it is one or nothing is there (a file can be made)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None  # nothing there, or a dangling symlink: the file is made (at the link's target)
    except OSError as exc:
        return f"a path the system refuses to examine ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    for test, what in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def probe_temporary(path: Path) -> None:
    """Make and remove the temporary file :func:`atomic_write_text` would make beside ``path`` (in the
    nearest folder above it that exists): an OSError now says a later write would fail."""
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.{os.getpid()}.", suffix=".tmp", dir=str(folder))
    os.close(fd)
    os.unlink(tmp)


#: What a run writes into the lock file of its results file while it holds the lock (for a run that waits).
LOCK_NOTE = "pytest-dnnbench results file held by pid "


def note_lock_holder(lock_file: Path, pid: int | None) -> None:
    """Write (``pid``) or clear (None) the holder's note in an existing lock file that is empty or holds
    a note (a lock file with other content, such as filelock's own marker, is left alone)."""
    try:
        with open(lock_file, "r+", encoding="utf-8") as fh:
            text = fh.read()
            if text and not text.startswith(LOCK_NOTE):
                return
            fh.seek(0)
            fh.truncate()
            if pid is not None:
                fh.write(f"{LOCK_NOTE}{pid}\n")
    except (OSError, UnicodeDecodeError):
        pass  # the note is a courtesy: the lock itself is what counts


def lock_holder(lock_file: Path) -> int | None:
    """The PID a holder wrote into ``lock_file`` (:func:`note_lock_holder`), if any and still alive."""
    try:
        text = Path(lock_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    pid = text[len(LOCK_NOTE) :].strip() if text.startswith(LOCK_NOTE) else ""
    return int(pid) if pid.isdigit() and _alive(int(pid)) else None


def document(environment: JsonObject, records: Iterable[JsonObject], missing: Iterable[JsonObject] = ()) -> JsonObject:
    """The results document; ``missing`` (tests that left no record, with the reason) only where there are any."""
    doc: JsonObject = {"schema": SCHEMA, "environment": environment, "records": list(records)}
    missing = list(missing)
    if missing:
        doc["missing"] = missing
    return doc


#: The name of the file the records go to when the results file cannot be written at the end of a run
#: (:meth:`ResultsFile.save_final`), in each fallback folder in turn.
FALLBACK_NAME = "dnnbench-results-{pid}.json"


class ResultsFile:
    """The ``--dnn-json`` file: rewritten atomically after every record.

    ``path`` is the file as the user named it; ``target`` the file written (``path`` through its
    symlinks; by default ``path``), so that a link stays a link and its target is rewritten.
    :meth:`flush` raises a failed write; :meth:`save` and :meth:`save_final` (what a run uses)
    keep the error and go on.
    """

    def __init__(self, path: Path, environment: JsonObject | None = None, *, target: Path | None = None):
        self.path = Path(path)
        self.target = Path(target) if target is not None else self.path
        self.environment: JsonObject = dict(environment or {})
        self.records: list[JsonObject] = []
        #: Tests that left no record (a model that could not be built, a batch out of memory), with the reason.
        self.missing: list[JsonObject] = []
        #: The first write that failed (None: none did), and how many failed.
        self.error: OSError | None = None
        self.failures = 0
        #: Where the last successful write went (``target``, or a fallback file); None before any.
        self.written_to: Path | None = None
        #: How many records ``target`` held after its last successful write (None: never written).
        self.written_records: int | None = None

    def add(self, record: JsonMapping) -> None:
        """Add one record (JSON form, as :meth:`.record.Record.to_json` gives it) and rewrite the file."""
        self.records.append(dict(record))
        self.flush()

    def set_environment(self, environment: JsonObject) -> None:
        self.environment = dict(environment)

    def text(self) -> str:
        doc = document(self.environment, self.records, self.missing)
        return json.dumps(doc, indent=1, allow_nan=False, default=jsonable) + "\n"

    def flush(self) -> None:
        atomic_write_text(self.target, self.text())
        self.written_to = self.target
        self.written_records = len(self.records)

    def save(self) -> bool:
        """:meth:`flush`, but a write the system refuses (a full disk, a folder made read-only) is kept in
        :attr:`error` instead of raised: the records stay in memory for the next write. True if written."""
        try:
            self.flush()
        except OSError as exc:
            self.failures += 1
            if self.error is None:
                self.error = exc
            return False
        return True

    def save_final(self, fallback_dirs: Sequence[Path]) -> Path | None:
        """The last write: to ``target``, or where that fails to :data:`FALLBACK_NAME` in the first of
        ``fallback_dirs`` that takes it. Returns the file written (None: nowhere, see :attr:`error`)."""
        if self.save():
            return self.target
        text = self.text()
        for folder in fallback_dirs:
            path = Path(folder) / FALLBACK_NAME.format(pid=os.getpid())
            try:
                atomic_write_text(path, text)
            except OSError:
                continue
            self.written_to = path
            return path
        return None


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
    (:func:`upgrade_results`); raises ValueError with what was wrong (a
    :class:`~.jsonfile.JsonFileError` where the file cannot be read as JSON: :func:`~.jsonfile.load_json`).
    The file is read once."""
    from .jsonfile import load_json

    return results_from_document(load_json(path, "results file"), path)


def results_from_document(data: object, path: Path | str) -> JsonObject:
    """The parsed document of results file ``path`` checked and upgraded as :func:`load_results` does."""
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
