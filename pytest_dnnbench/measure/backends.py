"""Device backends: how to time one call and how to read memory, on CPU and on CUDA.

torch is imported inside functions only. Every ``torch.cuda`` call goes through
:class:`~pytest_dnnbench.measure.cuda.CudaApi` and every NVML call through
:class:`~pytest_dnnbench.measure.nvml.Nvml`, small classes that tests replace with
fakes, so that the CUDA path is unit-tested on machines without a GPU.

How the CUDA backend reads a process's memory (docs/gpu.md): its own NVML entry
(found by :func:`~pytest_dnnbench.measure.nvml.find_nvml_pid`); failing that, the
device's used memory minus what was used before the context, as long as no other
process came or went; failing that, ``context + reserved_peak``. The CUDA context
is read after a small convolution and a matrix product have loaded cuDNN and
cuBLAS, so that it holds what the runtime keeps. Clocks, power and throttle reasons
are sampled while the timed calls run (inside the timer, after the work is queued
and before the wait).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar, runtime_checkable

from .cuda import CudaApi, CudaDeviceProperties, CudaRuntime
from .memory import CpuMemoryPass, CpuMemoryProbe, malloc_trim
from .nvml import GpuStateSampler, Nvml, find_nvml_pid, plausible_bytes
from .timing import Timer, perf_counter_timer

if TYPE_CHECKING:
    from ..jsontypes import JsonObject
    from .energy import EnergyMeter

__all__ = [
    "Backend",
    "MemoryProbe",
    "CpuBackend",
    "CudaBackend",
    "CudaMemoryProbe",
    "METHOD_PROCESS",
    "METHOD_DEVICE",
    "METHOD_CONTEXT",
    "METHOD_UNAVAILABLE",
    "cpu_model_name",
    "make_backend",
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
                    checked = _others_checked(current)
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


def _others_checked(current: frozenset[int] | None) -> str:
    """What the device delta can say of the other processes on the GPU (the set it saw is the one it
    saw when this process created its CUDA context)."""
    if not current:
        return "NVML lists no processes here: others unchecked"
    if len(current) == 1:
        return "the only process on the GPU"
    others = len(current) - 1
    return (
        f"{others} other process{'es' if others > 1 else ''} on the GPU neither came nor went, but what "
        f"{'they' if others > 1 else 'it'} allocated meanwhile is counted too"
    )


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
