"""The runtime floor and the model's own bytes: the parts of the CPU memory figure (pure: no torch, no pytest).

On the CPU, a model's ``total`` is what a process deploying it holds: the *floor* (the resident set
of a fresh interpreter that has imported torch and the model's source library and nothing else)
plus the model's own bytes (its parameters and buffers) plus ``delta`` (the working set the
forward pass adds, measured by :class:`~pytest_dnnbench.measure.memory.CpuMemoryPass`). The
pytest process itself holds much more (pytest, its plugins, the report's libraries), which is kept
apart as ``process_total``.

- :func:`model_bytes` counts a module's parameters and buffers, each storage once.
- :func:`library_of` says which library a model's floor imports.
- :func:`measure_floor` measures one floor in a child process (``python -c``): ``VmRSS`` of
  ``/proc/self/status`` right after ``import torch`` and ``import <library>``. ``VmRSS``, not the
  high-water mark: the steady state a deployed process holds once its imports are done.
- :class:`FloorCache` starts the floors a session needs in the background and measures each
  library at most once.

The child inherits the parent's environment (the thread variables ``OMP_NUM_THREADS`` and
friends included: importing torch creates no thread pool, so they do not change the figure),
except the variables that start coverage in every Python subprocess, and gets the parent's
``sys.path`` through ``PYTHONPATH`` so that a user's own package imports as it does in the parent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.machinery import PathFinder
from typing import IO, TYPE_CHECKING, Any, Protocol

from ..jsonfile import check_bytes, check_seconds, load_json, loads_json

if TYPE_CHECKING:
    import torch

__all__ = [
    "FLOOR_CACHE_ENV",
    "FLOOR_PREFIX",
    "SOURCE_LIBRARIES",
    "Floor",
    "FloorCache",
    "compile_floor_library",
    "floor_command",
    "floor_from_json",
    "floor_env",
    "importable",
    "is_test_module",
    "keep_floor",
    "library_of",
    "measure_floor",
    "model_bytes",
    "parse_floor_output",
    "process_floors",
    "share_floor",
    "shared_floors",
]

# -- the model's own bytes --------------------------------------------------------------------------


def model_bytes(module: torch.nn.Module) -> int:
    """Bytes of ``module``'s parameters and buffers, each storage counted once.

    Tied weights and views share a storage: storages are told apart by device and data pointer,
    and each is counted with its full ``nbytes`` (a parameter that is a slice of a larger storage
    keeps all of it alive). A tensor whose storage cannot be read (a tensor subclass, a sparse
    tensor) counts ``numel * element_size``. Tensors held in plain attributes, not registered as
    parameters or buffers, are not counted.
    """
    seen: set[tuple[str, int]] = set()
    total = 0
    for tensors in (module.parameters(), module.buffers()):
        for tensor in tensors:
            try:
                storage = tensor.untyped_storage()
                ptr, nbytes = int(storage.data_ptr()), int(storage.nbytes())
            except Exception:  # noqa: BLE001 - no plain storage: count the elements
                total += int(tensor.numel()) * int(tensor.element_size())
                continue
            if ptr == 0:  # empty, or no memory behind it (meta): nothing to share
                total += int(tensor.numel()) * int(tensor.element_size())
                continue
            key = (str(tensor.device), ptr)
            if key not in seen:
                seen.add(key)
                total += nbytes
    return total


# -- which library a model's floor imports -------------------------------------------------------------

#: Registry sources and the library each one's floor imports (``registry.import_source`` imports
#: ``torchvision.models``, which ``import torchvision`` imports anyway). The ``dnnbench`` and
#: ``custom`` sources go by the model's module (:func:`library_of`).
SOURCE_LIBRARIES: Mapping[str, str] = {
    "torchvision": "torchvision",
    "timm": "timm",
    "pretrainedmodels": "pretrainedmodels",
}

#: Top-level names whose floor is torch's alone.
_TORCH_ALONE = frozenset({"torch", "__main__", "__mp_main__", "builtins"})


def is_test_module(module_name: str) -> bool:
    """Whether ``module_name`` is a test module (``test_*``, ``*_test``, ``conftest``, a ``tests`` package)."""
    for part in module_name.split("."):
        if part in ("conftest", "tests", "test") or part.startswith("test_") or part.endswith("_test"):
            return True
    return False


def importable(name: str, path: Sequence[str] | None = None) -> bool:
    """Whether a fresh interpreter whose ``sys.path`` is ``path`` (default: this one's) can import ``name``.

    Asks the import system's finders (``sys.meta_path``: the path finder, and the finders that
    editable installs put there from a ``.pth`` file, which a fresh interpreter has too) without
    importing anything. Modules this process has imported by other means (pytest's
    ``--import-mode=importlib``, a module built at run time) are not found: they are not importable
    elsewhere.
    """
    if not name or not all(part.isidentifier() for part in name.split(".")):
        return False
    top = name.partition(".")[0]
    search = None if path is None else list(path)
    for finder in sys.meta_path:
        if str(getattr(finder, "__module__", "")).startswith("_pytest"):
            continue  # pytest's assertion rewriter: not in a fresh interpreter
        try:
            if finder is PathFinder or (isinstance(finder, type) and issubclass(finder, PathFinder)):
                spec = PathFinder.find_spec(top, search)
            else:
                find = getattr(finder, "find_spec", None)
                spec = find(top, None) if find is not None else None
        except Exception:  # noqa: BLE001 - a finder that fails does not find it
            continue
        if spec is not None:
            return True
    return False


def library_of(source: str, module_name: str | None, *, path: Sequence[str] | None = None) -> str | None:
    """The library a model's floor imports besides torch, or None for torch alone.

    A registry source maps to its library (:data:`SOURCE_LIBRARIES`). Otherwise (``dnnbench``,
    ``custom``) ``module_name``, the ``__module__`` of the model's class, decides: its top-level
    package (``pytest_dnnbench`` for the built-in ShuffleNet, ``torchvision`` for a torchvision class
    built by a user's factory), unless that is torch itself, ``__main__``, a test module, or not
    importable in a fresh interpreter whose ``sys.path`` is ``path`` (default: this one's).
    """
    if source in SOURCE_LIBRARIES:
        return SOURCE_LIBRARIES[source]
    if not module_name:
        return None
    top = module_name.partition(".")[0]
    if top in _TORCH_ALONE or is_test_module(module_name):
        return None
    if top in SOURCE_LIBRARIES.values():
        return top
    return top if importable(top, path) else None


# -- one floor ----------------------------------------------------------------------------------------

#: The line of the child's stdout that carries its figures.
FLOOR_PREFIX = "@@dnnbench-floor@@ "

#: The child: imports torch, reads VmRSS, imports the library, reads VmRSS; imports nothing else
#: before the readings (``json`` comes after them). argv: library ("" for none; several modules
#: comma separated, e.g. ``torchvision,torch._inductor.compile_fx`` for a compiled model), launch time.
_CHILD = r"""
import sys, time
def rss():
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
def why(name, exc):
    text = str(exc).strip()
    first = text.splitlines()[0].strip() if text else ""
    return name + ": " + type(exc).__name__ + (": " + first[:300] if first else "")
library, launched = sys.argv[1], float(sys.argv[2])
out = {"torch_bytes": None, "bytes": None, "error": None}
try:
    import torch
    out["torch_bytes"] = rss()
except BaseException as exc:
    out["error"] = why("torch", exc)
else:
    if library:
        try:
            for name in library.split(","):
                __import__(name)
            out["bytes"] = rss()
        except BaseException as exc:
            out["error"] = why(library, exc)
    else:
        out["bytes"] = out["torch_bytes"]
out["seconds"] = time.time() - launched
import json
sys.stdout.write("\n" + PREFIX + json.dumps(out) + "\n")
sys.stdout.flush()
""".replace("PREFIX", repr(FLOOR_PREFIX))

#: Environment variables that make every Python subprocess start coverage (pytest-cov, coverage's
#: subprocess support): the floor is a fresh interpreter with nothing else in it.
_DROPPED_ENV_PREFIXES = ("COV_CORE_", "COVERAGE_PROCESS_START")


@dataclass(frozen=True)
class Floor:
    """The resident set of a fresh interpreter after ``import torch`` and ``import <library>``.

    ``bytes`` is None when nothing could be measured. When the library failed to import,
    ``error`` says which and why (the exception's first line) and ``bytes`` is torch's figure
    alone (``torch_bytes``), where that could be taken. ``seconds``: from the launch of the child to
    its readings (interpreter start and imports).
    """

    library: str | None
    bytes: int | None
    seconds: float | None
    error: str | None = None
    #: The same child's VmRSS right after ``import torch``, before the library.
    torch_bytes: int | None = None

    @property
    def key(self) -> str:
        return self.library or "torch"

    def to_json(self) -> dict[str, Any]:
        return {
            "library": self.library,
            "bytes": self.bytes,
            "torch_bytes": self.torch_bytes,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "error": self.error,
        }


def floor_command(library: str | None, python: str = sys.executable, launched: float | None = None) -> list[str]:
    """The child's command line (``launched``: ``time.time()`` at the launch, for ``seconds``)."""
    lib = "" if library in (None, "torch") else str(library)
    return [python, "-c", _CHILD, lib, repr(time.time() if launched is None else launched)]


def floor_env(env: Mapping[str, str] | None = None, sys_path: Sequence[str] = ()) -> dict[str, str]:
    """The child's environment: ``env`` (default: this process's) without coverage's start-up variables,
    with ``sys_path`` in front of ``PYTHONPATH``."""
    out = {k: v for k, v in (os.environ if env is None else env).items() if not k.startswith(_DROPPED_ENV_PREFIXES)}
    paths = [p for p in sys_path if p] + [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p]
    if paths:
        out["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return out


def parse_floor_output(library: str | None, stdout: str, stderr: str, returncode: int | None) -> Floor:
    """The :class:`Floor` a child's output says (a child that died without its line: an error, no bytes)."""
    lib = None if library in (None, "torch") else library
    for line in reversed(stdout.splitlines()):
        if line.startswith(FLOOR_PREFIX):
            try:
                data = loads_json(line[len(FLOOR_PREFIX) :], "the floor process's answer")
            except ValueError:
                break
            if not isinstance(data, dict):
                break
            error = data.get("error")
            torch_bytes = _bytes_or_none(data.get("torch_bytes"))
            found = _bytes_or_none(data.get("bytes"))
            if error is None and found is None and data.get("bytes") is not None:
                error = f"the floor process reported an implausible figure ({data.get('bytes')!r:.40})"
            seconds = data.get("seconds")
            try:
                took = check_seconds(seconds, "seconds") if seconds is not None else None
            except ValueError:
                took = None
            return Floor(
                library=lib,
                bytes=found if found is not None else torch_bytes,
                seconds=took,
                error=str(error) if error else None,
                torch_bytes=torch_bytes,
            )
    status = returncode
    how = (
        "did not finish" if status is None else f"was killed by signal {-status}" if status < 0 else f"exited {status}"
    )
    last = [line.strip() for line in stderr.splitlines() if line.strip()]
    tail = f": {last[-1][:300]}" if last else ""
    return Floor(library=lib, bytes=None, seconds=None, error=f"the floor process {how} without its figures{tail}")


#: The largest floor believed, in bytes: no interpreter with torch holds a tebibyte at its start.
MAX_FLOOR_BYTES = 2**40
#: The smallest floor a cached (shared) figure may hold: a fresh interpreter with torch holds far more.
MIN_CACHED_FLOOR_BYTES = 2**20


def _bytes_or_none(value: object) -> int | None:
    """``value`` as bytes where it is a plausible floor figure (0 to :data:`MAX_FLOOR_BYTES`), else None."""
    try:
        return check_bytes(value, "floor", maximum=MAX_FLOOR_BYTES)
    except ValueError:
        return None


def floor_from_json(data: object) -> Floor:
    """A measured floor as :meth:`Floor.to_json` wrote it (the floors shared between the processes of a test
    run), checked: ``ValueError`` where it is not one a process could have measured (its bytes from
    :data:`MIN_CACHED_FLOOR_BYTES` up to below :data:`MAX_FLOOR_BYTES`, a module name or null for its library,
    no error): such a floor is measured again, never trusted."""
    if not isinstance(data, dict):
        raise ValueError(f"a floor is a JSON object, not {type(data).__name__}")
    unknown = set(data) - {"library", "bytes", "torch_bytes", "seconds", "error"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)!r:.80}")
    library = data.get("library")
    if library is not None and (
        not isinstance(library, str)
        or not all(p.isidentifier() for name in library.split(",") for p in name.split("."))
    ):
        raise ValueError(f"'library' must be module names or null, not {library!r:.40}")
    if data.get("error") is not None:
        raise ValueError("a floor that failed is not shared")
    found = check_bytes(data.get("bytes"), "'bytes'", minimum=MIN_CACHED_FLOOR_BYTES, maximum=MAX_FLOOR_BYTES)
    torch_bytes = data.get("torch_bytes")
    if torch_bytes is not None:
        torch_bytes = check_bytes(torch_bytes, "'torch_bytes'", maximum=MAX_FLOOR_BYTES)
    seconds = data.get("seconds")
    return Floor(
        library=library if library not in (None, "torch") else None,
        bytes=found,
        seconds=check_seconds(seconds, "'seconds'") if seconds is not None else None,
        error=None,
        torch_bytes=torch_bytes,
    )


class Launcher(Protocol):
    """How a child is started (``subprocess.Popen``; tests pass a wrapper that counts or replaces it)."""

    def __call__(
        self, args: list[str], *, stdin: int, stdout: IO[bytes], stderr: IO[bytes], env: dict[str, str]
    ) -> subprocess.Popen[bytes]: ...


class _Run:
    """One floor child: started at once, output to temporary files (a full pipe never blocks it)."""

    def __init__(
        self,
        library: str | None,
        python: str,
        timeout: float,
        env: Mapping[str, str] | None,
        sys_path: Sequence[str],
        launch: Launcher,
    ):
        self.library = None if library in (None, "torch") else library
        self.timeout = float(timeout)
        self.started = time.monotonic()
        self.proc: subprocess.Popen[bytes] | None = None
        self.failed: Floor | None = None
        self._out = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()
        names = self.library.split(",") if self.library is not None else []
        if not all(p.isidentifier() for name in names for p in name.split(".")):
            self.failed = Floor(self.library, None, None, f"{self.library!r} is not a module name")
            return
        try:
            self.proc = launch(
                floor_command(self.library, python),
                stdin=subprocess.DEVNULL,
                stdout=self._out,
                stderr=self._err,
                env=floor_env(env, sys_path),
            )
        except OSError as exc:
            self.failed = Floor(self.library, None, None, f"the floor process could not start: {exc}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def finish(self) -> Floor:
        """Wait for the child (what is left of ``timeout`` since the launch, at least a second)."""
        if self.failed is not None or self.proc is None:
            return self._close(self.failed or Floor(self.library, None, None, "the floor process did not start"))
        remaining = max(1.0, self.timeout - (time.monotonic() - self.started))
        try:
            status: int | None = self.proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            self.kill()
            return self._close(
                Floor(self.library, None, None, f"the floor process timed out after {self.timeout:g} s and was killed")
            )
        return self._close(parse_floor_output(self.library, self._read(self._out), self._read(self._err), status))

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _read(self, fh: IO[bytes]) -> str:
        fh.seek(0)
        return fh.read().decode(errors="replace")

    def _close(self, floor: Floor) -> Floor:
        self._out.close()
        self._err.close()
        return floor


def measure_floor(
    library: str | None,
    python: str = sys.executable,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
    sys_path: Sequence[str] = (),
) -> Floor:
    """Measure one floor: the RSS of a fresh ``python`` after ``import torch`` and ``import library``.

    Never raises for a library that fails to import, a child that dies or times out: the
    :class:`Floor` says so in ``error``. ``library`` None (or ``"torch"``) measures torch alone.
    """
    return _Run(library, python, timeout, env, sys_path, subprocess.Popen).finish()


class FloorCache:
    """The floors of a session: each library measured at most once, in the background.

    ``start(library)`` launches a child and returns at once (the plugin starts every floor it
    will need when the session starts); ``get(library)`` waits for it, or launches it and waits.
    ``close()`` kills what is still running. The children run while the caller does other work:
    each imports torch (a few seconds of one core, and its own resident set), so a caller that
    times a model should take its floors first.
    """

    def __init__(
        self,
        python: str = sys.executable,
        timeout: float = 120,
        env: Mapping[str, str] | None = None,
        sys_path: Sequence[str] = (),
        launch: Launcher | None = None,
        known: Mapping[str, Floor] | None = None,
    ):
        """``known``: floors measured earlier in this process, by key (a floor depends on the interpreter
        and the installed libraries, not on the session: in-process pytest runs share them)."""
        self.python = python
        self.timeout = float(timeout)
        self.env = None if env is None else dict(env)
        self.sys_path = tuple(sys_path)
        self._launch: Launcher = launch if launch is not None else subprocess.Popen
        self._runs: dict[str, _Run] = {}
        self._floors: dict[str, Floor] = dict(known or {})
        self._lock = threading.Lock()
        self._closed = False

    @staticmethod
    def _key(library: str | None) -> str:
        return library or "torch"

    def start(self, library: str | None) -> None:
        """Launch ``library``'s floor unless it is measured, running, or the cache is closed."""
        with self._lock:
            self._start(library)

    def _start(self, library: str | None) -> None:
        key = self._key(library)
        if self._closed or key in self._runs or key in self._floors:
            return
        self._runs[key] = _Run(library, self.python, self.timeout, self.env, self.sys_path, self._launch)

    def get(self, library: str | None) -> Floor:
        """``library``'s floor (None or ``"torch"``: torch alone), measured once; waits for its child."""
        key = self._key(library)
        with self._lock:
            if key in self._floors:
                return self._floors[key]
            if self._closed and key not in self._runs:
                return Floor(None if key == "torch" else key, None, None, "the floor cache is closed")
            self._start(library)
            floor = self._runs.pop(key).finish()
            self._floors[key] = floor
            return floor

    def wait_all(self) -> dict[str, Floor]:
        """Wait for every floor started so far; all floors measured, by key."""
        with self._lock:
            keys = list(self._runs)
        for key in keys:
            self.get(None if key == "torch" else key)
        return dict(self._floors)

    def running(self) -> list[str]:
        """The keys of the floors whose child is still running."""
        with self._lock:
            return [key for key, run in self._runs.items() if run.running()]

    def close(self) -> None:
        """Kill every child still running; their floors become errors. Nothing is launched afterwards."""
        with self._lock:
            self._closed = True
            runs, self._runs = self._runs, {}
            for key, run in runs.items():
                if run.running():
                    run.kill()
                    self._floors[key] = run._close(
                        Floor(run.library, None, None, "the floor process was stopped before it finished")
                    )
                else:
                    self._floors[key] = run.finish()

    def as_json(self) -> dict[str, dict[str, Any]]:
        """The floors measured so far, for the environment record: ``{library or "torch": floor}``."""
        with self._lock:
            return {key: floor.to_json() for key, floor in self._floors.items()}

    def __enter__(self) -> FloorCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- floors shared by the processes of one run ------------------------------------------------------

#: Runtime floors measured in this process, by key: a floor depends on the interpreter and the installed
#: libraries, not on the session, so in-process pytest runs (pytester) measure each once.
_PROCESS_FLOORS: dict[str, Floor] = {}
#: A folder where the processes of one test run share the floors they measured (each library measured once
#: for all of them). Unset, every process measures its own. The plugin's own test suite sets it: it starts
#: many pytest processes (pytester, pytest-xdist workers), each of which would pay a few seconds per floor.
FLOOR_CACHE_ENV = "PYTEST_DNNBENCH_FLOOR_CACHE"


def compile_floor_library(library: str | None) -> str:
    """The floor of a compiled model's process: the model's library and torch's compiler (inductor)."""
    return ",".join([*([library] if library else []), "torch._inductor.compile_fx"])


def process_floors() -> dict[str, Floor]:
    """The floors known to this process (measured here, or by the run's other processes,
    :data:`FLOOR_CACHE_ENV`), by key: the dict itself, which :func:`keep_floor` adds to."""
    _PROCESS_FLOORS.update(shared_floors())
    return _PROCESS_FLOORS


def keep_floor(floor: Floor) -> None:
    """Keep a floor measured well for this process and leave it for the run's other processes."""
    if floor.error is None and floor.bytes is not None and floor.key not in _PROCESS_FLOORS:
        _PROCESS_FLOORS[floor.key] = floor
        share_floor(floor)


def shared_floors() -> dict[str, Floor]:
    """The floors other processes of this test run measured (:data:`FLOOR_CACHE_ENV`), by key."""
    from pathlib import Path

    folder = os.environ.get(FLOOR_CACHE_ENV)
    found: dict[str, Floor] = {}
    if folder:
        try:
            paths = sorted(Path(folder).glob("*.json"))
        except OSError:
            return found
        for path in paths:
            try:
                floor = floor_from_json(load_json(path, "runtime floor cache file", max_bytes=2**16, regular_only=True))
            except ValueError:
                continue  # being written, not a floor, or an implausible figure: never trusted, measured here
            if path.stem != floor.key:
                continue  # a file named for another library: not trusted either
            found[floor.key] = floor
    return found


def share_floor(floor: Floor) -> None:
    """Leave ``floor`` for the other processes of this test run (atomically: a reader sees all or nothing)."""
    import json
    from pathlib import Path

    folder = os.environ.get(FLOOR_CACHE_ENV)
    if not folder:
        return
    target = Path(folder) / f"{floor.key}.json"
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(json.dumps(floor.to_json()), encoding="utf-8")
        os.replace(temp, target)
    except OSError:
        pass  # sharing is an optimisation only


# -- what a record's CPU total means -------------------------------------------------------------

#: The CPU ``total`` of this version: what a deployed inference process would hold.
DEPLOYED_TOTAL = (
    "memory of the deployed model: runtime floor (a fresh interpreter with torch and the model's library) "
    "+ the model's parameters and buffers + the forward pass's working set"
)
#: The CPU ``total`` of records written before it (``memory_method`` starting with "peak RSS").
PROCESS_TOTAL = "peak resident set size of the process during the timed calls (framework included)"


def cpu_total_meaning(memory_method: str | None) -> str:
    """What a CPU record's ``memory_bytes.total`` means, from its ``memory_method`` (older records measured
    the whole process)."""
    method = memory_method if isinstance(memory_method, str) else ""  # (a file's junk: the current meaning)
    if method.startswith(("runtime floor", "direct:")) or not method:
        return DEPLOYED_TOTAL
    return PROCESS_TOTAL
