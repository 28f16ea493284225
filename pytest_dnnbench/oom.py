"""Out of memory: recognising it, the host-memory guard, the skip message (no torch at import).

A measurement that runs out of memory (CUDA's ``torch.OutOfMemoryError``, the CPU allocator's
``RuntimeError: ... DefaultCPUAllocator: can't allocate memory``, Python's ``MemoryError``, and the
GPU libraries' own allocation failures, which never say "out of memory":
``CUBLAS_STATUS_ALLOC_FAILED``, ``CUDNN_STATUS_ALLOC_FAILED``, ``CUDNN_STATUS_NOT_ENOUGH_WORKSPACE``,
cuDNN 9's ``..._ALLOCATION_FAILED`` statuses, and an ambiguous status such as
``CUDNN_STATUS_INTERNAL_ERROR`` only when the message also speaks of memory) is the
paper's missing cell, not a broken model: the test is skipped with
``out of memory at batch N on DEVICE (...)`` after the memory is given back, so that the next
test starts from the same state as if the failed one had not run.

The host guard (``--dnn-max-host-memory``) is a resource limit, ``RLIMIT_DATA``, set while a
test builds and measures its model: the kernel then refuses any private allocation (``brk`` or an
anonymous ``mmap``, which is where tensors, activations and Python objects live) that would grow
the process's private data by more than the limit over what it held when the test began, and
the allocator raises the errors above instead of the machine swapping or the OOM killer ending
the whole run. The kernel counts address space, not resident pages, so the limit bounds the
resident growth from above: a test may be refused slightly before its resident memory would
reach the limit, never after.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from types import ModuleType

__all__ = ["is_out_of_memory", "describe", "host_memory_guard", "skip_message", "GUARD_SUPPORTED"]

_HOST_PATTERNS = (
    "can't allocate memory",
    "defaultcpuallocator",
    "cannot allocate memory",
    "out of memory",
)


#: Allocation failures of the CUDA libraries: torch raises them as RuntimeError (or its
#: subclass AcceleratorError) with the library's status name, never "out of memory".
_LIBRARY_ALLOC_PATTERNS = (
    "cublas_status_alloc_failed",
    "cublaslt_status_alloc_failed",
    "cudnn_status_alloc_failed",
    "cudnn_status_not_enough_workspace",
    # cuDNN 9: CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED / _DEVICE_ALLOCATION_FAILED
    "_allocation_failed",
    "cusolver_status_alloc_failed",
    "cusparse_status_alloc_failed",
    "cufft_alloc_failed",
)
#: Statuses that a failed allocation often causes but other faults do too: they count as out of
#: memory only when the message also speaks of memory.
_AMBIGUOUS_STATUSES = (
    "cudnn_status_internal_error",
    "cudnn_status_execution_failed",
    "cublas_status_not_initialized",
    "cublas_status_internal_error",
)
_MEMORY_WORDS = ("memory", "alloc", "workspace")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means the device or the host ran out of memory."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    oom_type = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        if any(p in text for p in _HOST_PATTERNS) or any(p in text for p in _LIBRARY_ALLOC_PATTERNS):
            return True
        for status in _AMBIGUOUS_STATUSES:
            if status in text:
                # The status name itself must not count as the mention of memory.
                rest = text.replace(status, " ")
                if any(w in rest for w in _MEMORY_WORDS):
                    return True
    return False


def describe(exc: BaseException, limit: int = 300) -> str:
    """A one-line summary of the error: its type and the first line of its message."""
    text = str(exc).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first.startswith("[enforce fail at"):
        # c10's allocator prefixes the source location; what the user needs comes after it.
        _, _, rest = first.partition("] ")
        first = rest or first
    summary = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return summary if len(summary) <= limit else summary[: limit - 3] + "..."


def skip_message(batch_size: int | None, device: str, exc_summary: str, model: str | None = None) -> str:
    if batch_size is None:
        return f"out of memory building {model} on {device} ({exc_summary})"
    return f"out of memory at batch {batch_size} on {device} ({exc_summary})"


def _resource() -> ModuleType | None:  # pragma: no cover - trivial
    """The ``resource`` module where it has ``RLIMIT_DATA``, else None."""
    try:
        import resource
    except ImportError:
        return None
    return resource if hasattr(resource, "RLIMIT_DATA") else None


#: The guard needs RLIMIT_DATA counting anonymous mappings (Linux 4.7 and later) and /proc.
GUARD_SUPPORTED = sys.platform.startswith("linux") and _resource() is not None


def private_data_bytes() -> int | None:
    """The process's private data (``VmData`` of /proc/self/status), what RLIMIT_DATA counts."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@contextlib.contextmanager
def host_memory_guard(limit_bytes: int | None) -> Iterator[None]:
    """Let the process's private data grow by at most ``limit_bytes`` inside the block.

    No-op when ``limit_bytes`` is None or the platform has no usable RLIMIT_DATA. The previous
    soft limit is restored afterwards, whatever happens inside (the hard limit is never touched).
    """
    resource = _resource() if limit_bytes is not None and GUARD_SUPPORTED else None
    now = private_data_bytes() if resource is not None else None
    if resource is None or now is None or limit_bytes is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    new = now + int(limit_bytes)
    if hard != resource.RLIM_INFINITY:
        new = min(new, hard)
    if soft != resource.RLIM_INFINITY:
        new = min(new, soft)
    resource.setrlimit(resource.RLIMIT_DATA, (new, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
