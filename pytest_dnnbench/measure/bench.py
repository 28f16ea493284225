"""Measure one (model, batch size): latency, steady-state memory (no pytest here).

The protocol of docs/measurements.md: the model in ``eval()`` under
``torch.inference_mode()``, parameters and input on the device, the input
drawn once from a seeded normal distribution and moved to the device before
anything is timed, warm-up until stable, adaptive sampling, memory read over
the timed calls only (after warm-up).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from .memory import CpuMemoryPass, no_module_hooks, pin_malloc_thresholds
from .timing import Clock, SamplingPolicy, TimingResult, sample_latency

if TYPE_CHECKING:
    import torch

    from ..jsontypes import JsonObject
    from .backends import Backend

_T = TypeVar("_T")

PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class BenchSettings:
    """Everything that changes how a model runs; recorded with every result."""

    device: str = "cpu"
    precision: str = "fp32"
    channels_last: bool = False
    threads: int | None = None
    cudnn_benchmark: bool = True
    #: Let fp32 convolutions and matrix products run in TF32 on Ampere and newer. Off by default:
    #: torch's own default (cuDNN TF32 on) would make a record labelled fp32 measure TF32.
    tf32: bool = False
    seed: int = 0
    mode: str = "eager"
    policy: SamplingPolicy = field(default_factory=SamplingPolicy)
    #: Time the reference workload after each timed call on the CPU (:mod:`.reference`): the machine's speed.
    reference: bool = True

    def with_device(self, device: str) -> BenchSettings:
        return replace(self, device=device)


@dataclass(frozen=True)
class Measurement:
    timing: TimingResult
    memory: dict[str, int | None]
    memory_method: str
    batch_size: int
    input_size: tuple[int, int, int]
    #: Clocks, power and throttle reasons sampled while the timed calls ran (None on the CPU):
    #: snapshots at the start and end of a run see an idle GPU and never show throttling.
    gpu_state: JsonObject | None = None
    #: The machine's load over the timed calls (:func:`.load.load_between`), with its ``busy`` flag.
    load: JsonObject | None = None
    #: Energy over the timed calls, per image (:mod:`.energy`; null figures with the reason where not measured).
    energy: JsonObject | None = None

    @property
    def per_image_ms(self) -> float:
        return self.timing.stats.median / self.batch_size

    @property
    def fps(self) -> float | None:
        median = self.timing.stats.median
        return 1000.0 * self.batch_size / median if median > 0 else None


def dtype_of(precision: str) -> torch.dtype:
    import torch

    dtype: torch.dtype = getattr(torch, PRECISIONS[precision])  # torch.float32, torch.float16, torch.bfloat16
    return dtype


def apply_process_settings(settings: BenchSettings) -> Callable[[], None]:
    """Process-wide switches: threads, cuDNN autotuning, TF32, denormal flushing on CPU.

    Returns a function that restores the previous values (the plugin calls it
    at the end of the session, so that an in-process run leaves no trace).
    """
    import torch

    threads, benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark
    restore_tf32 = set_tf32(settings.tf32)

    def restore() -> None:
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = benchmark
        torch.set_flush_denormal(False)
        restore_tf32()

    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    else:
        torch.set_num_threads(default_threads(torch.get_num_threads()))
    torch.backends.cudnn.benchmark = settings.cudnn_benchmark
    if settings.device == "cpu":
        # Random weights can produce denormals, which make CPU timings meaningless.
        torch.set_flush_denormal(True)
    # Where large tensors come from must not depend on earlier tests (see pin_malloc_thresholds).
    pin_malloc_thresholds()
    return restore


def default_threads(torch_default: int) -> int:
    """torch's own thread count, never more than the CPUs this process may run on (affinity, cgroup quota):
    more threads than CPUs turn every scheduling hiccup into a stall."""
    from .load import available_cpus

    return max(1, min(int(torch_default), available_cpus()))


# -- TF32 -----------------------------------------------------------------------------------------
#
# torch has two ways to say whether fp32 work may run in TF32: the legacy flags
# (``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32``,
# ``torch.set_float32_matmul_precision``) and, since 2.9, ``fp32_precision`` attributes per
# backend and operation (``torch.backends.cuda.matmul.fp32_precision``,
# ``torch.backends.cudnn.conv.fp32_precision``, ``torch.backends.cudnn.rnn.fp32_precision``:
# "ieee", "tf32" or "none" = inherit from ``torch.backends.cudnn.fp32_precision`` and then
# ``torch.backends.fp32_precision``). The new values are what the kernels use; their getters
# return the inherited value. Once anything set the new attributes so that they disagree with
# the legacy flags, *reading* a legacy flag raises ("... you have used a mix of the legacy and
# new APIs ..."), and so does ``torch.get_float32_matmul_precision()``.

TF32_API_LEGACY = "legacy"
TF32_API_NEW = "fp32_precision"

#: (name in the record, path of the object under ``torch.backends``) of the new attributes.
_NEW_TF32_SITES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("matmul", ("cuda", "matmul")),
    ("conv", ("cudnn", "conv")),
    ("rnn", ("cudnn", "rnn")),
)


#: Environment variables that override torch's flags below torch: ``TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1``
#: (set in NVIDIA's PyTorch containers) makes cuBLAS use TF32 whatever the flags say;
#: ``NVIDIA_TF32_OVERRIDE=0`` makes cuBLAS and cuDNN never use it.
TF32_ENV_OVERRIDES = ("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "NVIDIA_TF32_OVERRIDE")


def _safe(fn: Callable[[], _T]) -> _T | None:
    """``fn()``, or None when it raises (a mixed TF32 state makes plain reads raise).

    Warnings are silenced too: under ``-W error`` a deprecation warning of a legacy
    flag would otherwise raise and leave the flags half set.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    except Exception:  # noqa: BLE001 - RuntimeError from torch's consistency checks, AttributeError
        return None


# torch is passed as a module (tests pass a stand-in): the attributes read here exist in some torch
# versions only, so they are looked up on a plain module type.


def _site(torch: ModuleType, path: tuple[str, ...]) -> Any:
    """``torch.backends.<path>``: a flags object whose attributes depend on the torch version."""
    obj = torch.backends
    for name in path:
        obj = getattr(obj, name)
    return obj


def _get_precision(torch: ModuleType, path: tuple[str, ...]) -> str | None:
    """The ``fp32_precision`` of a site (inherited value), or None where it cannot be read."""
    value = _safe(lambda: _site(torch, path).fp32_precision)
    return value if isinstance(value, str) else None


def _set_attr(get_obj: Callable[[], object], attr: str, value: object) -> None:
    """``setattr(get_obj(), attr, value)``, silently skipped where it raises (frozen flags, no such site)."""
    _safe(lambda: setattr(get_obj(), attr, value))


def _set_precision(torch: ModuleType, path: tuple[str, ...], value: str) -> None:
    _set_attr(lambda: _site(torch, path), "fp32_precision", value)


def tf32_api(torch: ModuleType) -> str | None:
    """Which TF32 API this torch has: ``"fp32_precision"``, ``"legacy"`` or None."""
    if all(_get_precision(torch, path) is not None for _, path in _NEW_TF32_SITES[:2]):
        return TF32_API_NEW
    if _safe(lambda: hasattr(torch.backends.cuda.matmul, "allow_tf32") and hasattr(torch.backends.cudnn, "allow_tf32")):
        return TF32_API_LEGACY
    return None


def _torch(torch_module: ModuleType | None) -> ModuleType:
    if torch_module is not None:
        return torch_module
    import torch

    return torch


def read_tf32_flags(torch_module: ModuleType | None = None, env: Mapping[str, str] | None = None) -> JsonObject:
    """Whether fp32 matrix products (cuBLAS) and convolutions (cuDNN) may run in TF32. Never raises.

    ``{"tf32_matmul": bool|None, "tf32_cudnn": bool|None, "api": "legacy"|"fp32_precision"|None,
    "env_overrides": {name: value}}``, read through the API the installed torch uses (a flag
    that cannot be read is None), then corrected for the environment variables that override
    torch's flags (:data:`TF32_ENV_OVERRIDES`, read from ``env``, default ``os.environ``).
    """
    env = os.environ if env is None else env
    overrides = {name: env[name] for name in TF32_ENV_OVERRIDES if name in env}
    out: JsonObject = {"tf32_matmul": None, "tf32_cudnn": None, "api": None, "env_overrides": overrides}
    try:
        torch = _torch(torch_module)
    except Exception:  # noqa: BLE001 - no torch: nothing to say
        return out
    api = tf32_api(torch)
    out["api"] = api
    if api == TF32_API_NEW:
        matmul = _get_precision(torch, ("cuda", "matmul"))
        conv = _get_precision(torch, ("cudnn", "conv"))
        out["tf32_matmul"] = None if matmul is None else matmul == "tf32"
        out["tf32_cudnn"] = None if conv is None else conv == "tf32"
    elif api == TF32_API_LEGACY:
        matmul_flag = _safe(lambda: bool(torch.backends.cuda.matmul.allow_tf32))
        cudnn_flag = _safe(lambda: bool(torch.backends.cudnn.allow_tf32))
        out["tf32_matmul"], out["tf32_cudnn"] = matmul_flag, cudnn_flag
    if overrides.get("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "").strip() == "1":
        out["tf32_matmul"] = True
    if overrides.get("NVIDIA_TF32_OVERRIDE", "").strip() == "0":
        out["tf32_matmul"] = out["tf32_cudnn"] = False
    return out


def read_float32_matmul_precision(torch_module: ModuleType | None = None) -> str | None:
    """``torch.get_float32_matmul_precision()``, or None where a mixed TF32 state makes it raise."""
    value = _safe(lambda: _torch(torch_module).get_float32_matmul_precision())
    return value if isinstance(value, str) else None


def set_tf32(enabled: bool, torch_module: ModuleType | None = None) -> Callable[[], None]:
    """Allow (or forbid) TF32 for cuDNN and cuBLAS; returns a function that restores the previous state.

    The legacy flags are set first, so that code still reading them sees a
    consistent state (their setters keep torch's two records in step); then,
    where torch has them, the new per-operation attributes are set to an
    explicit "tf32" or "ieee", so that no ``fp32_precision`` set on a parent
    ("all") can override the choice. Nothing here raises: a site that cannot
    be set is left alone.
    """
    try:
        torch = _torch(torch_module)
    except Exception:  # noqa: BLE001
        return lambda: None
    api = tf32_api(torch)
    if api is None:
        return lambda: None
    prev_cudnn: bool | None = _safe(lambda: bool(torch.backends.cudnn.allow_tf32))
    prev_matmul_precision = read_float32_matmul_precision(torch)
    # (site, previous fp32_precision); set_float32_matmul_precision (used to restore) also sets
    # oneDNN's matmul precision, so that site is put back too.
    prev_new: list[tuple[tuple[str, ...], str]] = []
    if api == TF32_API_NEW:
        for path in [p for _, p in _NEW_TF32_SITES] + [("mkldnn", "matmul")]:
            value = _get_precision(torch, path)
            if value is not None:
                prev_new.append((path, value))

    _set_attr(lambda: torch.backends.cudnn, "allow_tf32", bool(enabled))
    _set_attr(lambda: torch.backends.cuda.matmul, "allow_tf32", bool(enabled))
    if api == TF32_API_NEW:
        for _, path in _NEW_TF32_SITES:
            _set_precision(torch, path, "tf32" if enabled else "ieee")

    def restore() -> None:
        if prev_cudnn is not None:
            _set_attr(lambda: torch.backends.cudnn, "allow_tf32", prev_cudnn)
        if prev_matmul_precision is not None:
            _safe(lambda: torch.set_float32_matmul_precision(prev_matmul_precision))
        for path, value in prev_new:
            _set_precision(torch, path, value)

    return restore


def prepare_model(model: torch.nn.Module, settings: BenchSettings) -> torch.nn.Module:
    """Put ``model`` in eval mode on the device, in the configured precision and memory format."""
    import torch

    model = model.eval()
    dtype = dtype_of(settings.precision)
    if settings.channels_last:
        # Module.to takes memory_format with device and dtype, but torch's overloads of it do not say so.
        fmt = torch.channels_last
        prepared: torch.nn.Module = model.to(device=settings.device, dtype=dtype, memory_format=fmt)  # type: ignore[call-overload]
        return prepared
    return model.to(device=settings.device, dtype=dtype)


def make_input(batch_size: int, input_size: tuple[int, int, int], settings: BenchSettings) -> torch.Tensor:
    """A seeded standard-normal batch, already on the device (never zeros, never timed)."""
    import torch

    gen = torch.Generator().manual_seed(settings.seed)
    x = torch.randn((batch_size, *input_size), generator=gen, dtype=torch.float32)
    x = x.to(device=settings.device, dtype=dtype_of(settings.precision))
    if settings.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def measure(
    model: torch.nn.Module,
    batch_size: int,
    input_size: tuple[int, int, int],
    settings: BenchSettings,
    backend: Backend,
    clock: Clock = time.monotonic,
    start: float | None = None,
    forward: Callable[[torch.Tensor], object] | None = None,
) -> Measurement:
    """Time ``model`` on a batch and read the steady-state memory around the timed calls.

    ``model`` must already be prepared (:func:`prepare_model`). ``forward``
    replaces ``model(x)`` for models that take something else than one tensor.
    """
    import torch

    from .load import available_cpus, load_between, take_snapshot

    x = make_input(batch_size, input_size, settings)
    call = (lambda: forward(x)) if forward is not None else (lambda: model(x))
    timer = backend.timer(call)
    probe = backend.memory_probe(call)
    if settings.mode != "eager" and isinstance(probe, CpuMemoryPass):
        probe.trim_after_modules = no_module_hooks  # the forward is a compiled or exported graph, not modules
    make_meter = getattr(backend, "energy_meter", None)
    meter = make_meter() if make_meter is not None else None
    marks = []

    def before_sampling() -> None:
        probe.start()
        marks.append(take_snapshot())  # the machine's load is read over the timed calls
        if meter is not None:
            meter.start()  # and the energy counters, last: nearest the first timed call

    with torch.inference_mode():
        backend.synchronize()
        # Memory is read at steady state: on CUDA the allocator's peaks are reset once
        # warm-up is over (workspaces the cuDNN autotuner tried are not the model's
        # footprint); on the CPU one dedicated call follows the timed ones.
        reference = None
        if settings.reference and settings.device == "cpu":
            from .reference import WORKLOAD, reference_timer

            reference = reference_timer()
        timing = sample_latency(
            timer,
            settings.policy,
            clock,
            start=start,
            before_sampling=before_sampling,
            reference=reference,
            reference_workload=WORKLOAD if reference is not None else None,
        )
        backend.synchronize()
        energy = meter.stop(len(timing.samples_ms) * batch_size) if meter is not None and timing.samples_ms else None
        after = take_snapshot()
        memory, method = probe.stop()
    load = load_between(marks[0], after, available_cpus()).to_json() if marks else None
    # The device's clocks, power and throttle reasons during the timed calls (None on the CPU).
    timed_state = getattr(backend, "timed_state", None)
    gpu_state = timed_state() if timed_state is not None else None
    return Measurement(
        timing=timing,
        memory=memory,
        memory_method=method,
        batch_size=batch_size,
        input_size=(int(input_size[0]), int(input_size[1]), int(input_size[2])),
        gpu_state=gpu_state,
        load=load,
        energy=energy,
    )
