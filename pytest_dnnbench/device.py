"""Resolve the requested device where the tests run, and check the precision it can run.

Pure logic over small probe functions (``cuda_available``, ``device_count``,
``cpu_supports``) that default to torch and that tests replace. Errors are
:class:`DeviceError` (a ``ValueError``) with the fix in the message; the
plugin turns them into ``pytest.UsageError``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class DeviceError(ValueError):
    pass


@dataclass(frozen=True)
class TorchProbe:
    """What the device checks ask torch; every field can be replaced in tests."""

    cuda_available: Callable[[], bool]
    device_count: Callable[[], int]
    torch_version: Callable[[], str]
    cpu_supports: Callable[[str], bool]

    @classmethod
    def default(cls) -> TorchProbe:
        import torch

        return cls(
            cuda_available=torch.cuda.is_available,
            device_count=torch.cuda.device_count,
            torch_version=lambda: f"{torch.__version__} (CUDA build: {torch.version.cuda or 'none'})",
            cpu_supports=_cpu_supports,
        )


def _cpu_supports(precision: str) -> bool:
    """Whether a small convolution runs on the CPU in this precision."""
    import torch

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    try:
        conv = torch.nn.Conv2d(3, 4, 3).to(dtype)
        with torch.inference_mode():
            conv(torch.ones(1, 3, 8, 8, dtype=dtype))
        return True
    except (RuntimeError, NotImplementedError):
        return False


def resolve_device(requested: str, probe: TorchProbe | None = None, worker_index: int | None = None) -> str:
    """``auto``/``cpu``/``cuda``/``cuda:N`` -> ``cpu`` or ``cuda:N`` that exists here.

    ``worker_index`` (a pytest-xdist worker's number) pins plain ``cuda`` and
    ``auto`` to GPU ``worker_index % device_count`` (round robin).
    """
    probe = probe or TorchProbe.default()
    if requested == "cpu":
        return "cpu"
    available = probe.cuda_available()
    if requested == "auto" and not available:
        return "cpu"
    if not available:
        raise DeviceError(
            f"--dnn-device={requested}: no CUDA device is available here (torch {probe.torch_version()}, "
            "torch.cuda.is_available() is False). Use --dnn-device=cpu (or auto), or run where a GPU is visible"
        )
    count = probe.device_count()
    if requested in ("auto", "cuda"):
        index = 0 if worker_index is None else worker_index % max(count, 1)
        return f"cuda:{index}"
    index = int(requested.split(":", 1)[1])
    if index >= count:
        raise DeviceError(
            f"--dnn-device={requested}: this machine has {count} CUDA device(s), numbered 0 to {count - 1}. "
            "Pick one of those indices (CUDA_VISIBLE_DEVICES may hide some)"
        )
    return requested


def check_precision(precision: str, device: str, probe: TorchProbe | None = None) -> None:
    """Refuse precisions the device cannot run, before any model is built."""
    if precision == "fp32":
        return
    if device == "cpu":
        if precision == "fp16":
            raise DeviceError(
                "--dnn-precision=fp16 on the CPU: half precision is a GPU format and CPU kernels for it are "
                "emulated. Use --dnn-precision=fp32 (or bf16 where the CPU supports it), or --dnn-device=cuda"
            )
        probe = probe or TorchProbe.default()
        if not probe.cpu_supports(precision):
            raise DeviceError(
                f"--dnn-precision={precision}: this CPU/torch build cannot run {precision} convolutions. "
                "Use --dnn-precision=fp32 or a CUDA device"
            )


def gpu_sharing_problem(n_workers: int, requested_device: str, gpu_count: int) -> str | None:
    """Why running ``n_workers`` pytest-xdist workers on ``requested_device`` would share a GPU, or None.

    Two processes on one GPU slow each other's calls and change each other's
    clocks and NVML figures, so neither measures what a lone process would.
    Workers pin ``cuda``/``auto`` round robin over the ``gpu_count`` visible
    GPUs (:func:`resolve_device`): more workers than GPUs share; a named GPU
    (``cuda:N``) is shared by every worker. CPU runs and a single worker never
    share a GPU; ``auto`` without a GPU runs on the CPU. The plugin turns the
    message into a usage error unless ``--dnn-allow-shared-gpu`` is given.
    """
    if n_workers <= 1:
        return None
    requested = requested_device.strip().lower()
    fix = "--dnn-allow-shared-gpu to accept that their figures interfere"
    if requested.startswith("cuda:"):
        return (
            f"--dnn-device={requested_device} with {n_workers} pytest-xdist workers: every worker would run on "
            f"the same GPU, and their timings, clocks and memory figures would disturb each other. Use "
            f"--dnn-device=cuda (one GPU per worker, round robin), -n 1 (or -p no:xdist), or {fix}"
        )
    if requested in ("cuda", "auto") and gpu_count > 0 and n_workers > gpu_count:
        return (
            f"--dnn-device={requested_device} with {n_workers} pytest-xdist workers but {gpu_count} visible "
            f"GPU(s): {n_workers - gpu_count} worker(s) would share a GPU with another, and their timings, "
            f"clocks and memory figures would disturb each other. Use -n {gpu_count} (at most one worker per "
            f"GPU), or {fix}"
        )
    return None
