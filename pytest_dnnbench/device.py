"""Resolve the requested device where the tests run, and check the precision it can run.

Pure logic over small probe functions (``cuda_available``, ``device_count``,
``cpu_supports``, ``cpu_flags``) that default to torch and ``/proc/cpuinfo`` and that tests
replace. Errors are
:class:`DeviceError` (a ``ValueError``) with the fix in the message; the
plugin turns them into ``pytest.UsageError``.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path


class DeviceError(ValueError):
    pass


@dataclass(frozen=True)
class TorchProbe:
    """What the device checks ask torch; every field can be replaced in tests."""

    cuda_available: Callable[[], bool]
    device_count: Callable[[], int]
    torch_version: Callable[[], str]
    cpu_supports: Callable[[str], bool]
    #: The CPU's feature flags (``/proc/cpuinfo``), None where they cannot be read (then bf16 is only tried).
    cpu_flags: Callable[[], frozenset[str] | None] = lambda: None

    @classmethod
    def default(cls) -> TorchProbe:
        import torch

        return cls(
            cuda_available=torch.cuda.is_available,
            device_count=torch.cuda.device_count,
            torch_version=lambda: f"{torch.__version__} (CUDA build: {torch.version.cuda or 'none'})",
            cpu_supports=_cpu_supports,
            cpu_flags=lambda: read_cpu_flags(),
        )


#: The CPU flags that give native bf16 arithmetic, by architecture (``platform.machine()``, lower case):
#: x86's AVX-512 BF16 (Cooper Lake, Zen 4 and later) or AMX (Sapphire Rapids and later); Arm's BF16 (v8.6).
BF16_FLAGS = {"x86": ("avx512_bf16", "amx_bf16"), "arm": ("bf16",)}


def read_cpu_flags(path: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The feature flags of the first CPU in ``path`` (x86 ``flags``, Arm ``Features``), None where unknown."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return parse_cpu_flags(text.splitlines())


def parse_cpu_flags(lines: Iterable[str]) -> frozenset[str] | None:
    for line in lines:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return None


def missing_bf16(flags: frozenset[str] | None, machine: str | None = None) -> tuple[str, ...] | None:
    """The flags of which this CPU lacks every one, so that its bf16 kernels are emulated (dozens of times
    slower than fp32); None where it has one, or where that cannot be told (unknown flags or architecture)."""
    arch = (machine if machine is not None else platform.machine()).lower()
    kind = "x86" if arch in ("x86_64", "amd64", "i386", "i686") else "arm" if arch in ("aarch64", "arm64") else None
    if flags is None or kind is None:
        return None
    needed = BF16_FLAGS[kind]
    return None if flags & set(needed) else needed


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
    if requested == "cpu":
        return "cpu"  # torch is not imported: a CPU run's configuration needs none of it
    probe = probe or TorchProbe.default()
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
        missing = missing_bf16(probe.cpu_flags()) if precision == "bf16" else None
        if missing is not None:
            raise DeviceError(
                f"--dnn-precision=bf16 on the CPU: this CPU has no native bf16 (its flags lack "
                f"{' and '.join(missing)}), so torch emulates bf16 kernels, dozens of times slower than fp32, "
                "and the figures would measure the emulation. Use --dnn-precision=fp32, a CPU with "
                f"{' or '.join(missing)}, or --dnn-device=cuda"
            )
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
