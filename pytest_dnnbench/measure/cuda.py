"""``torch.cuda`` behind one small class (:class:`CudaApi`), so that tests replace it with a fake and the
CUDA path is unit-tested on machines without a GPU. torch is imported inside functions only.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Protocol, TypedDict

from .timing import Timer


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
