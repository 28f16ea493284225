"""The change points already found, kept on disk so that ``history`` and ``publish`` do not find them again.

:func:`.changes.change_points` is a pure function of a history's values and its settings, but it needs ruptures
and scipy (1.2 s of imports on the 2-core VM) and a few milliseconds per history. This cache is addressed by
its content: the key is a hash of the values, the settings, this module's :data:`VERSION` and ruptures' version
(read from its distribution's metadata, without importing it), so an entry can never be stale: a history with a
new point has a new key. A command that finds every key in the cache imports neither ruptures nor scipy.

One JSON file, ``change-points.json`` in ``$DNNBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/pytest-dnnbench``,
else ``~/.cache/pytest-dnnbench``; written atomically (a temporary file, then a rename); at most
:data:`MAX_ENTRIES` entries, the most recently used kept. A cache that cannot be read is started afresh, one
that cannot be written is not written: a cache never fails a command. Deleting it is always safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import astuple
from importlib import metadata
from pathlib import Path

from .changes import BETA, MIN_SIZE, ChangePoint, change_points

__all__ = ["ENV_VAR", "MAX_ENTRIES", "VERSION", "ChangeCache", "cache_path"]

#: The variable that names the cache's folder.
ENV_VAR = "DNNBENCH_CACHE_DIR"
#: Changed whenever :mod:`.changes` finds other change points for the same values: every old entry is then
#: left unused (and pruned).
VERSION = 1
#: The most entries kept (about 60 bytes each without change points): 100 histories' windows of 300 commands.
MAX_ENTRIES = 30_000
FILE_NAME = "change-points.json"


def cache_path() -> Path:
    folder = os.environ.get(ENV_VAR) or ""
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        folder = str(Path(base) / "pytest-dnnbench")
    return Path(folder) / FILE_NAME


def _ruptures_version() -> str:
    try:
        return metadata.version("ruptures")
    except metadata.PackageNotFoundError:
        return "?"


class ChangeCache:
    """Change points by the hash of (values, settings); :meth:`find` looks up or computes, :meth:`save` writes
    back what was computed or used (nothing where nothing changed)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = cache_path() if path is None else path
        self._entries: dict[str, tuple[float, list[list[float | int]]]] = {}
        self._dirty = False
        self._salt = f"{VERSION}|{_ruptures_version()}|{BETA}|{MIN_SIZE}"
        self.hits = 0
        self.misses = 0
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("version") == VERSION and isinstance(data.get("entries"), dict):
                for key, value in data["entries"].items():
                    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], list):
                        self._entries[str(key)] = (float(value[0]), value[1])
        except (OSError, ValueError, TypeError):
            self._entries = {}  # missing, unreadable or not ours: start afresh (written back on save)

    def key(self, values: Sequence[float], alpha: float, min_step: float) -> str:
        text = f"{self._salt}|{alpha!r}|{min_step!r}|" + ",".join(repr(float(v)) for v in values)
        return hashlib.sha256(text.encode("ascii")).hexdigest()[:32]

    def find(self, values: Sequence[float], *, alpha: float, min_step: float) -> list[ChangePoint]:
        """The change points of ``values``: from the cache, else found (:func:`.changes.change_points`) and kept."""
        key = self.key(values, alpha, min_step)
        now = time.time()
        entry = self._entries.get(key)
        if entry is not None:
            try:
                points = [
                    ChangePoint(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), int(r[5]), int(r[6]))
                    for r in entry[1]
                ]
            except (IndexError, TypeError, ValueError):
                points = None
            if points is not None:
                self.hits += 1
                if now - entry[0] > 3600:  # refresh the time it was used, at most hourly (no write per command)
                    self._entries[key] = (now, entry[1])
                    self._dirty = True
                return points
        self.misses += 1
        found = change_points(values, alpha=alpha, min_step=min_step)
        self._entries[key] = (now, [list(astuple(c)) for c in found])
        self._dirty = True
        return found

    def save(self) -> bool:
        """Write the cache back where anything changed; False where it could not be written (not an error)."""
        if not self._dirty:
            return True
        kept = sorted(self._entries.items(), key=lambda kv: kv[1][0], reverse=True)[:MAX_ENTRIES]
        text = json.dumps({"version": VERSION, "entries": {k: [t, v] for k, (t, v) in kept}}, allow_nan=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{FILE_NAME}.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            return False
        self._dirty = False
        return True
