"""Process memory on the host (pure: no torch, no pytest).

The CPU figures of DESIGN §3: ``total`` is the process's peak resident set
size during the timed calls, ``delta`` that peak above the level just before
them. The kernel's high-water mark (``VmHWM``) is reset through
``/proc/self/clear_refs`` and freed heap is returned with ``malloc_trim(0)``
first, so that what earlier tests left behind does not count.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from dataclasses import dataclass
from typing import Callable, Optional

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


_libc: Optional[ctypes.CDLL] = None


def malloc_trim() -> bool:
    """Return freed heap pages to the OS (glibc ``malloc_trim(0)``); False where unavailable."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(_libc.malloc_trim(0) or True)
    except (OSError, AttributeError):
        return False


M_MMAP_THRESHOLD = -3
#: glibc's default mmap threshold (128 KiB), pinned: see :func:`pin_mmap_threshold`.
PINNED_MMAP_THRESHOLD = 128 * 2**10


def pin_mmap_threshold(value: int = PINNED_MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold (``mallopt(M_MMAP_THRESHOLD, value)``).

    By default glibc raises the threshold each time it frees a mapped chunk (up
    to 32 MiB), so whether a tensor is mapped fresh or carved from the heap, and
    with it the memory figures and the CPU timings of a model, depends on the
    models that ran before. Measured here for resnet18 at batch 8 (working
    memory, ``delta``): 58 MB alone and 117 MB after VGG-16 with glibc's dynamic
    threshold; 83 and 96 MB with it pinned at 32 MiB; 51.4 and 51.6 MB with it
    pinned at the default 128 KiB, which is also what the live activations add
    up to. Pinned at 128 KiB, every large tensor is mapped when allocated and
    returned when freed, so ``delta`` is the model's working memory whatever ran
    before. False where unavailable (not glibc).
    """
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(_libc.mallopt(M_MMAP_THRESHOLD, int(value)))
    except (OSError, AttributeError):
        return False


def peak_rss_bytes() -> Optional[int]:
    """The process's peak RSS so far, from the kernel, in bytes (None where unknown)."""
    st = read_status()
    if "VmHWM" in st:
        return st["VmHWM"]
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except (ImportError, OSError):  # pragma: no cover - non-POSIX
        return None


@dataclass
class CpuMemoryProbe:
    """Brackets the timed calls: ``start()`` before, ``stop()`` after."""

    status: Callable[[], dict[str, int]] = read_status
    reset: Callable[[], bool] = reset_peak_rss
    trim: Callable[[], bool] = malloc_trim
    collect: Callable[[], object] = gc.collect

    def __post_init__(self) -> None:
        self._before: Optional[int] = None
        self._resettable = False

    def start(self) -> None:
        self.collect()
        self.trim()
        self._resettable = self.reset()
        self._before = self.status().get("VmRSS")

    def stop(self) -> tuple[dict[str, Optional[int]], str]:
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
