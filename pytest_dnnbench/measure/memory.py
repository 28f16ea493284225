"""Process memory on the host (pure: no torch, no pytest).

The CPU figures (docs/measurements.md): ``total`` is the process's peak resident set
size during the timed calls, ``delta`` that peak above the level just before
them. The kernel's high-water mark (``VmHWM``) is reset through
``/proc/self/clear_refs`` and freed heap is returned with ``malloc_trim(0)``
first, so that what earlier tests left behind does not count.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch
    from torch.utils.hooks import RemovableHandle

STATUS_PATH = "/proc/self/status"
CLEAR_REFS_PATH = "/proc/self/clear_refs"


def read_status(path: str = STATUS_PATH) -> dict[str, int]:
    """``VmRSS``/``VmHWM`` and friends of ``/proc/self/status``, in bytes."""
    out: dict[str, int] = {}
    try:
        # errors="replace": the Name line carries the raw thread name, which may be any bytes.
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key.startswith("Vm") and rest.strip().endswith("kB"):
                    out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def reset_peak_rss(path: str = CLEAR_REFS_PATH) -> bool:
    """Reset the kernel's peak-RSS mark (``echo 5 > /proc/self/clear_refs``)."""
    try:
        with open(path, "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


_libc: ctypes.CDLL | None = None


def malloc_trim() -> bool:
    """Return freed heap pages to the OS (glibc ``malloc_trim(0)``); False where unavailable."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(_libc.malloc_trim(0) or True)
    except (OSError, AttributeError):
        return False


M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Where glibc's dynamic thresholds converge on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX, twice that).
PINNED_MMAP_THRESHOLD = 32 * 2**20
PINNED_TRIM_THRESHOLD = 64 * 2**20


def pin_malloc_thresholds(mmap: int = PINNED_MMAP_THRESHOLD, trim: int = PINNED_TRIM_THRESHOLD) -> bool:
    """Fix glibc's mmap and trim thresholds at the values its dynamic adjustment converges to.

    glibc raises both thresholds each time it frees a mapped chunk, so how large
    tensors are allocated, and with it the memory figures and the CPU timings of
    a model, would depend on the models that ran before it. Pinned at the
    converged values, every test starts from the same allocator behaviour, the
    one a long-running process reaches anyway: resnet18's CPU latency is the same
    as with the dynamic thresholds (14.1 vs 14.3 ms at batch 1 here), while
    pinning the mmap threshold at its 128 KiB default made it 2.7x slower (every
    activation mapped and faulted in on every call). False where unavailable
    (not glibc).
    """
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(_libc.mallopt(M_MMAP_THRESHOLD, int(mmap))) and bool(_libc.mallopt(M_TRIM_THRESHOLD, int(trim)))
    except (OSError, AttributeError):
        return False


def peak_rss_bytes() -> int | None:
    """The process's peak RSS so far, from the kernel, in bytes (None where unknown)."""
    st = read_status()
    if "VmHWM" in st:
        return st["VmHWM"]
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except (ImportError, OSError):  # pragma: no cover - non-POSIX
        return None


class HookHandle(Protocol):
    """What registering a hook gives back (torch's ``RemovableHandle``, or a fake): a way to remove it."""

    def remove(self) -> None: ...


@dataclass
class CpuMemoryProbe:
    """Brackets the timed calls: ``start()`` before, ``stop()`` after."""

    status: Callable[[], dict[str, int]] = read_status
    reset: Callable[[], bool] = reset_peak_rss
    trim: Callable[[], bool] = malloc_trim
    collect: Callable[[], object] = gc.collect

    def __post_init__(self) -> None:
        self._before: int | None = None
        self._resettable = False

    def start(self) -> None:
        self.collect()
        self.trim()
        self._resettable = self.reset()
        self._before = self.status().get("VmRSS")

    def stop(self) -> tuple[dict[str, int | None], str]:
        """Returns (``memory_bytes`` block, method description)."""
        st = self.status()
        before = self._before
        if self._resettable and "VmHWM" in st:
            peak = st["VmHWM"]
            method = "peak RSS (VmHWM reset via /proc/self/clear_refs, malloc_trim)"
        elif "VmRSS" in st:
            # The peak cannot be reset here: the RSS right after the calls is a lower bound.
            peak = max(st["VmRSS"], before or 0)
            method = "RSS after the timed calls (peak RSS could not be reset: lower bound)"
        else:
            return {"total": None, "delta": None}, "unavailable (no /proc/self/status)"
        delta = None if before is None else max(0, peak - before)
        return {"total": peak, "delta": delta}, method


#: glibc's default thresholds: every block of 128 KiB or more is mapped when allocated, unmapped when freed.
EXACT_MMAP_THRESHOLD = 128 * 2**10
EXACT_TRIM_THRESHOLD = 128 * 2**10


@dataclass
class CpuMemoryPass:
    """CPU memory of a model: one dedicated call after the timed ones.

    During the timed calls the allocator keeps glibc's converged thresholds
    (fast, and the same whatever ran before). Freed heap it keeps around would
    make a peak-RSS reading depend on the process's history, though (resnet18 at
    batch 8: 126 MB alone, 148 to 166 MB after VGG-16). So the memory figure
    comes from one more call, made with every block of 128 KiB or more mapped
    when allocated and returned when freed, after a ``malloc_trim``: its peak
    RSS above the level before it is the live working memory of the forward
    pass (51 MB for resnet18 at batch 8, alone or after VGG-16).
    """

    call: Callable[[], object]
    probe: CpuMemoryProbe = field(default_factory=CpuMemoryProbe)
    set_thresholds: Callable[[int, int], bool] = pin_malloc_thresholds
    passes: int = 1
    #: Installs what returns freed heap after every module's forward (default: :func:`_trim_after_every_module`).
    trim_after_modules: Callable[[], HookHandle] | None = None

    def start(self) -> None:
        """Nothing to do before the timed calls."""

    def stop(self) -> tuple[dict[str, int | None], str]:
        exact = self.set_thresholds(EXACT_MMAP_THRESHOLD, EXACT_TRIM_THRESHOLD)
        hooks = (self.trim_after_modules or _trim_after_every_module)()
        try:
            self.probe.start()
            for _ in range(self.passes):
                self.call()
            memory, method = self.probe.stop()
        finally:
            hooks.remove()
            self.set_thresholds(PINNED_MMAP_THRESHOLD, PINNED_TRIM_THRESHOLD)
            self.probe.trim()
        how = "every block >= 128 KiB mapped" if exact else "allocator thresholds could not be set"
        return memory, f"{method}; over {self.passes} dedicated call(s) after the timed ones, {how}"


class _NoHooks:
    def remove(self) -> None:
        pass


def no_module_hooks() -> HookHandle:
    """For a compiled or exported model: no hook between modules (a global module hook would make
    ``torch.compile`` warn and guard on it; a runtime's graph has no torch modules to hook)."""
    return _NoHooks()


def _trim_after_every_module() -> RemovableHandle:
    """Return freed heap to the OS after every module's forward, for the memory pass only."""
    from torch.nn.modules.module import register_module_forward_hook

    def hook(module: torch.nn.Module, args: tuple[object, ...], output: object) -> None:
        malloc_trim()  # returns None: a forward hook's return value would replace the output

    return register_module_forward_hook(hook)
