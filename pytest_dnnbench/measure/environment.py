"""The environment every result carries: versions, hardware, and every setting that changes a figure.

``torch_cuda_build`` is the CUDA version torch was built with (null for a CPU-only build), on
every run. The facts of a CUDA run's device and libraries (``cuda``, ``cudnn``,
``cudnn_benchmark``, the TF32 settings, the GPU's memory, context and driver) are written on CUDA
runs only: a CPU run does not carry them (docs/usage.md, the results file).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from datetime import datetime, timezone
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

from .memory import PINNED_MMAP_THRESHOLD, PINNED_TRIM_THRESHOLD

if TYPE_CHECKING:
    from ..jsontypes import JsonObject
    from .backends import Backend
    from .bench import BenchSettings
    from .nvml import NvmlLibrary


class MachineOptions(Protocol):
    """The options :func:`machine_info` records (the session's settings)."""

    @property
    def device(self) -> str: ...

    @property
    def precision(self) -> str: ...

    @property
    def cudnn_benchmark(self) -> bool: ...


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - not installed
        return None


def collect_environment(backend: Backend, settings: BenchSettings, plugin_version: str) -> JsonObject:
    """Versions, hardware, and every setting that changes a figure."""
    import torch

    from .bench import read_float32_matmul_precision

    on_cuda = str(backend.device).startswith("cuda")
    env: JsonObject = {
        "plugin_version": plugin_version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "torch": str(torch.__version__),
        "torchvision": _version("torchvision"),
        "timm": _version("timm"),
        "thop": _version("ultralytics-thop"),
        "pretrainedmodels": _version("pretrainedmodels"),
        "torch_cuda_build": torch.version.cuda,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "device": backend.device,
        "precision": settings.precision,
        "mode": settings.mode,
        "channels_last": settings.channels_last,
        **(_cuda_settings(torch, settings) if on_cuda else {}),
        "float32_matmul_precision": read_float32_matmul_precision(torch),
        "flush_denormal": settings.device == "cpu",
        "malloc_mmap_threshold": PINNED_MMAP_THRESHOLD,
        "malloc_trim_threshold": PINNED_TRIM_THRESHOLD,
        "seed": settings.seed,
        "sampling": {
            "min_samples": settings.policy.min_samples,
            "max_samples": settings.policy.max_samples,
            "ci_target": settings.policy.ci_target,
            "confidence": settings.policy.confidence,
            "max_time_s": settings.policy.max_time_s,
            "warmup_min": settings.policy.warmup_min,
        },
    }
    env.update(backend.describe())
    snapshot = getattr(backend, "snapshot", None)
    state = snapshot() if snapshot is not None else None
    if state:  # the CPU backend has no GPU state to record
        env["gpu_state_start"] = state
    return env


def _cuda_settings(torch: ModuleType, settings: BenchSettings) -> JsonObject:
    """The CUDA version and the cuDNN and TF32 settings of a CUDA run (in the environment after ``channels_last``)."""
    from .bench import read_tf32_flags

    # Read through whichever TF32 API this torch has, never raising (a mixed legacy/new
    # state makes plain reads raise, and this runs while the first test builds the backend).
    tf32 = read_tf32_flags(torch)
    return {
        "cuda": torch.version.cuda,
        "cudnn": _cudnn_version(torch),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "tf32_matmul": tf32["tf32_matmul"],
        "tf32_cudnn": tf32["tf32_cudnn"],
        "tf32_api": tf32["api"],
        "tf32_env_overrides": tf32["env_overrides"],
        "tf32_requested": bool(getattr(settings, "tf32", False)),
    }


def _cudnn_version(torch: ModuleType) -> int | None:
    try:
        version = torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001
        return None
    return int(version) if version is not None else None


def _cpu_name() -> str:
    from .backends import cpu_model_name

    return cpu_model_name()


def machine_info(options: MachineOptions) -> JsonObject:
    """What pytest-benchmark stores as our part of ``machine_info``: stable facts, no measurement.

    As in the environment, ``torch_cuda_build`` is torch's build; the cuDNN version and
    ``cudnn_benchmark`` are left out when the CPU was asked for (``--dnn-device=cpu``)."""
    import torch

    info: JsonObject = {
        "torch": str(torch.__version__),
        "torchvision": _version("torchvision"),
        "timm": _version("timm"),
        "torch_cuda_build": torch.version.cuda,
        "cpu": _cpu_name(),
        "requested_device": options.device,
        "precision": options.precision,
    }
    if options.device != "cpu":
        info["cudnn"] = _cudnn_version(torch)
        info["cudnn_benchmark"] = options.cudnn_benchmark
    info.update(_nvml_inventory())
    return info


def _nvml_inventory() -> JsonObject:
    """Names of the visible GPUs and the driver, through NVML (no CUDA context is created)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver or no library: no GPU facts
        return {"gpus": [], "driver": None}
    return nvml_inventory(pynvml, os.environ)


def _name(nv: NvmlLibrary, handle: object) -> str | None:
    try:
        name = nv.nvmlDeviceGetName(handle)
    except Exception:  # noqa: BLE001
        return None
    return name.decode() if isinstance(name, bytes) else str(name)


def _uuid(nv: NvmlLibrary, handle: object) -> str:
    try:
        u = nv.nvmlDeviceGetUUID(handle)
    except Exception:  # noqa: BLE001
        return ""
    return (u.decode() if isinstance(u, bytes) else str(u)).lower()


def _all_handles(nv: NvmlLibrary) -> list[object]:
    """Every GPU and, where MIG is on, every MIG instance of it (opaque NVML handles)."""
    out: list[object] = []
    for i in range(int(nv.nvmlDeviceGetCount())):
        gpu = nv.nvmlDeviceGetHandleByIndex(i)
        out.append(gpu)
        try:
            count = int(nv.nvmlDeviceGetMaxMigDeviceCount(gpu))
        except Exception:  # noqa: BLE001 - no MIG support
            continue
        for j in range(count):
            try:
                out.append(nv.nvmlDeviceGetMigDeviceHandleByIndex(gpu, j))
            except Exception:  # noqa: BLE001 - empty slot
                continue
    return out


def nvml_inventory(nv: NvmlLibrary, env: Mapping[str, str]) -> JsonObject:
    """The GPUs this process can see, as CUDA numbers them, and the driver.

    ``CUDA_VISIBLE_DEVICES`` is honoured: a UUID entry (``GPU-``/``MIG-``, or a prefix
    of one, as CUDA accepts) is looked up by UUID; an index entry is NVML's index only
    under ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (CUDA's default order puts the fastest GPU
    first), else its name is given only when every GPU has the same name, and is None
    otherwise. Unset, every GPU is listed, in NVML's (PCI bus) order.
    """
    from .nvml import visible_device_entries

    try:
        driver_raw = nv.nvmlSystemGetDriverVersion()
        driver: str | None = driver_raw.decode() if isinstance(driver_raw, bytes) else str(driver_raw)
    except Exception:  # noqa: BLE001
        driver = None
    try:
        count = int(nv.nvmlDeviceGetCount())
        gpus = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        entries = visible_device_entries(env.get("CUDA_VISIBLE_DEVICES"))
        if entries is None:
            names: list[str | None] = [_name(nv, h) for h in gpus]
        else:
            pci_order = env.get("CUDA_DEVICE_ORDER", "").strip().upper() == "PCI_BUS_ID"
            all_names = {_name(nv, h) for h in gpus}
            by_uuid: list[tuple[str, object]] | None = None
            names = []
            for entry in entries:
                if entry.isdigit():
                    n = int(entry)
                    if n >= count:
                        break  # CUDA stops at an index that does not exist
                    if pci_order or len(all_names) == 1:
                        names.append(_name(nv, gpus[n]))
                    else:
                        names.append(None)
                    continue
                if by_uuid is None:
                    by_uuid = [(_uuid(nv, h), h) for h in _all_handles(nv)]
                matches = [h for u, h in by_uuid if u.startswith(entry.lower())]
                if len(matches) != 1:
                    break  # unknown or ambiguous UUID: CUDA stops there too
                names.append(_name(nv, matches[0]))
        return {"gpus": names, "driver": driver, "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES")}
    except Exception:  # noqa: BLE001
        return {"gpus": [], "driver": driver}
