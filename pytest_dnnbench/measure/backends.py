"""Device backends: how to time one call and how to read memory, on CPU and on CUDA.

torch is imported inside functions only. Every ``torch.cuda`` and NVML call
goes through :class:`CudaApi` and :class:`Nvml`, small classes that tests
replace with fakes, so that the CUDA path is unit-tested on machines without
a GPU.
"""

from __future__ import annotations

import gc
import os
from typing import Any, Callable, Optional

from .memory import CpuMemoryPass, CpuMemoryProbe, malloc_trim
from .timing import Timer, perf_counter_timer


class CudaApi:
    """The handful of ``torch.cuda`` calls the CUDA backend makes."""

    def __init__(self, index: int):
        import torch

        self.torch = torch
        self.index = index

    def create_context(self) -> None:
        self.torch.cuda.set_device(self.index)
        self.torch.cuda.synchronize(self.index)

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

    def properties(self) -> dict:
        p = self.torch.cuda.get_device_properties(self.index)
        uuid = getattr(p, "uuid", None)
        return {
            "name": p.name,
            "total_memory": int(p.total_memory),
            "capability": f"{p.major}.{p.minor}",
            "uuid": str(uuid) if uuid is not None else None,
            "pci_bus_id": _pci_bus_id(p),
        }

    def event_timer(self, fn: Callable[[], object]) -> Timer:
        """Time one call with CUDA events; the end event is waited for, so calls never overlap."""
        start = self.torch.cuda.Event(enable_timing=True)
        end = self.torch.cuda.Event(enable_timing=True)

        def once() -> float:
            start.record()
            fn()
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end))

        return once


def _pci_bus_id(props: Any) -> Optional[str]:
    bus = getattr(props, "pci_bus_id", None)
    if bus is None:
        return None
    return f"{getattr(props, 'pci_domain_id', 0):08X}:{bus:02X}:{getattr(props, 'pci_device_id', 0):02X}.0"


class Nvml:
    """NVML queries through pynvml (the ``nvidia-ml-py`` distribution). Every query may return None."""

    def __init__(self, handle: Any, pynvml: Any):
        self.handle = handle
        self.nv = pynvml

    @classmethod
    def open(cls, uuid: Optional[str], pci_bus_id: Optional[str], index: int) -> Optional["Nvml"]:
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception:  # noqa: BLE001 - no driver, no library: NVML is optional
            return None
        handle = None
        for how, key in (("uuid", uuid), ("pci", pci_bus_id)):
            if not key:
                continue
            try:
                if how == "uuid":
                    handle = pynvml.nvmlDeviceGetHandleByUUID(key if key.startswith("GPU-") else "GPU-" + key)
                else:
                    handle = pynvml.nvmlDeviceGetHandleByPciBusId(key)
                break
            except Exception:  # noqa: BLE001
                handle = None
        if handle is None and "CUDA_VISIBLE_DEVICES" not in os.environ:
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            except Exception:  # noqa: BLE001
                handle = None
        return cls(handle, pynvml) if handle is not None else None

    def _q(self, fn: str, *args: Any) -> Any:
        try:
            return getattr(self.nv, fn)(self.handle, *args)
        except Exception:  # noqa: BLE001
            return None

    def process_used_bytes(self, pid: int) -> Optional[int]:
        """GPU memory NVML attributes to ``pid`` (None where NVML cannot see per-process figures)."""
        procs = self._q("nvmlDeviceGetComputeRunningProcesses") or []
        for p in procs:
            if getattr(p, "pid", None) == pid:
                used = getattr(p, "usedGpuMemory", None)
                return int(used) if used is not None else None
        return None

    def snapshot(self) -> dict:
        """Clocks, power limit and throttle reasons, for the environment record."""
        nv = self.nv
        reasons = self._q("nvmlDeviceGetCurrentClocksEventReasons")
        if reasons is None:
            reasons = self._q("nvmlDeviceGetCurrentClocksThrottleReasons")
        power = self._q("nvmlDeviceGetEnforcedPowerLimit")
        return {
            "sm_clock_mhz": self._q("nvmlDeviceGetClockInfo", getattr(nv, "NVML_CLOCK_SM", 1)),
            "mem_clock_mhz": self._q("nvmlDeviceGetClockInfo", getattr(nv, "NVML_CLOCK_MEM", 2)),
            "max_sm_clock_mhz": self._q("nvmlDeviceGetMaxClockInfo", getattr(nv, "NVML_CLOCK_SM", 1)),
            "power_limit_w": None if power is None else power / 1000.0,
            "temperature_c": self._q("nvmlDeviceGetTemperature", getattr(nv, "NVML_TEMPERATURE_GPU", 0)),
            "throttle_reasons": reasons,
        }

    def driver_version(self) -> Optional[str]:
        try:
            v = self.nv.nvmlSystemGetDriverVersion()
        except Exception:  # noqa: BLE001
            return None
        return v.decode() if isinstance(v, bytes) else str(v)


class CpuBackend:
    """Host timing with ``perf_counter_ns``; peak RSS for memory."""

    kind = "cpu"

    def __init__(self, probe_factory: Callable[[], CpuMemoryProbe] = CpuMemoryProbe):
        self.device = "cpu"
        self._probe_factory = probe_factory

    def timer(self, fn: Callable[[], object]) -> Timer:
        return perf_counter_timer(fn)

    def synchronize(self) -> None:
        pass

    def memory_probe(self, call: Optional[Callable[[], object]] = None) -> Any:
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

    def describe(self) -> dict:
        return {"device_name": self.device_name()}


class CudaMemoryProbe:
    """Steady-state GPU memory: allocator peaks reset after warm-up, NVML total at the end."""

    def __init__(self, api: CudaApi, nvml: Optional[Nvml], context: Optional[int], pid: int):
        self.api, self.nvml, self.context, self.pid = api, nvml, context, pid

    def start(self) -> None:
        self.api.synchronize()
        self.api.reset_peak()

    def stop(self) -> tuple[dict[str, Optional[int]], str]:
        self.api.synchronize()
        allocated = self.api.max_allocated()
        reserved = self.api.max_reserved()
        # The caching allocator keeps what it reserved until empty_cache(), so the process's
        # NVML figure right after the timed calls is its figure at the peak.
        used = self.nvml.process_used_bytes(self.pid) if self.nvml is not None else None
        if used is not None:
            total, method = used, "NVML per-process memory after the timed calls"
        elif self.context is not None:
            total, method = self.context + reserved, "CUDA context (NVML, once) + allocator reserved peak"
        else:
            total, method = None, "unavailable (NVML cannot see this process)"
        return {
            "total": total,
            "allocator_peak": allocated,
            "reserved_peak": reserved,
            "context": self.context,
        }, method


class CudaBackend:
    """CUDA events for timing; allocator peaks, context and NVML totals for memory."""

    kind = "cuda"

    def __init__(self, index: int, api: Optional[CudaApi] = None, nvml: Any = "auto", pid: Optional[int] = None):
        self.index = index
        self.device = f"cuda:{index}"
        self.api = api if api is not None else CudaApi(index)
        self.pid = os.getpid() if pid is None else pid
        props = self.api.properties()
        self.props = props
        if nvml == "auto":
            nvml = Nvml.open(props.get("uuid"), props.get("pci_bus_id"), index)
        self.nvml: Optional[Nvml] = nvml
        # What the process holds before any tensor: the CUDA context.
        self.api.create_context()
        self.context = self.nvml.process_used_bytes(self.pid) if self.nvml is not None else None

    def timer(self, fn: Callable[[], object]) -> Timer:
        return self.api.event_timer(fn)

    def synchronize(self) -> None:
        self.api.synchronize()

    def memory_probe(self, call: Optional[Callable[[], object]] = None) -> CudaMemoryProbe:
        return CudaMemoryProbe(self.api, self.nvml, self.context, self.pid)

    def release(self) -> None:
        gc.collect()
        self.api.synchronize()
        self.api.empty_cache()

    def before_measure(self) -> None:
        """Empty the allocator's cache, so that a batch does not inherit what a larger one reserved."""
        self.release()

    def device_name(self) -> str:
        return str(self.props.get("name"))

    def describe(self) -> dict:
        d = {
            "device_name": self.device_name(),
            "gpu_total_memory": self.props.get("total_memory"),
            "gpu_capability": self.props.get("capability"),
            "cuda_context_bytes": self.context,
            "nvml": self.nvml is not None,
        }
        if self.nvml is not None:
            d["driver"] = self.nvml.driver_version()
        return d

    def snapshot(self) -> dict:
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


def make_backend(device: str) -> Any:
    """Backend for a resolved device string (``cpu`` or ``cuda:N``)."""
    if device == "cpu":
        return CpuBackend()
    if device.startswith("cuda:"):
        return CudaBackend(int(device.split(":", 1)[1]))
    raise ValueError(f"unsupported device {device!r}")
