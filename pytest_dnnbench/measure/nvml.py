"""NVML behind one small class (:class:`Nvml`, a fake in the tests), CUDA's device numbering against
NVML's, this process's NVML entry, and the GPU state sampled during the timed calls.

What the real drivers do, and what this module does about it (docs/gpu.md):

- In a container without the host's PID namespace, NVML lists processes by
  their *host* PIDs, so ``os.getpid()`` never matches. :func:`find_nvml_pid`
  therefore finds this process's NVML entry as the PID that appears on the device
  when its CUDA context is created (or, when several appear at once, the one whose
  figure grows by a marker allocation).
- Some drivers list the process with no memory figure or with 0 bytes: such
  figures count as unavailable, never as real (:func:`plausible_bytes`).
- MIG instances have ``MIG-`` UUIDs, and their clocks and power belong to the
  GPU that holds them.
- CUDA and NVML number GPUs alike only with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``
  (or a single GPU), and ``CUDA_VISIBLE_DEVICES`` renumbers CUDA's devices:
  the index is used to find the NVML device only when both orders agree.
- Clocks, power and throttle reasons are sampled while the timed calls run
  (:class:`GpuStateSampler`), and the NVML violation counters are read around them.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, SupportsInt, TypeVar

from .cuda import CudaRuntime

if TYPE_CHECKING:
    from ..jsontypes import JsonObject

MiB = 2**20

_T = TypeVar("_T")


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


#: Two markers differ by at least this much, more than twice :data:`MARKER_TOLERANCE`: a process's
#: growth can match one marker only, also for workers with adjacent PIDs started together.
MARKER_STEP = 8 * MiB
#: How far a candidate's growth on NVML may be from what the marker reserved.
MARKER_TOLERANCE = 2 * MiB


def marker_bytes(own_pid: int) -> int:
    """A marker size that differs between processes started together: 32 MiB + 8 MiB x (PID mod 16),
    32 to 152 MiB, so that PIDs closer than 16 apart (workers started together) never share one."""
    return 32 * MiB + MARKER_STEP * (own_pid % 16)


def identify_by_marker(nvml: Nvml, api: CudaRuntime, candidates: set[int], own_pid: int) -> int | None:
    """The one candidate whose NVML figure grows by what a marker allocation reserved."""
    before = {p.pid: p.used_bytes for p in nvml.processes() or []}
    reserved0 = api.reserved()
    try:
        marker = api.allocate(marker_bytes(own_pid))
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
        if b is not None and a is not None and abs((a - b) - grown) <= MARKER_TOLERANCE:
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
    found = identify_by_marker(nvml, api, candidates, own_pid)
    if found is not None:
        return found, "the PID whose NVML figure grew by a marker allocation"
    return None, "no NVML entry could be told to be this process's"
