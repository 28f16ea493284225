"""Measure one (model, batch size): latency, steady-state memory (no pytest here).

The protocol of DESIGN §3: the model in ``eval()`` under
``torch.inference_mode()``, parameters and input on the device, the input
drawn once from a seeded normal distribution and moved to the device before
anything is timed, warm-up until stable, adaptive sampling, memory read over
the timed calls only (after warm-up).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

from .memory import pin_malloc_thresholds
from .timing import Clock, SamplingPolicy, TimingResult, sample_latency

PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class BenchSettings:
    """Everything that changes how a model runs; recorded with every result."""

    device: str = "cpu"
    precision: str = "fp32"
    channels_last: bool = False
    threads: Optional[int] = None
    cudnn_benchmark: bool = True
    seed: int = 0
    mode: str = "eager"
    policy: SamplingPolicy = field(default_factory=SamplingPolicy)

    def with_device(self, device: str) -> "BenchSettings":
        return replace(self, device=device)


@dataclass(frozen=True)
class Measurement:
    timing: TimingResult
    memory: dict
    memory_method: str
    batch_size: int
    input_size: tuple[int, int, int]

    @property
    def per_image_ms(self) -> float:
        return self.timing.stats.median / self.batch_size

    @property
    def fps(self) -> Optional[float]:
        median = self.timing.stats.median
        return 1000.0 * self.batch_size / median if median > 0 else None


def dtype_of(precision: str) -> Any:
    import torch

    return getattr(torch, PRECISIONS[precision])


def apply_process_settings(settings: BenchSettings) -> Callable[[], None]:
    """Process-wide switches: threads, cuDNN autotuning, denormal flushing on CPU.

    Returns a function that restores the previous values (the plugin calls it
    at the end of the session, so that an in-process run leaves no trace).
    """
    import torch

    threads, benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark

    def restore() -> None:
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = benchmark
        torch.set_flush_denormal(False)

    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    torch.backends.cudnn.benchmark = settings.cudnn_benchmark
    if settings.device == "cpu":
        # Random weights can produce denormals, which make CPU timings meaningless.
        torch.set_flush_denormal(True)
    # Where large tensors come from must not depend on earlier tests (see pin_malloc_thresholds).
    pin_malloc_thresholds()
    return restore


def prepare_model(model: Any, settings: BenchSettings) -> Any:
    """Put ``model`` in eval mode on the device, in the configured precision and memory format."""
    import torch

    model = model.eval()
    kwargs: dict[str, Any] = {"device": settings.device, "dtype": dtype_of(settings.precision)}
    if settings.channels_last:
        kwargs["memory_format"] = torch.channels_last
    return model.to(**kwargs)


def make_input(batch_size: int, input_size: tuple[int, int, int], settings: BenchSettings) -> Any:
    """A seeded standard-normal batch, already on the device (never zeros, never timed)."""
    import torch

    gen = torch.Generator().manual_seed(settings.seed)
    x = torch.randn((batch_size, *input_size), generator=gen, dtype=torch.float32)
    x = x.to(device=settings.device, dtype=dtype_of(settings.precision))
    if settings.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def measure(
    model: Any,
    batch_size: int,
    input_size: tuple[int, int, int],
    settings: BenchSettings,
    backend: Any,
    clock: Clock = time.monotonic,
    start: Optional[float] = None,
    forward: Optional[Callable[[Any], object]] = None,
) -> Measurement:
    """Time ``model`` on a batch and read the steady-state memory around the timed calls.

    ``model`` must already be prepared (:func:`prepare_model`). ``forward``
    replaces ``model(x)`` for models that take something else than one tensor.
    """
    import torch

    x = make_input(batch_size, input_size, settings)
    call = (lambda: forward(x)) if forward is not None else (lambda: model(x))
    timer = backend.timer(call)
    probe = backend.memory_probe(call)
    with torch.inference_mode():
        backend.synchronize()
        # Memory is read at steady state: on CUDA the allocator's peaks are reset once
        # warm-up is over (workspaces the cuDNN autotuner tried are not the model's
        # footprint); on the CPU one dedicated call follows the timed ones.
        timing = sample_latency(timer, settings.policy, clock, start=start, before_sampling=probe.start)
        memory, method = probe.stop()
    return Measurement(
        timing=timing, memory=memory, memory_method=method, batch_size=batch_size,
        input_size=(int(input_size[0]), int(input_size[1]), int(input_size[2])),
    )
