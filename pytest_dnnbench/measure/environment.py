"""The environment every result carries (DESIGN §3 "Environment")."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from typing import Any, Optional

from .memory import PINNED_MMAP_THRESHOLD, PINNED_TRIM_THRESHOLD


def _version(module: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - not installed
        return None


def collect_environment(backend: Any, settings: Any, plugin_version: str) -> dict:
    """Versions, hardware, and every setting that changes a figure."""
    import torch

    env: dict[str, Any] = {
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
        "cuda": torch.version.cuda,
        "cudnn": _cudnn_version(torch),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "device": backend.device,
        "precision": settings.precision,
        "mode": settings.mode,
        "channels_last": settings.channels_last,
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
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
    if hasattr(backend, "snapshot"):
        env["gpu_state_start"] = backend.snapshot()
    return env


def _cudnn_version(torch: Any) -> Optional[int]:
    try:
        return torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001
        return None


def _cpu_name() -> str:
    from .backends import cpu_model_name

    return cpu_model_name()


def machine_info(options: Any) -> dict:
    """What pytest-benchmark stores as our part of ``machine_info``: stable facts, no measurement."""
    import torch

    info: dict[str, Any] = {
        "torch": str(torch.__version__),
        "torchvision": _version("torchvision"),
        "timm": _version("timm"),
        "cuda": torch.version.cuda,
        "cudnn": _cudnn_version(torch),
        "cpu": _cpu_name(),
        "requested_device": options.device,
        "precision": options.precision,
        "cudnn_benchmark": options.cudnn_benchmark,
    }
    info.update(_nvml_inventory())
    return info


def _nvml_inventory() -> dict:
    """Names of the visible GPUs and the driver, through NVML (no CUDA context is created)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver or no library: no GPU facts
        return {"gpus": [], "driver": None}
    try:
        names = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        driver = pynvml.nvmlSystemGetDriverVersion()
        return {"gpus": names, "driver": driver.decode() if isinstance(driver, bytes) else str(driver)}
    except Exception:  # noqa: BLE001
        return {"gpus": [], "driver": None}
