"""The machine's speed, measured beside the model: a fixed reference workload timed after every timed call.

Why (docs/baselines.md, "The machine's speed"): on a shared CPU the speed of a core changes by up to 1.7x within
seconds (co-tenants, steal time, the host's clocks), so one process's median differs from another's by as much
with nothing changed, and a gate that compares processes cries wolf or misses. What the model's call and a
similar call just after it share is the state of the machine at that moment: the ratio of the two is steady.
Measured on this project's 2-core VM (``benchmarks/reference_drift.py``): twelve processes of a 94 k-parameter
CNN, medians 2.78-4.66 ms (1.68x), while the median of each process's per-call ratio to this workload stayed
within 1.08x.

The workload: one 3x3 convolution of 32 channels on a 32x32 input (batch 1, fp32, seeded), about 0.22 ms on
one core of that VM, run once untimed after each timed call and then timed four times; the fastest of the four is
kept (v3). What the model's call left behind (cold caches, a core's clock after a wait) slows the first runs
after it, and more so the more the call did after its last convolution, so that a slower model would make the
workload slower too and part of a real slowdown would be divided out. Timed once right after the call (v1), the
workload ran 1.2-1.8x slower after a model call followed by extra work (a Python loop, other kernels, a sleep);
timed second of two (v2), 1.01-1.10x after the small CNN's call and still 1.06-1.17x after resnet18's call plus
25 % of Python loop (+25 % then showed as +16 %). The best of four runs after the untimed one is not slowed by
any of them (1.00-1.02x, a sleep included) and keeps every injected slowdown whole: ``benchmarks/
reference_coupling.py``, docs/baselines.md. Its median (``latency_ms.reference.median``) says how fast the
machine was; the median of the per-call ratios (``relative``) is the model's latency in units of it. The gate
compares those where the baseline's rounds have them (:mod:`pytest_dnnbench.gate`). Timed on the CPU only (a
GPU's speed does not drift so, and the workload would share the device's queue). Change :data:`WORKLOAD` when
the workload changes: rounds of another workload are not compared by it.

What it cannot divide out: a mode of the process's own code. The small CNN at batch 8 ran 15.5-15.8 ms in 3 of
12 fresh processes and 20.7-22.5 ms in the other 9 while the workload stayed within 1.05x (docs/baselines.md,
"What the spread between processes is made of"): that spread is the process's, not the machine's, and only
more processes resolve it (the gate's rounds and confirmations).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .timing import Timer

__all__ = ["TIMED_RUNS", "WORKLOAD", "reference_timer"]

#: What the reference workload is; a round or record of another workload is not compared by it.
WORKLOAD = "conv2d 3x3, 32 to 32 channels, 1x32x32, fp32, best of four after one, v3"

#: Timed runs after the untimed one; the fastest is kept.
TIMED_RUNS = 4


def reference_timer(clock: Callable[[], int] = time.perf_counter_ns) -> Timer:
    """A timer of the reference workload on the CPU (ms per call), in the caller's torch threads (the model's:
    the workload runs in them).

    The tensors are made once (seeded), outside the timed call; the call runs under ``torch.inference_mode``,
    once untimed (it warms what the model's call left cold) and then :data:`TIMED_RUNS` times, timed one by one;
    the fastest is its time."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(1234)
    x = torch.randn((1, 32, 32, 32), generator=gen)
    w = torch.randn((32, 32, 3, 3), generator=gen) * 0.06

    def once() -> float:
        best = 1 << 62
        with torch.inference_mode():
            F.conv2d(x, w, padding=1)
            for _ in range(TIMED_RUNS):
                t0 = clock()
                F.conv2d(x, w, padding=1)
                t1 = clock()
                best = min(best, t1 - t0)
        return best / 1e6

    for _ in range(3):  # its own warm-up (oneDNN picks its kernel on the first call)
        once()
    return once
