"""Device backends: how to time one call and how to read memory, on CPU and on CUDA.

torch is imported inside functions only. Every ``torch.cuda`` and NVML call
goes through :class:`CudaApi` and :class:`Nvml`, small classes that tests
replace with fakes, so that the CUDA path is unit-tested on machines without
a GPU.

What the real drivers do, and what this module does about it (docs/gpu.md):

- In a container without the host's PID namespace, NVML lists processes by
  their *host* PIDs, so ``os.getpid()`` never matches. The backend therefore
  finds its own NVML entry as the PID that appears on the device when its CUDA
  context is created (or, when several appear at once, the one whose figure
  grows by a marker allocation); failing that, ``total`` is the device's used
  memory minus what was used before the context, as long as no other process
  came or went; failing that, ``context + reserved_peak``.
- Some drivers list the process with no memory figure or with 0 bytes: such
  figures count as unavailable, never as real.
- The CUDA context is read after a small convolution and a matrix product
  have loaded cuDNN and cuBLAS, so that it holds what the runtime keeps.
- MIG instances have ``MIG-`` UUIDs, and their clocks and power belong to the
  GPU that holds them.
- CUDA and NVML number GPUs alike only with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``
  (or a single GPU), and ``CUDA_VISIBLE_DEVICES`` renumbers CUDA's devices:
  the index is used to find the NVML device only when both orders agree.
- Clocks, power and throttle reasons are sampled while the timed calls run
  (inside the timer, after the work is queued and before the wait), and the
  NVML violation counters are read around them.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Protocol, SupportsInt, TypedDict, TypeVar, runtime_checkable

from .memory import CpuMemoryPass, CpuMemoryProbe, malloc_trim
from .timing import Timer, perf_counter_timer

if TYPE_CHECKING:
    from ..record import JsonObject
    from .energy import EnergyMeter

__all__ = [
    "Backend",
    "MemoryProbe",
    "CpuBackend",
    "CudaBackend",
    "CudaApi",
    "CudaDeviceProperties",
    "CudaMemoryProbe",
    "CudaRuntime",
    "GpuStateSampler",
    "Nvml",
    "NvmlLibrary",
    "NvmlProcess",
    "METHOD_PROCESS",
    "METHOD_DEVICE",
    "METHOD_CONTEXT",
    "METHOD_UNAVAILABLE",
    "cpu_model_name",
    "find_nvml_pid",
    "make_backend",
    "nvml_index_for_cuda_index",
    "plausible_bytes",
    "throttle_reason_names",
    "visible_device_entries",
]

MiB = 2**20

#: ``memory_method`` of a CUDA record starts with one of these keys, then ``": "`` and the details.
METHOD_PROCESS = "nvml-process"
METHOD_DEVICE = "nvml-device-delta"
METHOD_CONTEXT = "context+reserved"
METHOD_UNAVAILABLE = "unavailable"

_T = TypeVar("_T")


# -- what every backend offers -----------------------------------------------------------------


class MemoryProbe(Protocol):
    """Brackets the timed calls: ``start()`` after warm-up, ``stop()`` after the last timed call."""

    def start(self) -> None: ...

    def stop(self) -> tuple[dict[str, int | None], str]:
        """The ``memory_bytes`` block and the method (``memory_method``) that gave ``total``."""
        ...


@runtime_checkable
class Backend(Protocol):
    """What the measurement code asks of a device (CPU or CUDA).

    One protocol, so that the pytest glue, the isolated child process and the
    benchmarks call the same methods whatever the device, and tests can pass
    a fake.
    """

    #: ``"cpu"`` or ``"cuda"``.
    kind: str
    #: The resolved device string: ``"cpu"`` or ``"cuda:N"``.
    device: str

    def timer(self, fn: Callable[[], object]) -> Timer:
        """A zero-argument callable that runs ``fn`` once and returns its time in ms."""
        ...

    def synchronize(self) -> None:
        """Wait for all queued work on the device."""
        ...

    def memory_probe(self, call: Callable[[], object] | None = None) -> MemoryProbe:
        """A fresh probe for one measurement (``call`` lets the CPU probe run its own pass)."""
        ...

    def release(self) -> None:
        """Give memory back after a test (or an out-of-memory error)."""
        ...

    def before_measure(self) -> None:
        """Bring the device to the same state before every measurement."""
        ...

    def device_name(self) -> str: ...

    def describe(self) -> JsonObject:
        """Facts for the environment record (name, memory, context, driver...)."""
        ...

    def snapshot(self) -> JsonObject:
        """Clocks, power and throttle reasons now (empty on the CPU)."""
        ...

    def timed_state(self) -> JsonObject | None:
        """The device state sampled during the last measurement's timed calls (None on the CPU)."""
        ...


def _call(fn: Callable[..., _T] | None, *args: object) -> _T | None:
    """``fn(*args)``, or None when ``fn`` is missing or raises (NVML queries are all optional).

    pynvml is untyped: for a function looked up with ``getattr`` the result is untyped too.
    """
    if fn is None:
        return None
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - NVML_ERROR_NOT_SUPPORTED and friends: no figure
        return None


def plausible_bytes(value: SupportsInt | None, floor: int = 0, ceiling: int | None = None) -> int | None:
    """``value`` as a byte count when it can be real, else None.

    A process that holds a CUDA context holds at least hundreds of MiB, and
    at least what its caching allocator reserved (``floor``); no process holds
    more than the device has (``ceiling``). Zero (what some drivers in
    containers report), NVML's "not available" marker (2**64 - 1) and any
    figure outside those bounds count as unavailable.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        v = int(value)
    except (TypeError, ValueError):
        return None
    if v <= 0 or v < floor:
        return None
    if ceiling is not None and v > ceiling:
        return None
    if v >= 2**63:  # NVML_VALUE_NOT_AVAILABLE read as an unsigned long long
        return None
    return v


# -- torch.cuda -------------------------------------------------------------------------------


class CudaDeviceProperties(TypedDict):
    """What :meth:`CudaApi.properties` tells of the device."""

    name: str
    total_memory: int
    #: ``"major.minor"``.
    capability: str
    uuid: str | None
    pci_bus_id: str | None


class CudaRuntime(Protocol):
    """The ``torch.cuda`` calls the CUDA backend makes: :class:`CudaApi`, or a fake in tests."""

    def has_context(self) -> bool | None: ...

    def create_context(self) -> None: ...

    def load_libraries(self) -> None: ...

    def allocate(self, nbytes: int) -> object: ...

    def synchronize(self) -> None: ...

    def reset_peak(self) -> None: ...

    def max_allocated(self) -> int: ...

    def max_reserved(self) -> int: ...

    def reserved(self) -> int: ...

    def empty_cache(self) -> None: ...

    def properties(self) -> CudaDeviceProperties: ...

    def event_timer(self, fn: Callable[[], object], during: Callable[[], None] | None = None) -> Timer: ...


class CudaApi:
    """The handful of ``torch.cuda`` calls the CUDA backend makes."""

    def __init__(self, index: int) -> None:
        import torch

        #: The torch module (tests put a stand-in here). Read through attributes that differ between
        #: torch versions (``torch._C._cuda_hasPrimaryContext``), hence a plain module type.
        self.torch: ModuleType = torch
        self.index = index

    def has_context(self) -> bool | None:
        """Whether this process already holds a CUDA context on the device (None: unknown).

        When it does, what the device used "before the context" cannot be read
        any more, so the device-level memory method is not used.
        """
        try:
            return bool(self.torch._C._cuda_hasPrimaryContext(self.index))
        except Exception:  # noqa: BLE001 - private API: may move between torch versions
            return None

    def create_context(self) -> None:
        self.torch.cuda.set_device(self.index)
        self.torch.cuda.synchronize(self.index)

    def load_libraries(self) -> None:
        """Run a small convolution and a matrix product, so that cuDNN and cuBLAS are loaded.

        Their handles and workspaces are part of what any model's process holds;
        read before them, the context would understate it, and ``total`` would
        depend on which models ran before (the first to convolve would pay).
        """
        torch = self.torch
        dev = torch.device("cuda", self.index)
        with torch.inference_mode():
            x = torch.randn(1, 3, 8, 8, device=dev)
            w = torch.randn(4, 3, 3, 3, device=dev)
            y = torch.nn.functional.conv2d(x, w)
            a = torch.randn(16, 16, device=dev)
            z = torch.mm(a, a)
        self.synchronize()
        del x, w, y, a, z
        self.empty_cache()

    def allocate(self, nbytes: int) -> object:
        """A device buffer of ``nbytes`` (no kernel runs): the marker that tells our NVML entry apart."""
        return self.torch.empty(int(nbytes), dtype=self.torch.uint8, device=self.torch.device("cuda", self.index))

    def synchronize(self) -> None:
        self.torch.cuda.synchronize(self.index)

    def reset_peak(self) -> None:
        self.torch.cuda.reset_peak_memory_stats(self.index)

    def max_allocated(self) -> int:
        return int(self.torch.cuda.max_memory_allocated(self.index))

    def max_reserved(self) -> int:
        return int(self.torch.cuda.max_memory_reserved(self.index))

    def reserved(self) -> int:
        return int(self.torch.cuda.memory_reserved(self.index))

    def empty_cache(self) -> None:
        self.torch.cuda.empty_cache()

    def properties(self) -> CudaDeviceProperties:
        p = self.torch.cuda.get_device_properties(self.index)
        uuid = getattr(p, "uuid", None)
        return {
            "name": p.name,
            "total_memory": int(p.total_memory),
            "capability": f"{p.major}.{p.minor}",
            "uuid": str(uuid) if uuid is not None else None,
            "pci_bus_id": _pci_bus_id(p),
        }

    def event_timer(self, fn: Callable[[], object], during: Callable[[], None] | None = None) -> Timer:
        """Time one call with CUDA events; the end event is waited for, so calls never overlap.

        ``during`` runs after the work is queued and before the wait: the GPU
        is busy then, so that is where its clocks and throttle reasons are
        sampled. It runs on the host after the end event was recorded, so it
        adds nothing to the measured time.
        """
        start = self.torch.cuda.Event(enable_timing=True)
        end = self.torch.cuda.Event(enable_timing=True)

        def once() -> float:
            start.record()
            fn()
            end.record()
            if during is not None:
                during()
            end.synchronize()
            return float(start.elapsed_time(end))

        return once


def _pci_bus_id(props: object) -> str | None:
    bus = getattr(props, "pci_bus_id", None)
    if bus is None:
        return None
    return f"{getattr(props, 'pci_domain_id', 0):08X}:{bus:02X}:{getattr(props, 'pci_device_id', 0):02X}.0"


# -- CUDA's numbering and NVML's ----------------------------------------------------------------


def visible_device_entries(value: str | None) -> list[str] | None:
    """``CUDA_VISIBLE_DEVICES`` as CUDA reads it: None when unset, else its entries.

    CUDA stops at the first entry that is neither a non-negative index nor a
    ``GPU-``/``MIG-`` UUID (``"0,-1,1"`` shows device 0 only; ``""`` shows none).
    """
    if value is None:
        return None
    out: list[str] = []
    for raw in value.split(","):
        entry = raw.strip()
        if entry.isdigit() or entry.startswith(("GPU-", "MIG-")):
            out.append(entry)
        else:
            break
    return out


def nvml_index_for_cuda_index(index: int, nvml_count: int, env: Mapping[str, str]) -> int | None:
    """NVML's index of CUDA device ``index``, only where both numberings are known to agree.

    NVML numbers GPUs by PCI bus id; CUDA does so only under
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (its default puts the fastest first),
    or trivially when there is a single GPU. ``CUDA_VISIBLE_DEVICES`` maps
    CUDA's index to an entry first; a UUID entry is left to the UUID lookup.
    """
    same_order = env.get("CUDA_DEVICE_ORDER", "").strip().upper() == "PCI_BUS_ID" or nvml_count == 1
    if not same_order or index < 0:
        return None
    entries = visible_device_entries(env.get("CUDA_VISIBLE_DEVICES"))
    if entries is None:
        n = index
    else:
        if index >= len(entries) or not entries[index].isdigit():
            return None
        n = int(entries[index])
    return n if 0 <= n < nvml_count else None


def _uuid_keys(uuid: str) -> list[str]:
    """NVML names of a CUDA UUID: ``GPU-<uuid>`` for a whole GPU, ``MIG-<uuid>`` for a MIG instance."""
    u = uuid.strip()
    if u.startswith(("GPU-", "MIG-")):
        return [u]
    return ["GPU-" + u, "MIG-" + u]


def _bare_uuid(uuid: object) -> str:
    text = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
    text = text.strip().lower()
    for prefix in ("gpu-", "mig-"):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _value(x: object) -> object:
    """pynvml returns some flags as ctypes scalars: their ``.value``."""
    return getattr(x, "value", x)


def _is_mig_handle(nv: NvmlLibrary, handle: object) -> bool:
    return bool(_value(_call(getattr(nv, "nvmlDeviceIsMigDeviceHandle", None), handle)))


def _narrow_to_mig(nv: NvmlLibrary, handle: object, uuid: str | None) -> object | None:
    """``handle``, or the MIG instance of it that CUDA runs on (None when that cannot be told).

    A GPU in MIG mode is not what a CUDA process runs on: its memory and
    processes are those of every instance. The instance is the one whose UUID
    is CUDA's.
    """
    if _is_mig_handle(nv, handle):
        return handle
    mode = _call(getattr(nv, "nvmlDeviceGetMigMode", None), handle)
    if not mode or _value(mode[0]) != getattr(nv, "NVML_DEVICE_MIG_ENABLE", 1):
        return handle
    if not uuid:
        return None
    want = _bare_uuid(uuid)
    count = _call(getattr(nv, "nvmlDeviceGetMaxMigDeviceCount", None), handle) or 0
    for i in range(int(count)):
        child: object = _call(getattr(nv, "nvmlDeviceGetMigDeviceHandleByIndex", None), handle, i)
        if child is not None and _bare_uuid(_call(nv.nvmlDeviceGetUUID, child) or "") == want:
            return child
    return None


def _find_handle(
    nv: NvmlLibrary, uuid: str | None, pci_bus_id: str | None, index: int, env: Mapping[str, str]
) -> object | None:
    for key in _uuid_keys(uuid) if uuid else []:
        handle = _call(getattr(nv, "nvmlDeviceGetHandleByUUID", None), key)
        if handle is not None:
            return _narrow_to_mig(nv, handle, uuid)
    if pci_bus_id:
        handle = _call(getattr(nv, "nvmlDeviceGetHandleByPciBusId", None), pci_bus_id)
        if handle is not None:
            return _narrow_to_mig(nv, handle, uuid)
    count = _call(getattr(nv, "nvmlDeviceGetCount", None))
    if count is None:
        return None
    n = nvml_index_for_cuda_index(index, int(count), env)
    if n is None:
        return None
    handle = _call(getattr(nv, "nvmlDeviceGetHandleByIndex", None), n)
    return _narrow_to_mig(nv, handle, uuid) if handle is not None else None


# -- NVML -------------------------------------------------------------------------------------


class NvmlLibrary(Protocol):
    """The pynvml functions called directly (the module, or a fake in tests); device handles are opaque.

    Every other NVML function is looked up with ``getattr`` and may be missing (older pynvml),
    and its result is untyped, as pynvml is.
    """

    def nvmlSystemGetDriverVersion(self) -> str | bytes: ...

    def nvmlDeviceGetCount(self) -> int: ...

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object, /) -> int: ...

    def nvmlDeviceGetHandleByIndex(self, index: int) -> object: ...

    def nvmlDeviceGetName(self, handle: object) -> str | bytes: ...

    def nvmlDeviceGetUUID(self, handle: object) -> str | bytes: ...

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: object) -> int: ...

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: object, index: int) -> object: ...


@dataclass(frozen=True)
class NvmlProcess:
    """One compute process on the device as NVML lists it (``pid`` in the host's namespace)."""

    pid: int
    #: None where NVML gives no usable figure (not available, or 0 bytes).
    used_bytes: int | None


#: NVML's clock event ("throttle") reason bits, by name (nvmlClocksEventReason* in pynvml).
THROTTLE_REASONS: tuple[tuple[int, str], ...] = (
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
)
#: Reasons that are not a slowdown of busy calls (idle, clocks set by the user, display).
BENIGN_REASONS = 0x1 | 0x2 | 0x100

#: NVML_PERF_POLICY_* values whose violation counters are read around the timed calls.
VIOLATION_POLICIES: tuple[tuple[str, str, int], ...] = (
    ("power", "NVML_PERF_POLICY_POWER", 0),
    ("thermal", "NVML_PERF_POLICY_THERMAL", 1),
    ("sync_boost", "NVML_PERF_POLICY_SYNC_BOOST", 2),
    ("board_limit", "NVML_PERF_POLICY_BOARD_LIMIT", 3),
    ("low_utilization", "NVML_PERF_POLICY_LOW_UTILIZATION", 4),
    ("reliability", "NVML_PERF_POLICY_RELIABILITY", 5),
)


def throttle_reason_names(mask: int | None) -> list[str]:
    """The names of the bits set in an NVML clock-event reason mask."""
    if mask is None:
        return []
    names = [name for bit, name in THROTTLE_REASONS if int(mask) & bit]
    known = sum(bit for bit, _ in THROTTLE_REASONS)
    if int(mask) & ~known:
        names.append(f"other(0x{int(mask) & ~known:x})")
    return names


class Nvml:
    """NVML queries through pynvml (the ``nvidia-ml-py`` distribution). Every query may return None.

    ``handle`` is the device CUDA runs on (a MIG instance where MIG is on):
    processes and memory are read there. ``parent`` is the physical GPU:
    clocks, power, temperature and throttle reasons are read there (NVML
    does not report them for a MIG instance).
    """

    def __init__(self, handle: object, pynvml: NvmlLibrary, parent: object | None = None) -> None:
        self.handle = handle
        self.nv = pynvml
        self.parent: object = parent if parent is not None else handle

    @property
    def is_mig(self) -> bool:
        return self.parent is not self.handle

    @classmethod
    def open(
        cls, uuid: str | None, pci_bus_id: str | None, index: int, env: Mapping[str, str] | None = None
    ) -> Nvml | None:
        """The NVML device of CUDA device ``index``, by UUID (``GPU-``/``MIG-``), PCI bus id, then index.

        The index is used only where CUDA's and NVML's numberings are known to
        agree (:func:`nvml_index_for_cuda_index`). None when no driver, no
        library, or no device can be matched for sure.
        """
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception:  # noqa: BLE001 - no driver, no library: NVML is optional
            return None
        handle = _find_handle(pynvml, uuid, pci_bus_id, index, os.environ if env is None else env)
        if handle is None:
            return None
        parent: object | None = None
        if _is_mig_handle(pynvml, handle):
            parent = _call(getattr(pynvml, "nvmlDeviceGetDeviceHandleFromMigDeviceHandle", None), handle)
        return cls(handle, pynvml, parent)

    def _q(self, fn: str, *args: object, handle: object | None = None) -> Any:
        """NVML function ``fn`` on the device (or ``handle``): pynvml is untyped, so is its result."""
        return _call(getattr(self.nv, fn, None), self.handle if handle is None else handle, *args)

    def processes(self) -> list[NvmlProcess] | None:
        """The compute processes on the device (None where NVML cannot list them).

        Zero and "not available" figures become None (:func:`plausible_bytes`).
        """
        for fn in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetComputeRunningProcesses_v2"):
            f = getattr(self.nv, fn, None)
            if f is None:
                continue
            try:
                procs = f(self.handle)
            except Exception:  # noqa: BLE001 - e.g. a library/driver version mismatch: try the next
                continue
            out: list[NvmlProcess] = []
            for p in procs or []:
                pid = getattr(p, "pid", None)
                if pid is not None:
                    out.append(NvmlProcess(int(pid), plausible_bytes(getattr(p, "usedGpuMemory", None))))
            return out
        return None

    def process_used_bytes(self, pid: int) -> int | None:
        """GPU memory NVML attributes to ``pid`` (None where it has no such entry or no usable figure).

        ``pid`` is the PID as NVML sees it: the host's, which differs from
        ``os.getpid()`` in a container (see :func:`find_nvml_pid`).
        """
        for p in self.processes() or []:
            if p.pid == pid:
                return p.used_bytes
        return None

    def device_memory(self) -> tuple[int | None, int | None]:
        """(used, total) bytes of the device (a MIG instance's own where MIG is on)."""
        info = self._q("nvmlDeviceGetMemoryInfo")
        if info is None:
            return None, None
        used, total = getattr(info, "used", None), getattr(info, "total", None)
        return (int(used) if used is not None else None, int(total) if total is not None else None)

    def device_used_bytes(self) -> int | None:
        return self.device_memory()[0]

    def _reasons(self) -> object:
        reasons = self._q("nvmlDeviceGetCurrentClocksEventReasons", handle=self.parent)
        if reasons is None:
            reasons = self._q("nvmlDeviceGetCurrentClocksThrottleReasons", handle=self.parent)
        return reasons

    def snapshot(self) -> JsonObject:
        """Clocks, power limit and throttle reasons, for the environment record."""
        nv = self.nv
        power = self._q("nvmlDeviceGetEnforcedPowerLimit", handle=self.parent)
        return {
            "sm_clock_mhz": self._q("nvmlDeviceGetClockInfo", getattr(nv, "NVML_CLOCK_SM", 1), handle=self.parent),
            "mem_clock_mhz": self._q("nvmlDeviceGetClockInfo", getattr(nv, "NVML_CLOCK_MEM", 2), handle=self.parent),
            "max_sm_clock_mhz": self._q(
                "nvmlDeviceGetMaxClockInfo", getattr(nv, "NVML_CLOCK_SM", 1), handle=self.parent
            ),
            "power_limit_w": None if power is None else power / 1000.0,
            "temperature_c": self._q(
                "nvmlDeviceGetTemperature", getattr(nv, "NVML_TEMPERATURE_GPU", 0), handle=self.parent
            ),
            "throttle_reasons": self._reasons(),
        }

    def sample(self) -> JsonObject:
        """Clocks, power draw, temperature and throttle reasons now (a few cheap queries)."""
        nv = self.nv
        power = self._q("nvmlDeviceGetPowerUsage", handle=self.parent)
        return {
            "sm_clock_mhz": self._q("nvmlDeviceGetClockInfo", getattr(nv, "NVML_CLOCK_SM", 1), handle=self.parent),
            "mem_clock_mhz": self._q("nvmlDeviceGetClockInfo", getattr(nv, "NVML_CLOCK_MEM", 2), handle=self.parent),
            "power_w": None if power is None else power / 1000.0,
            "temperature_c": self._q(
                "nvmlDeviceGetTemperature", getattr(nv, "NVML_TEMPERATURE_GPU", 0), handle=self.parent
            ),
            "throttle_reasons": self._reasons(),
        }

    def violation_ns(self) -> dict[str, int]:
        """NVML's cumulative time (ns) the GPU spent held below its clocks, per cause.

        Read before and after the timed calls, the difference says whether they
        were slowed by power or thermal limits even between two samples.
        """
        out: dict[str, int] = {}
        for name, const, default in VIOLATION_POLICIES:
            v = self._q("nvmlDeviceGetViolationStatus", getattr(self.nv, const, default), handle=self.parent)
            t = getattr(v, "violationTime", None)
            if t is not None:
                out[name] = int(t)
        return out

    def driver_version(self) -> str | None:
        try:
            v = self.nv.nvmlSystemGetDriverVersion()
        except Exception:  # noqa: BLE001
            return None
        return v.decode() if isinstance(v, bytes) else str(v)


# -- GPU state during the timed calls ----------------------------------------------------------


def _spread(values: Iterable[float | None]) -> dict[str, float] | None:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return {"min": min(vals), "median": float(statistics.median(vals)), "max": max(vals)}


class GpuStateSampler:
    """Clocks, power and throttle reasons while the timed calls run.

    Snapshots at the start and end of a run see an idle GPU, so they never
    show the throttling that slowed the calls. ``tick()`` runs inside every
    timed call, after the work is queued (the GPU is busy), and takes an
    NVML sample at most every ``interval_s`` (NVML queries cost tens of
    microseconds of host time; they are outside the events' interval). The
    violation counters are read at ``begin()`` and ``end()``.
    """

    def __init__(
        self,
        nvml: Nvml | None,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = 0.05,
        max_samples: int = 200,
    ) -> None:
        self.nvml = nvml
        self.clock = clock
        self.interval_s = interval_s
        self.max_samples = max_samples
        self.active = False
        self.samples: list[JsonObject] = []
        self._last = 0.0
        self._violations: dict[str, int] = {}

    def begin(self) -> None:
        self.samples = []
        self.active = self.nvml is not None
        self._violations = self.nvml.violation_ns() if self.nvml is not None else {}

    def tick(self) -> None:
        if not self.active or self.nvml is None or len(self.samples) >= self.max_samples:
            return
        now = self.clock()
        if self.samples and now - self._last < self.interval_s:
            return
        self._last = now
        self.samples.append(self.nvml.sample())

    def end(self) -> JsonObject | None:
        """The summary of what was seen since ``begin()`` (None without NVML)."""
        was_active, self.active = self.active, False
        if self.nvml is None or not was_active:
            return None
        during = bool(self.samples)
        samples = self.samples or [self.nvml.sample()]  # none taken: at least the state right after
        after = self.nvml.violation_ns()
        violation_ms = {k: (after[k] - v) / 1e6 for k, v in self._violations.items() if k in after}
        masks = [int(s["throttle_reasons"]) for s in samples if s.get("throttle_reasons") is not None]
        mask: int | None = None
        if masks:
            mask = 0
            for m in masks:
                mask |= m
        slowed: bool | None = None
        if mask is not None or violation_ms:
            slowed = bool(mask is not None and mask & ~BENIGN_REASONS) or any(
                violation_ms.get(k, 0.0) > 0 for k in ("power", "thermal", "reliability")
            )
        return {
            "samples": len(samples),
            "during_timed_calls": during,
            "sm_clock_mhz": _spread(s.get("sm_clock_mhz") for s in samples),
            "mem_clock_mhz": _spread(s.get("mem_clock_mhz") for s in samples),
            "power_w": _spread(s.get("power_w") for s in samples),
            "temperature_c": _spread(s.get("temperature_c") for s in samples),
            "throttle_reasons": mask,
            "throttle_reason_names": throttle_reason_names(mask),
            "violation_ms": violation_ms,
            "throttled": slowed,
        }


# -- which NVML entry is this process ------------------------------------------------------------


def _marker_bytes(own_pid: int) -> int:
    """A marker size that differs between processes started together (32 to 62 MiB)."""
    return (32 + 2 * (own_pid % 16)) * MiB


def _identify_by_marker(nvml: Nvml, api: CudaRuntime, candidates: set[int], own_pid: int) -> int | None:
    """The one candidate whose NVML figure grows by what a marker allocation reserved."""
    before = {p.pid: p.used_bytes for p in nvml.processes() or []}
    reserved0 = api.reserved()
    try:
        marker = api.allocate(_marker_bytes(own_pid))
    except Exception:  # noqa: BLE001 - no room for a marker (a full GPU): the PID stays unknown
        return None
    try:
        api.synchronize()
        grown = api.reserved() - reserved0
        after = {p.pid: p.used_bytes for p in nvml.processes() or []}
    finally:
        del marker
        api.empty_cache()
    if grown < MiB:
        return None
    hits: list[int] = []
    for pid in candidates:
        b, a = before.get(pid), after.get(pid)
        if b is not None and a is not None and abs((a - b) - grown) <= 2 * MiB:
            hits.append(pid)
    return hits[0] if len(hits) == 1 else None


def find_nvml_pid(
    nvml: Nvml | None,
    api: CudaRuntime,
    own_pid: int,
    before: list[NvmlProcess] | None,
    after: list[NvmlProcess] | None,
    context_existed: bool | None,
) -> tuple[int | None, str]:
    """This process's PID as NVML lists it, and how it was found.

    ``before``/``after``: NVML's process list just before and just after this
    process created its CUDA context. In a container without the host's PID
    namespace NVML lists host PIDs, so ``own_pid`` is not there; the PID that
    appeared with the context is ours. Where several appeared (workers
    started together) or none (the context already existed), the one whose
    figure grows by a marker allocation is. None when nothing is certain.
    """
    if nvml is None:
        return None, "no NVML device"
    if after is None:
        return None, "NVML cannot list the processes on this GPU"
    pids = {p.pid for p in after}
    new: set[int] | None = None
    if before is not None and context_existed is False:
        new = pids - {p.pid for p in before}
        if len(new) == 1:
            pid = next(iter(new))
            if pid == own_pid:
                return pid, "its own PID (same PID namespace as the driver)"
            return pid, "the one PID that appeared on the GPU with its CUDA context (host PID of a container)"
        if own_pid in new:
            return own_pid, "its own PID (same PID namespace as the driver)"
    elif own_pid in pids:
        return own_pid, "its own PID (same PID namespace as the driver)"
    candidates = new if new else pids
    if not candidates:
        return None, "NVML lists no process on this GPU"
    found = _identify_by_marker(nvml, api, candidates, own_pid)
    if found is not None:
        return found, "the PID whose NVML figure grew by a marker allocation"
    return None, "no NVML entry could be told to be this process's"


# -- backends ---------------------------------------------------------------------------------


class CpuBackend:
    """Host timing with ``perf_counter_ns``; peak RSS for memory."""

    kind = "cpu"

    def __init__(self, probe_factory: Callable[[], CpuMemoryProbe] = CpuMemoryProbe) -> None:
        self.device = "cpu"
        self._probe_factory = probe_factory

    def timer(self, fn: Callable[[], object]) -> Timer:
        return perf_counter_timer(fn)

    def synchronize(self) -> None:
        pass

    def memory_probe(self, call: Callable[[], object] | None = None) -> MemoryProbe:
        """The bracket probe, or with ``call`` the dedicated memory pass (see :class:`CpuMemoryPass`)."""
        if call is None:
            return self._probe_factory()
        return CpuMemoryPass(call, probe=self._probe_factory())

    def release(self) -> None:
        gc.collect()
        malloc_trim()

    def before_measure(self) -> None:
        """Nothing: the CPU memory call collects and trims by itself (a gc pass costs ~0.1-0.3 s)."""

    def device_name(self) -> str:
        return cpu_model_name()

    def describe(self) -> JsonObject:
        return {"device_name": self.device_name()}

    def snapshot(self) -> JsonObject:
        """No GPU: nothing to record (empty, so that callers can skip it)."""
        return {}

    def timed_state(self) -> JsonObject | None:
        return None

    def energy_meter(self) -> EnergyMeter:
        """RAPL's package counters, where the kernel shows them and this user may read them."""
        from .energy import rapl_meter

        return rapl_meter()


class CudaMemoryProbe:
    """Steady-state GPU memory: allocator peaks reset after warm-up, the process's total at the end.

    ``pid`` is this process's PID *as NVML lists it* (None when unknown).
    ``total`` comes from the first method that gives a plausible figure:
    NVML's per-process figure (``nvml-process``); the device's used memory
    minus what it used before this process's context, where the set of
    processes on the device did not change (``nvml-device-delta``);
    ``context + reserved_peak`` (``context+reserved``).
    """

    def __init__(
        self,
        api: CudaRuntime,
        nvml: Nvml | None,
        context: int | None,
        pid: int | None,
        *,
        sampler: GpuStateSampler | None = None,
        pid_how: str = "",
        pre_context_used: int | None = None,
        pids_at_context: frozenset[int] | None = None,
        device_total: int | None = None,
    ) -> None:
        self.api, self.nvml, self.context, self.pid = api, nvml, context, pid
        self.sampler = sampler
        self.pid_how = pid_how
        self.pre_context_used = pre_context_used
        self.pids_at_context = pids_at_context
        self.device_total = device_total
        self.gpu_state: JsonObject | None = None

    def start(self) -> None:
        self.api.synchronize()
        # After warm-up: blocks the warm-up calls freed stay reserved in the caching allocator (under
        # cudnn.benchmark the autotuner's trial workspaces, GBs at a new batch size) and NVML counts
        # them. Give them back before the peaks are reset, so that they are not the model's footprint.
        self.api.empty_cache()
        self.api.reset_peak()
        if self.sampler is not None:
            self.sampler.begin()

    def stop(self) -> tuple[dict[str, int | None], str]:
        self.api.synchronize()
        if self.sampler is not None:
            self.gpu_state = self.sampler.end()
        allocated = self.api.max_allocated()
        reserved = self.api.max_reserved()
        # The caching allocator keeps what it reserved until empty_cache(), so the process's
        # figure right after the timed calls is its figure at the peak.
        total, method = self._total(self.api.reserved(), reserved)
        return {
            "total": total,
            "allocator_peak": allocated,
            "reserved_peak": reserved,
            "context": self.context,
        }, method

    def _total(self, reserved_now: int, reserved_peak: int) -> tuple[int | None, str]:
        nvml = self.nvml
        if nvml is not None and self.pid is not None:
            used = plausible_bytes(nvml.process_used_bytes(self.pid), floor=reserved_now, ceiling=self.device_total)
            if used is not None:
                return used, (
                    f"{METHOD_PROCESS}: NVML's figure for this process after the timed calls "
                    f"(NVML PID {self.pid}: {self.pid_how})"
                )
        if nvml is not None and self.pre_context_used is not None:
            now_pids = nvml.processes()
            current = frozenset(p.pid for p in now_pids) if now_pids is not None else None
            if current is None or self.pids_at_context is None or current == self.pids_at_context:
                used_now = nvml.device_used_bytes()
                delta = None if used_now is None else used_now - self.pre_context_used
                total = plausible_bytes(delta, floor=reserved_now, ceiling=self.device_total)
                if total is not None:
                    checked = (
                        "no other process came or went" if current else "NVML lists no processes here: others unchecked"
                    )
                    return total, (
                        f"{METHOD_DEVICE}: device used memory after the timed calls minus before "
                        f"this process's CUDA context ({checked})"
                    )
        if self.context is not None:
            return self.context + reserved_peak, (
                f"{METHOD_CONTEXT}: CUDA context (read once, after cuDNN and "
                "cuBLAS were loaded) + allocator reserved peak"
            )
        return None, f"{METHOD_UNAVAILABLE}: NVML gives no figure for this process or device"


class CudaBackend:
    """CUDA events for timing; allocator peaks, context and NVML totals for memory."""

    kind = "cuda"

    def __init__(
        self,
        index: int,
        api: CudaRuntime | None = None,
        nvml: Nvml | Literal["auto"] | None = "auto",
        pid: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.index = index
        self.device = f"cuda:{index}"
        self.api: CudaRuntime = api if api is not None else CudaApi(index)
        #: This process's PID as it sees itself (NVML may list another: see ``nvml_pid``).
        self.pid = os.getpid() if pid is None else pid
        props = self.api.properties()
        self.props: CudaDeviceProperties = props
        if nvml == "auto":
            nvml = Nvml.open(props.get("uuid"), props.get("pci_bus_id"), index)
        self.nvml: Nvml | None = nvml
        self.sampler = GpuStateSampler(self.nvml, clock=clock)
        self._probe: CudaMemoryProbe | None = None

        # Before the context: which processes are on the device, and what it uses.
        existed = self.api.has_context()
        before = self.nvml.processes() if self.nvml is not None else None
        self.pre_context_used: int | None = None
        nvml_total: int | None = None
        if self.nvml is not None:
            used, nvml_total = self.nvml.device_memory()
            if existed is False:
                self.pre_context_used = used
        self.device_total: int | None = nvml_total or props.get("total_memory")

        self.api.create_context()
        self.api.load_libraries()
        after = self.nvml.processes() if self.nvml is not None else None
        self.nvml_pid, self.nvml_pid_how = find_nvml_pid(self.nvml, self.api, self.pid, before, after, existed)
        # The marker may have added or removed nobody, but re-read: the set the device-level method compares to.
        if self.nvml is not None:
            after = self.nvml.processes()
        self.pids_at_context: frozenset[int] | None = frozenset(p.pid for p in after) if after is not None else None
        # What the process holds beyond its caching allocator: the CUDA context with cuDNN and cuBLAS.
        self.context, self.context_method = self._read_context()

    def _read_context(self) -> tuple[int | None, str]:
        if self.nvml is None:
            return None, f"{METHOD_UNAVAILABLE}: no NVML device"
        reserved = self.api.reserved()
        if self.nvml_pid is not None:
            used = plausible_bytes(
                self.nvml.process_used_bytes(self.nvml_pid), floor=reserved + 1, ceiling=self.device_total
            )
            if used is not None:
                return used - reserved, METHOD_PROCESS
        if self.pre_context_used is not None:
            now = self.nvml.device_used_bytes()
            delta = None if now is None else now - self.pre_context_used
            used = plausible_bytes(delta, floor=reserved + 1, ceiling=self.device_total)
            if used is not None:
                return used - reserved, METHOD_DEVICE
        return None, f"{METHOD_UNAVAILABLE}: no plausible NVML figure"

    def timer(self, fn: Callable[[], object]) -> Timer:
        return self.api.event_timer(fn, during=self.sampler.tick)

    def synchronize(self) -> None:
        self.api.synchronize()

    def memory_probe(self, call: Callable[[], object] | None = None) -> CudaMemoryProbe:
        self._probe = CudaMemoryProbe(
            self.api,
            self.nvml,
            self.context,
            self.nvml_pid,
            sampler=self.sampler,
            pid_how=self.nvml_pid_how,
            pre_context_used=self.pre_context_used,
            pids_at_context=self.pids_at_context,
            device_total=self.device_total,
        )
        return self._probe

    def timed_state(self) -> JsonObject | None:
        return self._probe.gpu_state if self._probe is not None else None

    def energy_meter(self) -> EnergyMeter:
        """NVML's total-energy counter of the GPU (the whole physical GPU, also under MIG)."""
        from .energy import null_meter, nvml_meter

        if self.nvml is None:
            return null_meter(
                "NVML is not available (no driver library, or this GPU could not be matched to an NVML device)"
            )
        return nvml_meter(self.nvml.nv, self.nvml.parent)

    def release(self) -> None:
        gc.collect()
        self.api.synchronize()
        self.api.empty_cache()

    def before_measure(self) -> None:
        """Empty the allocator's cache, so that a batch does not inherit what a larger one reserved."""
        self.release()

    def device_name(self) -> str:
        return str(self.props.get("name"))

    def describe(self) -> JsonObject:
        d: JsonObject = {
            "device_name": self.device_name(),
            "gpu_total_memory": self.props.get("total_memory"),
            "gpu_capability": self.props.get("capability"),
            "cuda_context_bytes": self.context,
            "cuda_context_method": self.context_method,
            "nvml": self.nvml is not None,
            "nvml_pid": self.nvml_pid,
            "nvml_pid_method": self.nvml_pid_how,
        }
        if self.nvml is not None:
            d["driver"] = self.nvml.driver_version()
            d["mig"] = self.nvml.is_mig
        return d

    def snapshot(self) -> JsonObject:
        return self.nvml.snapshot() if self.nvml is not None else {}


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def make_backend(device: str) -> Backend:
    """Backend for a resolved device string (``cpu`` or ``cuda:N``)."""
    if device == "cpu":
        return CpuBackend()
    if device.startswith("cuda:"):
        return CudaBackend(int(device.split(":", 1)[1]))
    raise ValueError(f"unsupported device {device!r}")
