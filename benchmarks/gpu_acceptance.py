"""The CUDA path, proven on a real GPU in two calls: the acceptance script (docs/gpu-acceptance.md).

Each call runs its checks of the CUDA path under a global time limit and ends with a table that
says PASS or FAIL per step, even when a step fails or the time runs out:

    python benchmarks/gpu_acceptance.py --call A --out DIR_A                  # GPU: at most 240 s
    python benchmarks/gpu_acceptance.py --call B --after DIR_A --out DIR_B    # GPU: at most 150 s
    python benchmarks/gpu_acceptance.py --cpu --call A --out DIR_A            # the same steps on the CPU
    python benchmarks/gpu_acceptance.py --call all --out DIR                  # everything in one process

Call A runs the parts never run on a GPU first, then a smaller main run and the loop; call B the
checks that compare processes, and whatever call A left "not run" (read from --after). Steps, in
the order they run (env-start first and env-end last in every call):

  A  cudagraph  --dnn-modes=cudagraph on two models at batch 1, each output checked against eager
  A  lowp       fp16 + channels-last (bf16 + channels-last on CPU)
  A  oom        a forced out of memory is a skip: a wide first convolution at a batch sized from
                the card's memory (input <= 2.5 GB, first activation larger than the card)
  A  xdist      pytest-xdist with one GPU: -n 2 alone is refused; with --dnn-allow-shared-gpu both
                workers are pinned to cuda:0 (on CPU: --dnn-allow-parallel-cpu)
  A  isolation  --dnn-isolate=process on one model
  A  compile    --dnn-modes=compile --dnn-compile-mode=reduce-overhead at batch 1 and 8
  A  main       pytest through the plugin: 6 models x batch 1, 64, cuDNN autotuning on, results
                file and --dnn-report
  A  records    the main run's records: memory breakdown, gpu_state sampled during the timed
                calls, energy per image where NVML has the counter, autotuning on, TF32 off
  A  loop       the plugin's measurement path against a minimal loop (two CUDA events and a
                synchronize; perf_counter on CPU), interleaved call by call on the same input in
                the same process; ratio of medians per (model, batch)
  B  rerun      the memory subset again, in a new pytest process: ratio of medians between runs
  B  memory     the record's memory ``total`` against a fresh process that holds only the model
                and its batch, read through NVML per process (peak RSS on CPU)
  B  order      resnet18 alone against resnet18 after vgg16 in one process (memory total)
  B  tf32       an fp32 convolution and a matrix product under the plugin's settings against fp64

A step starts only when its expected duration fits in the time left: the duration measured last
(--step-seconds, or step_seconds.json beside --after), else the plan's conservative default.
Otherwise, and when a step is stopped at its cap before anything failed, it is "not run (time
limit)", never a FAIL by truncation; call B runs what call A did not. Per-step seconds are
printed and written to step_seconds.json, for the next run's --step-seconds.

Everything lands in --out: acceptance.json (machine-readable), acceptance.txt (the tables),
step_seconds.json, the pytest results files, the report, and one log per subprocess. Exit
status: 0 when every step passed (or is "n/a"), 1 when a step failed, 2 when none failed but
some did not run (time limit).

Only the plugin's command line (and its documented model-registration hook), the results-file
schema and the public functions of ``pytest_dnnbench.measure.*`` and ``pytest_dnnbench.registry``
are used.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import gc
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MIB = 2**20
SCHEMA = "gpu-acceptance/2"
STEP_SECONDS_SCHEMA = "gpu-acceptance-step-seconds/1"
#: One record of a pytest-dnnbench results file (schema pytest-dnnbench/2), as JSON data.
Record = dict[str, Any]

PASS, FAIL, NA, NOT_RUN, INFO = "PASS", "FAIL", "n/a", "not run (time limit)", "info"
#: Statuses that count as success for the exit status (n/a: "not available here or in this version").
OK_STATUSES = (PASS, NA)

#: NVML clock-event ("throttle") reason bits, from nvml.h.
THROTTLE_BITS: dict[int, str] = {
    0x1: "GpuIdle",
    0x2: "ApplicationsClocksSetting",
    0x4: "SwPowerCap",
    0x8: "HwSlowdown",
    0x10: "SyncBoost",
    0x20: "SwThermalSlowdown",
    0x40: "HwThermalSlowdown",
    0x80: "HwPowerBrakeSlowdown",
    0x100: "DisplayClockSetting",
}
#: Reasons that mean the card was slowed down by heat or power (GpuIdle and the like do not).
BAD_THROTTLE = {"SwPowerCap", "HwSlowdown", "SwThermalSlowdown", "HwThermalSlowdown", "HwPowerBrakeSlowdown"}

# -- which steps each call runs -------------------------------------------------------------------

#: Every step between env-start and env-end, in the order they run (call B's included).
STEP_ORDER: tuple[str, ...] = (
    "cudagraph",
    "lowp",
    "oom",
    "xdist",
    "isolation",
    "compile",
    "main",
    "records",
    "loop",
    "rerun",
    "memory",
    "order",
    "tf32",
)
#: Call A: the parts never run on a GPU first, then a smaller main run and the loop. Call B: the
#: checks that compare processes, and whatever call A marked not run.
CALL_STEPS: dict[str, tuple[str, ...]] = {
    "A": ("cudagraph", "lowp", "oom", "xdist", "isolation", "compile", "main", "records", "loop"),
    "B": ("rerun", "memory", "order", "tf32"),
}
CALLS = ("A", "B", "all")


#: Steps call B runs before its own when call A left them: the comparisons with the main run need it.
NEEDED_FIRST = ("main", "records")


def call_steps(call: str, deferred: Sequence[str] = ()) -> list[str]:
    """The steps of ``call`` in the order they run: env-start, the call's own steps in :data:`STEP_ORDER`,
    env-end. Call B also runs what call A ``deferred``: the main run (and its record checks) first, which
    the rerun compares with, then its own steps, then the rest of call A's."""
    if call == "all":
        middle = list(STEP_ORDER)
    elif call == "A":
        middle = list(CALL_STEPS["A"])
    elif call == "B":
        left = [name for name in STEP_ORDER if name in set(deferred) - set(CALL_STEPS["B"])]
        first = [name for name in left if name in NEEDED_FIRST]
        middle = first + list(CALL_STEPS["B"]) + [name for name in left if name not in first]
    else:
        raise ValueError(f"call must be one of {', '.join(CALLS)}, not {call!r}")
    return ["env-start", *middle, "env-end"]


def start_decision(expected_s: float, left_s: float) -> str | None:
    """Why a step is not started (None: it starts). A step starts only when its expected duration (the
    one measured last, else the plan's conservative default) fits in the time left: one that could not
    finish is "not run (time limit)", never a failure by truncation."""
    if expected_s > left_s:
        return f"{max(left_s, 0.0):.0f} s left, expects {expected_s:.0f} s"
    return None


def step_budget(expected_s: float, cap_s: float, left_s: float) -> float:
    """How long a started step may run: its cap (a guard against hangs), never less than 1.5x its
    expected duration, never more than the time left."""
    return max(1.0, min(max(cap_s, 1.5 * expected_s), left_s))


# -- the out-of-memory batch ----------------------------------------------------------------------

#: The OOM step's model (registered through the plugin's hook in its own empty project): one 3x3
#: convolution from 3 to OOM_CHANNELS channels at 224x224, then pooling and a classifier. VGG-16's
#: first activation (64 x 224 x 224) is only 21x its input, so no batch of VGG-16 whose input is
#: <= 2.5 GB has a first activation larger than a 141 GB card (4152 images: 53 GB); this one's is
#: 171x its input.
OOM_CHANNELS = 512
OOM_INPUT_SIZE = (3, 224, 224)
OOM_MODEL = "oom_wide_stem"
FP32_BYTES = 4
#: Bytes per image of the input and of the first activation (fp32).
OOM_INPUT_BYTES = OOM_INPUT_SIZE[0] * OOM_INPUT_SIZE[1] * OOM_INPUT_SIZE[2] * FP32_BYTES
OOM_ACTIVATION_BYTES = OOM_CHANNELS * OOM_INPUT_SIZE[1] * OOM_INPUT_SIZE[2] * FP32_BYTES
#: VGG-16's first activation per image, for comparison (64 channels at 224 x 224).
VGG16_ACTIVATION_BYTES = 64 * 224 * 224 * FP32_BYTES
#: The largest input the OOM step may allocate (bytes).
OOM_INPUT_CAP = 2.5e9
#: The first activation must exceed the memory by this factor (what NVML counts as total can
#: differ from what the allocator can reach by a few percent).
OOM_MARGIN = 1.25


def oom_batch(
    limit_bytes: int,
    *,
    activation_per_image: int = OOM_ACTIVATION_BYTES,
    input_per_image: int = OOM_INPUT_BYTES,
    input_cap: float = OOM_INPUT_CAP,
    margin: float = OOM_MARGIN,
) -> int:
    """The smallest batch whose first activation alone exceeds ``margin`` x ``limit_bytes`` (the card's
    total memory; on the CPU the host-memory limit), so that the allocation fails before any kernel
    runs. ValueError when that batch's input would exceed ``input_cap``."""
    if limit_bytes <= 0:
        raise ValueError(f"memory limit must be positive, got {limit_bytes}")
    batch = max(1, math.ceil(margin * limit_bytes / activation_per_image))
    if batch * input_per_image > input_cap:
        raise ValueError(
            f"batch {batch}: input {batch * input_per_image / 1e9:.2f} GB exceeds {input_cap / 1e9:.2f} GB "
            f"(first activation only {activation_per_image / input_per_image:.1f}x the input)"
        )
    return batch


OOM_MODELS_PY = f'''"""The acceptance script's out-of-memory model (benchmarks/gpu_acceptance.py)."""

import torch.nn as nn


def wide_stem() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d({OOM_INPUT_SIZE[0]}, {OOM_CHANNELS}, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear({OOM_CHANNELS}, 1000),
    )
'''
OOM_CONFTEST = f'''def pytest_dnnbench_register_models(registry, config):
    registry.register("{OOM_MODEL}", "oom_models:wide_stem", input_size={OOM_INPUT_SIZE!r})
'''

# -- the plan -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """An accepted interval for a ratio, inclusive."""

    lo: float
    hi: float

    def holds(self, x: float | None) -> bool:
        return x is not None and self.lo <= x <= self.hi

    def text(self) -> str:
        return f"{self.lo:.3g}-{self.hi:.3g}"


@dataclass(frozen=True)
class Plan:
    """What each step runs, and its pass criteria; :func:`gpu_plan` and :func:`cpu_plan` fill it."""

    kind: str  # "gpu" | "cpu"
    call: str  # "A" | "B" | "all"
    pytest_device: str  # --dnn-device
    torch_device: str  # the device the in-process loop and the children use
    models: tuple[str, ...]
    batches: tuple[int, ...]
    max_time: float  # --dnn-max-time, seconds
    main_args: tuple[str, ...]  # more options of the main run (cuDNN autotuning on)
    loop_max_time: float  # the loop step's budget per (model, batch), plugin + loop calls
    loop_max_samples: int  # and its most timed calls (the plugin's own default: 5000)
    loop_ratio: Range  # plugin/loop, for rows with median >= loop_min_ms
    loop_min_ms: float
    memory_models: tuple[str, ...]
    memory_batches: tuple[int, ...]
    memory_ratio: Range  # record total / fresh process
    memory_parallel: int  # children started at once (their measuring part is serialised)
    rerun_ratio: Range  # second run / first run, at rerun_batch
    rerun_batch: int
    lowp_precision: str
    lowp_models: tuple[str, ...]
    lowp_batches: tuple[int, ...]
    graph_models: tuple[str, ...]
    graph_mode: str
    oom_limit_bytes: int  # the memory the OOM batch is sized from when the card's is unknown (CPU: the limit)
    oom_args: tuple[str, ...]
    xdist_models: tuple[str, ...]
    xdist_batches: tuple[int, ...]
    xdist_args: tuple[str, ...]
    xdist_allow: str  # the option that lets several workers share the device
    isolation_models: tuple[str, ...]
    isolation_batches: tuple[int, ...]
    compile_models: tuple[str, ...]
    compile_batches: tuple[int, ...]
    compile_mode: str | None  # --dnn-compile-mode; None: the CPU rehearses the step with --dnn-modes=eager
    order_first: str  # the model that runs first in one process ...
    order_model: str  # ... before this one, which also runs alone
    order_batches: tuple[int, ...]
    order_ratio: Range  # the model's memory total after the first one / alone
    tf32_limit: float  # relative error (norm) below which fp32 work ran in IEEE fp32, not TF32
    memory_timed_cap: int  # the fresh process's timed calls: the record's, at most this
    deadline_s: float
    expected: dict[str, float] = field(default_factory=dict)  # per-step expected seconds (defaults)
    caps: dict[str, float] = field(default_factory=dict)  # per-step time caps, seconds
    env: tuple[tuple[str, str], ...] = ()  # set in every subprocess


#: The main run's models on a GPU: tiny, launch-bound and large, the memory subset.
GPU_MODELS = ("squeezenet1_1", "mobilenet_v2", "resnet18", "resnet50", "vgg16", "densenet121")
#: Each call's default deadline (s) on a GPU and on the CPU (--cpu).
GPU_DEADLINES = {"A": 240.0, "B": 150.0, "all": 390.0}
CPU_DEADLINES = {"A": 150.0, "B": 90.0, "all": 240.0}
#: The --cpu mode's default deadline for all steps in one process (s).
CPU_DEADLINE_S = CPU_DEADLINES["all"]
#: The largest card lent here (an H200: 143,771 MiB): the OOM batch's size when NVML gives none.
LARGEST_CARD_BYTES = 143_771 * MIB

#: What each step is expected to take on a GPU (s), until a run measures it: its minimum start time.
#: Estimates, not measurements, for an H100/H200 with 16 cores (a pytest process taken to start in
#: about 7 s there, a test to take about 3 s at --dnn-max-time=1s, a torch.compile of squeezenet1_1
#: about 20 s per batch); call A's add up to 222 s of its 240. Replace them with the figures a run
#: prints (step_seconds.json, --step-seconds).
GPU_EXPECTED: dict[str, float] = {
    "env-start": 12,
    "cudagraph": 15,
    "lowp": 20,
    "oom": 12,
    "xdist": 25,
    "isolation": 22,
    "compile": 45,
    "main": 45,
    "records": 1,
    "loop": 25,
    "rerun": 22,
    "memory": 35,
    "order": 25,
    "tf32": 10,
    "env-end": 1,
}
#: The same on the 2-core CPU of development, quiet (one thread per process), as measured on 2026-12-07:
#: each pytest process takes 9 s or more there (importing torch, torchvision and timm alone takes 5.7 s),
#: the first one of a call 5 s more (the runtime floor, shared with the call's later processes).
CPU_EXPECTED: dict[str, float] = {
    "env-start": 4,
    "cudagraph": 14,
    "lowp": 11,
    "oom": 9,
    "xdist": 23,
    "isolation": 16,
    "compile": 9,
    "main": 14,
    "records": 1,
    "loop": 10,
    "rerun": 16,
    "memory": 10,
    "order": 22,
    "tf32": 4,
    "env-end": 1,
}


def _call(call: str) -> str:
    if call not in CALLS:
        raise ValueError(f"call must be one of {', '.join(CALLS)}, not {call!r}")
    return call


def gpu_plan(deadline_s: float | None = None, max_time: float = 1.0, call: str = "all") -> Plan:
    call = _call(call)
    return Plan(
        kind="gpu",
        call=call,
        pytest_device="cuda",
        torch_device="cuda:0",
        models=GPU_MODELS,
        batches=(1, 64),
        max_time=max_time,
        # Autotuning is part of the plan: cuDNN tries its algorithms at each new batch during warm-up
        # (the plugin's default, said explicitly), and the main run's expected time includes it.
        main_args=("--dnn-cudnn-benchmark=on",),
        # 1 s per (model, batch) for plugin and loop calls together: GPU calls vary little, most
        # rows reach the 1 % target long before, and call A must fit in 240 s.
        loop_max_time=min(max_time, 1.0),
        loop_max_samples=5000,
        loop_ratio=Range(0.97, 1.03),
        loop_min_ms=1.0,
        memory_models=GPU_MODELS,
        memory_batches=(1, 64),
        memory_ratio=Range(0.95, 1.05),
        memory_parallel=4,
        # The figure does not grow with the number of calls; fewer calls keep the serialised part short.
        memory_timed_cap=30,
        rerun_ratio=Range(0.95, 1.05),
        rerun_batch=64,
        lowp_precision="fp16",
        lowp_models=("resnet50", "mobilenet_v2"),
        lowp_batches=(1, 64),
        graph_models=("resnet50", "mobilenet_v2"),
        graph_mode="cudagraph",
        oom_limit_bytes=LARGEST_CARD_BYTES,
        oom_args=(),
        xdist_models=("resnet18", "mobilenet_v2"),
        xdist_batches=(1, 8),
        xdist_args=("-n", "2"),
        xdist_allow="--dnn-allow-shared-gpu",
        isolation_models=("resnet18",),
        isolation_batches=(1, 64),
        # squeezenet1_1: launch-bound at batch 1, where CUDA graphs pay, and quick to compile.
        compile_models=("squeezenet1_1",),
        compile_batches=(1, 8),
        compile_mode="reduce-overhead",
        order_first="vgg16",
        order_model="resnet18",
        order_batches=(1,),
        order_ratio=Range(0.95, 1.05),
        tf32_limit=3e-5,
        deadline_s=GPU_DEADLINES[call] if deadline_s is None else deadline_s,
        expected=dict(GPU_EXPECTED),
        # Guards against a hang, not shares: the deadline and the expected durations decide.
        caps={
            # A fresh machine's first torch import reads everything from a cold disk.
            "env-start": 60,
            "main": 100,
            "records": 10,
            "loop": 60,
            "memory": 60,
            "rerun": 50,
            "oom": 40,
            "xdist": 50,
            "lowp": 50,
            "cudagraph": 45,
            "isolation": 50,
            "compile": 100,
            "order": 60,
            "tf32": 30,
        },
    )


def cpu_plan(deadline_s: float | None = None, max_time: float = 0.5, call: str = "all") -> Plan:
    call = _call(call)
    deadline = CPU_DEADLINES[call] if deadline_s is None else deadline_s
    # The CPU run proves the machinery, not the figures: on shared cores a co-tenant made a CPU
    # median 30x slower, so the timing ranges are wide enough that noise cannot flip
    # them; memory is not noisy.
    timing = Range(0.25, 4.0)
    return Plan(
        kind="cpu",
        call=call,
        pytest_device="cpu",
        torch_device="cpu",
        # Small models: process start-up (torch and torchvision imports, ~3.5 s) dominates already.
        models=("squeezenet1_1", "shufflenet_v2_x0_5"),
        batches=(1, 2),
        max_time=max_time,
        main_args=(),
        # 8 timed calls (after 3 warm-up calls) rather than a short budget: on a loaded machine a
        # budget of half a second can leave a single sample.
        loop_max_time=3.0,
        loop_max_samples=8,
        loop_ratio=timing,
        loop_min_ms=1.0,
        memory_models=("squeezenet1_1",),
        memory_batches=(1, 2),
        memory_ratio=Range(0.5, 2.0),
        memory_parallel=2,
        memory_timed_cap=10,
        rerun_ratio=Range(0.1, 10.0),
        rerun_batch=2,
        # bf16 where this CPU computes it natively; a CPU without avx512_bf16/amx_bf16 refuses bf16 as emulated
        # (as it refuses fp16), so the step rehearses the same plumbing (precision, channels-last) in fp32.
        lowp_precision="bf16" if _native_bf16() else "fp32",
        lowp_models=("squeezenet1_1",),
        lowp_batches=(1,),
        graph_models=("squeezenet1_1",),
        graph_mode="eager",
        # The host-memory limit plays the card: the wide stem at oom_batch(512 MB) = 7 images has a
        # 719 MB first activation and a 4 MB input, while importing torchvision and building the
        # model, which may happen under the limit, need about 90 MB.
        oom_limit_bytes=512_000_000,
        oom_args=("--dnn-max-host-memory=512MB",),
        xdist_models=("squeezenet1_1", "shufflenet_v2_x0_5"),
        xdist_batches=(1,),
        xdist_args=("-n", "2"),
        xdist_allow="--dnn-allow-parallel-cpu",
        isolation_models=("squeezenet1_1",),
        isolation_batches=(1,),
        compile_models=("squeezenet1_1",),
        compile_batches=(1,),
        # torch.compile works here (inductor compiles C++ with gcc), but one squeezenet1_1 test at batch 1
        # took 47 s on 2 cores (25 s of preparation, inductor's cache warm), a third of call A's budget:
        # the step is rehearsed with --dnn-modes=eager, as cudagraph is.
        compile_mode=None,
        order_first="mobilenet_v2",
        order_model="squeezenet1_1",
        order_batches=(1,),
        order_ratio=Range(0.5, 2.0),
        tf32_limit=3e-5,
        deadline_s=deadline,
        expected=dict(CPU_EXPECTED),
        # Guards against a hang, not shares: the deadline decides. Sized for the call's default
        # deadline and grown with a longer one: whoever gives the run more time (a loaded machine,
        # the test suite) gives each step more too; two xdist workers importing torch beside two
        # busy processes took longer than 30 s.
        caps={
            name: cap * max(1.0, deadline / CPU_DEADLINES[call])
            for name, cap in {
                "main": 40,
                "records": 10,
                "loop": 30,
                "memory": 30,
                "rerun": 30,
                "oom": 30,
                "xdist": 45,
                "lowp": 30,
                "cudagraph": 30,
                "isolation": 30,
                "compile": 30,
                "order": 45,
                "tf32": 20,
            }.items()
        },
        # One thread per process. On a shared 2-core machine torch's threads wait for each other at
        # every operator when a co-tenant holds a core (squeezenet1_1 at batch 1 took 800 ms instead
        # of 12 ms), and two xdist workers would oversubscribe the cores.
        env=(("OMP_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1")),
    )


# -- results --------------------------------------------------------------------------------------


@dataclass
class StepResult:
    name: str
    status: str
    criterion: str
    summary: str = ""
    seconds: float = 0.0
    #: What the step was expected to take when it started (s; 0 for a step that never ran).
    expected_s: float = 0.0
    #: A subprocess was stopped at the step's cap: what it left undone is the time limit's.
    cut: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def settle(res: StepResult, problems: Sequence[str], cut: bool = False) -> StepResult:
    """The step's verdict: FAIL on a real problem; "not run (time limit)" when a subprocess was stopped
    at the step's cap before anything failed (what it left undone is the time limit's, not a failure
    of the code); else the status it has (PASS, n/a)."""
    if problems:
        res.status = FAIL
        shown = "; ".join(problems[:6]) + (f"; ... {len(problems) - 6} more" if len(problems) > 6 else "")
        res.summary = f"{res.summary}; {shown}" if res.summary else shown
    elif cut:
        res.status, res.cut = NOT_RUN, True
        note = "stopped at its time limit before it finished; nothing had failed"
        res.summary = f"{res.summary}; {note}" if res.summary else note
    return res


@dataclass
class Ctx:
    """What steps share: the plan, paths, the clock and what earlier steps (and call A) found."""

    plan: Plan
    out: Path
    python: str
    t0: float
    help_text: str = ""
    #: The main run's eager records by (model, batch): this call's, or call A's (--after).
    main_records: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    #: Where main_records came from: "" (none), "this call" or "call A (PATH)".
    main_origin: str = ""
    #: The main run's results-file environment (this call's or call A's).
    main_environment: dict[str, Any] = field(default_factory=dict)
    #: The rerun's records by (model, batch): the memory subset measured on this machine.
    rerun_records: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    #: Call A's acceptance.json (--after), or empty.
    after: dict[str, Any] = field(default_factory=dict)
    #: Each step's status so far in this call (steps that depend on another read it).
    statuses: dict[str, str] = field(default_factory=dict)
    #: Expected seconds per step: the plan's defaults, overridden by measured ones.
    expected: dict[str, float] = field(default_factory=dict)
    #: Where the expected seconds came from (files read), for the table.
    expected_from: list[str] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    @property
    def help_read(self) -> bool:
        """Whether env-start read the plugin's ``pytest --help`` (a slow cold start can leave it unread):
        later steps that adapt to the plugin's options must not take its absence for an old plugin."""
        return "--dnn-models" in self.help_text

    def remaining(self) -> float:
        return self.plan.deadline_s - self.elapsed()

    def log(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {text}", flush=True)

    @property
    def work(self) -> Path:
        """The pytest runs' rootdir: an empty project (its own pytest.ini), as a user's would be."""
        return self.out / "work"

    def expected_s(self, name: str) -> float:
        return float(self.expected.get(name, self.plan.expected.get(name, 0.0)))


# -- subprocesses ---------------------------------------------------------------------------------

#: Variables set in every subprocess (the plan's ``env``; main() fills it).
SUBPROCESS_ENV: dict[str, str] = {}


def child_env() -> dict[str, str]:
    """The environment of every subprocess: this checkout's package first on the path."""
    env = dict(os.environ)
    env.update(SUBPROCESS_ENV)
    parts = [str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Proc:
    rc: int | None
    timed_out: bool
    seconds: float
    log: Path

    def tail(self, lines: int = 12) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def run_logged(
    cmd: Sequence[str], log: Path, timeout_s: float, cwd: Path | None = None, stdin_text: str | None = None
) -> Proc:
    """Run ``cmd`` in its own process group, output to ``log``; at the timeout SIGTERM, then SIGKILL."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log, "w", encoding="utf-8", errors="replace") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=child_env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        timed_out = False
        # The time limit includes the grace given to a stopped process (_kill_group), so that the
        # whole step ends within timeout_s.
        wait_s = max(timeout_s - KILL_GRACE_S - 1.0, 0.5)
        try:
            if stdin_text is not None:
                proc.communicate(stdin_text, timeout=wait_s)
            else:
                proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
        except KeyboardInterrupt:  # the script is stopped (Ctrl-C, SIGTERM): so is its subprocess
            _kill_group(proc)
            raise
    return Proc(rc=proc.returncode, timed_out=timed_out, seconds=time.monotonic() - t0, log=log)


KILL_GRACE_S = 3.0


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the process group (the plugin then writes its results, as on Ctrl-C), SIGKILL after 3 s."""
    for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def pytest_cmd(ctx: Ctx, *args: str) -> list[str]:
    return [ctx.python, "-m", "pytest", "-p", "no:cacheprovider", "-rs", *args]


def run_pytest(
    ctx: Ctx,
    name: str,
    models: Sequence[str],
    batches: Sequence[int],
    timeout_s: float,
    *extra: str,
    max_time: float | None = None,
    quiet: bool = True,
    cwd: Path | None = None,
) -> tuple[Proc, list[Record]]:
    """One plugin run in the empty project; returns the process and the records of its results file."""
    results = ctx.out / f"{name}.json"
    with contextlib.suppress(FileNotFoundError):
        results.unlink()
    args = [
        f"--dnn-device={ctx.plan.pytest_device}",
        f"--dnn-models={','.join(models)}",
        f"--dnn-batch-sizes={','.join(str(b) for b in batches)}",
        f"--dnn-max-time={max_time if max_time is not None else ctx.plan.max_time:g}s",
        f"--dnn-json={results}",
        "-q" if quiet else "-v",
        *extra,
    ]
    proc = run_logged(pytest_cmd(ctx, *args), ctx.out / "logs" / f"{name}.log", timeout_s, cwd=cwd or ctx.work)
    return proc, read_records(results)


def read_records(path: Path) -> list[Record]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return list(data.get("records") or [])


def key_of(record: Record) -> tuple[str, int]:
    return str(record.get("model")), int(record.get("batch_size") or 0)


def by_key(records: Sequence[Record]) -> dict[tuple[str, int], Record]:
    return {key_of(r): r for r in records}


def median_of(record: Record | None) -> float | None:
    try:
        value = record["latency_ms"]["median"]  # type: ignore[index]
    except (TypeError, KeyError):
        return None
    return float(value) if value is not None else None


def memory_of(record: Record | None, key: str = "total") -> int | None:
    try:
        value = record["memory_bytes"][key]  # type: ignore[index]
    except (TypeError, KeyError):
        return None
    return int(value) if value is not None else None


def total_of(record: Record | None) -> int | None:
    return memory_of(record, "total")


def proc_problem(proc: Proc, what: str) -> str | None:
    """Why a finished subprocess counts as failed (None when it exited 0, or was stopped at its time limit:
    the caller settles that as "not run" unless something else failed)."""
    if proc.timed_out:
        return None
    if proc.rc != 0:
        return f"{what} exited with status {proc.rc} (log {proc.log.name}):\n{indent(proc.tail())}"
    return None


def indent(text: str, pad: str = "      ") -> str:
    return "\n".join(pad + line for line in text.splitlines())


def expect_records(
    records: Sequence[Record],
    models: Sequence[str],
    batches: Sequence[int],
    outcome: str = "passed",
    missing_ok: bool = False,
) -> list[str]:
    """Problems: (model, batch) without a record (unless ``missing_ok``: a run stopped at its time
    limit), or with another outcome."""
    got = by_key(records)
    problems = []
    for m in models:
        for b in batches:
            r = got.get((m, b))
            if r is None:
                if not missing_ok:
                    problems.append(f"{m} bs{b}: no record")
            elif r.get("outcome") != outcome:
                problems.append(f"{m} bs{b}: {r.get('outcome')} ({r.get('reason')})")
    return problems


# -- environment (NVML, no CUDA context in this process) -----------------------------------------


def nvml_state() -> dict[str, Any]:
    """Card, driver, memory, clocks, power, throttle reasons and the energy counter of the first visible GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - no driver, no library
        return {"nvml": f"unavailable ({type(exc).__name__}: {exc})"}

    def q(fn: str, *args: Any) -> Any:
        try:
            v = getattr(pynvml, fn)(*args)
        except Exception:  # noqa: BLE001
            return None
        return v.decode() if isinstance(v, bytes) else v

    handle = None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    if visible.startswith("GPU-"):
        handle = q("nvmlDeviceGetHandleByUUID", visible)
    elif visible.isdigit():
        handle = q("nvmlDeviceGetHandleByIndex", int(visible))
    if handle is None:
        handle = q("nvmlDeviceGetHandleByIndex", 0)
    if handle is None:
        return {"nvml": "no GPU visible to NVML", "driver": q("nvmlSystemGetDriverVersion")}
    mem = q("nvmlDeviceGetMemoryInfo", handle)
    reasons = q("nvmlDeviceGetCurrentClocksEventReasons", handle)
    if reasons is None:
        reasons = q("nvmlDeviceGetCurrentClocksThrottleReasons", handle)
    power = q("nvmlDeviceGetEnforcedPowerLimit", handle)
    draw = q("nvmlDeviceGetPowerUsage", handle)
    return {
        "name": q("nvmlDeviceGetName", handle),
        "driver": q("nvmlSystemGetDriverVersion"),
        "cuda_driver_version": q("nvmlSystemGetCudaDriverVersion_v2") or q("nvmlSystemGetCudaDriverVersion"),
        "nvml_version": q("nvmlSystemGetNVMLVersion"),
        "memory_total_bytes": getattr(mem, "total", None),
        "memory_used_bytes": getattr(mem, "used", None),
        "sm_clock_mhz": q("nvmlDeviceGetClockInfo", handle, getattr(pynvml, "NVML_CLOCK_SM", 1)),
        "mem_clock_mhz": q("nvmlDeviceGetClockInfo", handle, getattr(pynvml, "NVML_CLOCK_MEM", 2)),
        "max_sm_clock_mhz": q("nvmlDeviceGetMaxClockInfo", handle, getattr(pynvml, "NVML_CLOCK_SM", 1)),
        "power_limit_w": None if power is None else power / 1000.0,
        "power_draw_w": None if draw is None else draw / 1000.0,
        "temperature_c": q("nvmlDeviceGetTemperature", handle, getattr(pynvml, "NVML_TEMPERATURE_GPU", 0)),
        "throttle_reasons_mask": reasons,
        "throttle_reasons": decode_throttle(reasons),
        "persistence_mode": q("nvmlDeviceGetPersistenceMode", handle),
        # Whether records must carry energy per image: NVML's total-energy counter (mJ), None where absent.
        "energy_counter_mj": q("nvmlDeviceGetTotalEnergyConsumption", handle),
    }


def decode_throttle(mask: int | None) -> list[str] | None:
    if mask is None:
        return None
    names = [name for bit, name in THROTTLE_BITS.items() if mask & bit]
    rest = mask & ~sum(THROTTLE_BITS)
    if rest:
        names.append(f"0x{rest:x}")
    return names or ["none"]


def cpu_state() -> dict[str, Any]:
    mhz: list[float] = []
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "cpu MHz":
                with contextlib.suppress(ValueError):
                    mhz.append(float(value))
            elif key.strip() == "model name":
                model = value.strip()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (None, None, None)
    return {
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "cpu_mhz_mean": statistics.mean(mhz) if mhz else None,
        "loadavg_1m": load[0],
    }


def rapl_readable() -> tuple[bool, str]:
    """Whether the CPU's energy counters (RAPL) can be read here, through the plugin's own meter."""
    try:
        from pytest_dnnbench.measure.energy import rapl_meter

        meter = rapl_meter()
        meter.start()
        time.sleep(0.02)
        energy = meter.stop(1)
    except Exception as exc:  # noqa: BLE001
        return False, f"{type(exc).__name__}: {exc}"
    return energy.get("reason") is None, str(energy.get("reason") or energy.get("source"))


#: Distributions whose versions the final table shows (as the pytest subprocesses import them).
VERSION_DISTS = (
    "torch",
    "torchvision",
    "timm",
    "ultralytics-thop",
    "pretrainedmodels",
    "pytest",
    "pytest-benchmark",
    "pytest-xdist",
    "nvidia-ml-py",
    "pytest-dnnbench",
)


def versions() -> dict[str, str | None]:
    """Versions in this process (the probe's are the ones the steps use; these are the fallback)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in VERSION_DISTS:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def state_line(state: dict[str, Any]) -> str:
    if "sm_clock_mhz" in state:
        return (
            f"SM {state.get('sm_clock_mhz')}/{state.get('max_sm_clock_mhz')} MHz, "
            f"mem {state.get('mem_clock_mhz')} MHz, "
            f"{state.get('temperature_c')} C, {state.get('power_draw_w')}/{state.get('power_limit_w')} W, "
            f"throttle: {','.join(state.get('throttle_reasons') or ['?'])}"
        )
    if "cpu" in state:
        return (
            f"{state.get('cpu')}, {state.get('cpu_count')} cores, load {fmt(state.get('loadavg_1m'), '.2f')}, "
            f"{fmt(state.get('cpu_mhz_mean'), '.0f')} MHz"
        )
    return str(state.get("nvml", state))


def energy_expected(ctx: Ctx) -> tuple[bool, str]:
    """Whether every record must carry energy per image: where NVML (GPU) or RAPL (CPU) has the counter."""
    if ctx.plan.kind == "gpu":
        counter = (ctx.environment.get("gpu_start") or {}).get("energy_counter_mj")
        return counter is not None, "NVML total-energy counter " + ("readable" if counter is not None else "absent")
    ok, why = bool(ctx.environment.get("rapl_readable")), str(ctx.environment.get("rapl_reason"))
    return ok, "RAPL " + ("readable" if ok else f"not readable ({why})")


# -- steps ----------------------------------------------------------------------------------------

#: What a step that adapts to the plugin's options says when env-start could not read them.
HELP_NOT_READ = (
    "the plugin's pytest --help was not read at env-start (see logs/help.log): cannot tell which options exist"
)

PROBE = f"""
import json, platform, torch, pytest_dnnbench
from importlib.metadata import PackageNotFoundError, version
def v(dist):
    try:
        return version(dist)
    except PackageNotFoundError:
        return None
print(json.dumps({{"plugin_file": pytest_dnnbench.__file__, "torch_version": str(torch.__version__),
                  "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                  "torch_threads": torch.get_num_threads(),
                  "probe_versions": {{"python": platform.python_version(),
                                     **{{d: v(d) for d in {VERSION_DISTS!r}}}}}}}))
"""


def _probe(ctx: Ctx, timeout_s: float) -> dict[str, Any]:
    """Versions, CUDA/cuDNN and the plugin's path as the steps' subprocesses see them (cudnn.version()
    loads the library and creates no CUDA context)."""
    try:
        probe = subprocess.run(
            [ctx.python, "-c", PROBE],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"plugin_file": f"probe failed: importing torch and the plugin took over {timeout_s:.0f} s"}
    try:
        return dict(json.loads(probe.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return {"plugin_file": "probe failed: " + probe.stderr.strip()[-300:]}


def step_env_start(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    res = StepResult(
        "env-start",
        PASS,
        "plugin loads in pytest; card/driver/clocks read"
        if plan.kind == "gpu"
        else "plugin loads in pytest; CPU described",
    )
    env: dict[str, Any] = {"versions": versions(), "host": platform.node(), "platform": platform.platform()}
    # The probe and pytest --help each import torch: side by side, to halve a cold start.
    with ThreadPoolExecutor(max_workers=1) as pool:
        probed = pool.submit(_probe, ctx, max(budget, 1))
        helped = run_logged(pytest_cmd(ctx, "--help"), ctx.out / "logs" / "help.log", budget, cwd=ctx.work)
        env.update(probed.result())
    ctx.help_text = helped.text()
    env["dnn_modes_option"] = "--dnn-modes" in ctx.help_text
    problems = []
    if helped.timed_out and not ctx.help_read:
        problems.append(f"pytest --help did not finish in {budget:.0f} s (a slow cold start?): --dnn-models not seen")
    elif not ctx.help_read:
        problems.append(
            "pytest --help lists no --dnn-models: the plugin is not installed "
            "(pip install --no-deps --no-build-isolation --no-index -e .)"
        )
    if plan.kind == "gpu":
        state = nvml_state()
        env["gpu_start"] = state
        if "name" not in state:
            problems.append(f"NVML: {state.get('nvml')}")
        total = state.get("memory_total_bytes")
        res.summary = (
            f"{state.get('name')}, {fmt(total / 1e9 if total else None, '.1f')} GB, driver {state.get('driver')}, "
            f"CUDA {env.get('torch_cuda')}, cuDNN {env.get('cudnn')}; {state_line(state)}; energy counter "
            + ("yes" if state.get("energy_counter_mj") is not None else "no")
        )
    else:
        state = cpu_state()
        env["cpu_start"] = state
        env["rapl_readable"], env["rapl_reason"] = rapl_readable()
        res.summary = f"{state_line(state)}, torch threads {env.get('torch_threads')}"
    res.summary += f"; plugin {env.get('plugin_file')}"
    ctx.environment.update(env)
    res.data = env
    return settle(res, problems)


def step_main(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    res = StepResult(
        "main",
        PASS,
        f"pytest exit 0; {len(plan.models) * len(plan.batches)} records passed; report written"
        + (f"; {' '.join(plan.main_args)}" if plan.main_args else ""),
    )
    report = ctx.out / "report"
    proc, records = run_pytest(
        ctx, "main", plan.models, plan.batches, budget, f"--dnn-report={report}", *plan.main_args
    )
    ctx.main_records = by_key([r for r in records if r.get("mode", "eager") == "eager"])
    ctx.main_origin = "this call" if records else ""
    cut = proc.timed_out
    problems = [p for p in [proc_problem(proc, "pytest")] if p]
    problems += expect_records(records, plan.models, plan.batches, missing_ok=cut)
    if not cut and not (report / "report.html").exists() and not (report / "report.md").exists():
        problems.append(f"no report in {report}")
    for r in records:
        res.rows.append(
            {
                "model": r.get("model"),
                "batch": r.get("batch_size"),
                "median_ms": median_of(r),
                "n": (r.get("latency_ms") or {}).get("n"),
                "capped": (r.get("latency_ms") or {}).get("capped"),
                "total_mib": _mib(total_of(r)),
                "memory_method": r.get("memory_method"),
                "cudnn_benchmark": r.get("cudnn_benchmark"),
                "outcome": r.get("outcome"),
            }
        )
    env = _first_environment(ctx.out / "main.json")
    ctx.main_environment = env
    if env:
        ctx.environment["plugin_environment"] = _plugin_environment(env)
    res.summary = f"{len(records)} records in {proc.seconds:.0f} s"
    if env:
        cuda = f"cuda {env.get('cuda')}, cudnn {env.get('cudnn')}, " if plan.kind == "gpu" else ""
        res.summary += f" ({cuda}{env.get('device_name')})"
    return settle(res, problems, cut)


#: The results-file environment keys the final table and acceptance.json keep.
PLUGIN_ENV_KEYS = (
    "plugin_version",
    "python",
    "torch",
    "torchvision",
    "timm",
    "thop",
    "pretrainedmodels",
    "torch_cuda_build",
    "cuda",
    "cudnn",
    "device_name",
    "driver",
    "gpu_total_memory",
    "cuda_context_bytes",
    "cuda_context_method",
    "nvml",
    "nvml_pid",
    "nvml_pid_method",
    "cudnn_benchmark",
    "tf32_matmul",
    "tf32_cudnn",
    "tf32_api",
    "tf32_env_overrides",
    "threads",
    "gpu_state_start",
    "gpu_state_end",
)


def _plugin_environment(env: Mapping[str, Any]) -> dict[str, Any]:
    return {k: env.get(k) for k in PLUGIN_ENV_KEYS if k in env}


def size(n: float) -> str:
    """Bytes in GB (1e9) or MB (1e6), as the plugin's size options read them."""
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _mib(n: int | float | None) -> float | None:
    return None if n is None else n / MIB


def _first_environment(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()).get("environment") or {})
    except (OSError, ValueError):
        return {}


#: memory_method prefixes that mean NVML measured the total (docs/gpu.md, "Memory").
NVML_METHODS = ("nvml-process", "nvml-device-delta")


def short_method(method: object) -> str | None:
    """A memory_method's name: the part before its explanation (``nvml-process``, ``runtime floor``)."""
    text = str(method or "").split(":")[0].split(" (")[0].strip()
    return text or None


def record_check(record: Record, gpu: bool, energy_needed: bool) -> tuple[dict[str, Any], list[str]]:
    """One record's memory breakdown, gpu_state and energy, and what is wrong with them.

    GPU: ``total``, ``context``, ``allocator_peak`` and ``reserved_peak`` all present, reserved_peak >=
    allocator_peak and total >= reserved_peak, total from NVML (per process or device delta),
    gpu_state sampled during the timed calls (samples > 0), cuDNN autotuning on and TF32 off.
    Both: energy per image present where the counter exists (``energy_needed``)."""
    mem = record.get("memory_bytes") or {}
    total, context = mem.get("total"), mem.get("context")
    alloc, reserved = mem.get("allocator_peak"), mem.get("reserved_peak")
    method = short_method(record.get("memory_method"))
    state = record.get("gpu_state") or {}
    energy = record.get("energy") or {}
    row: dict[str, Any] = {
        "model": record.get("model"),
        "batch": record.get("batch_size"),
        "total_mib": _mib(total),
        "context_mib": _mib(context),
        "allocator_peak_mib": _mib(alloc),
        "reserved_minus_allocator_mib": _mib(reserved - alloc) if reserved is not None and alloc is not None else None,
        "memory_method": method,
        "gpu_state_samples": state.get("samples"),
        "during_timed_calls": state.get("during_timed_calls"),
        "throttled": state.get("throttled"),
        "joules_per_image": energy.get("joules_per_image"),
        "energy_reason": energy.get("reason"),
    }
    problems: list[str] = []
    if total is None:
        problems.append("no memory total")
    if not method:
        problems.append("no memory_method")
    if gpu:
        missing = [
            k for k, v in (("context", context), ("allocator_peak", alloc), ("reserved_peak", reserved)) if v is None
        ]
        if missing:
            problems.append(f"memory breakdown lacks {', '.join(missing)}")
        if reserved is not None and alloc is not None and reserved < alloc:
            problems.append("reserved_peak < allocator_peak")
        if total is not None and reserved is not None and total < reserved:
            problems.append("total < reserved_peak")
        if method and method not in NVML_METHODS:
            problems.append(f"memory_method {method} (NVML gave no figure)")
        if not (int(state.get("samples") or 0) > 0 and state.get("during_timed_calls") is True):
            problems.append(
                f"gpu_state samples {state.get('samples')}, during_timed_calls {state.get('during_timed_calls')}"
            )
        if record.get("cudnn_benchmark") is not True:
            problems.append(f"cudnn_benchmark {record.get('cudnn_benchmark')} (autotuning is in the plan)")
        if record.get("tf32") is not False:
            problems.append(f"tf32 {record.get('tf32')} (fp32 must be IEEE by default)")
    if energy_needed and energy.get("joules_per_image") is None:
        problems.append(f"energy per image null ({energy.get('reason')})")
    row["verdict"] = FAIL if problems else PASS
    return row, problems


def step_records(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    gpu = plan.kind == "gpu"
    energy_needed, energy_why = energy_expected(ctx)
    criterion = (
        "per record: total, context, allocator and reserved peaks; total from NVML; gpu_state.samples > 0 "
        "during the timed calls; cudnn_benchmark on, tf32 off"
        if gpu
        else "per record: memory total and method"
    )
    criterion += "; energy per image not null" if energy_needed else f"; energy per image not judged ({energy_why})"
    res = StepResult("records", PASS, criterion)
    if not ctx.main_records:
        if ctx.statuses.get("main") == NOT_RUN:
            res.status, res.summary = NOT_RUN, "main did not run in this call"
        else:
            res.status, res.summary = FAIL, "no records from the main run"
        return res
    if ctx.main_origin != "this call":
        res.summary = f"records of {ctx.main_origin}; "
    problems: list[str] = []
    for r in ctx.main_records.values():
        row, bad = record_check(r, gpu, energy_needed)
        res.rows.append(row)
        problems += [f"{row['model']} bs{row['batch']}: {p}" for p in bad]
    env = ctx.main_environment
    res.data = {k: env.get(k) for k in ("nvml_pid", "nvml_pid_method", "cuda_context_bytes", "cuda_context_method")}
    if gpu:
        for flag in ("tf32_matmul", "tf32_cudnn"):
            if env.get(flag) is not False:
                problems.append(f"environment {flag} {env.get(flag)} (expected false)")
        res.summary += f"NVML PID {env.get('nvml_pid')} ({env.get('nvml_pid_method')}); "
    methods = sorted({str(r.get("memory_method")) for r in res.rows})
    energies = [r["joules_per_image"] for r in res.rows if r.get("joules_per_image") is not None]
    res.summary += f"{len(res.rows)} records, memory method {','.join(methods)}; energy per image " + (
        f"{min(energies):.3g}-{max(energies):.3g} J" if energies else f"null ({energy_why})"
    )
    return settle(res, problems)


def step_loop(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    res = StepResult(
        "loop",
        PASS,
        f"plugin/loop median ratio in {plan.loop_ratio.text()} for every (model, batch) "
        f"with median >= {plan.loop_min_ms:g} ms",
    )
    rows_path = ctx.out / "loop.jsonl"
    with contextlib.suppress(FileNotFoundError):
        rows_path.unlink()
    request = {
        "device": plan.torch_device,
        "models": list(plan.models),
        "batches": list(plan.batches),
        "max_time": plan.loop_max_time,
        "max_samples": plan.loop_max_samples,
        "out": str(rows_path),
    }
    proc = run_logged(
        [ctx.python, str(Path(__file__).resolve()), "--worker", "loop"],
        ctx.out / "logs" / "loop.log",
        budget,
        stdin_text=json.dumps(request),
    )
    rows = (
        [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()] if rows_path.exists() else []
    )
    judged = failed = 0
    for row in rows:
        if "error" in row:
            row["verdict"] = FAIL
        elif row["plugin_ms"] < plan.loop_min_ms:
            row["verdict"] = INFO
        else:
            judged += 1
            row["verdict"] = PASS if plan.loop_ratio.holds(row["ratio"]) else FAIL
        failed += row["verdict"] == FAIL
    res.rows = rows
    expected = len(plan.models) * len(plan.batches)
    problems = [p for p in [proc_problem(proc, "loop worker")] if p]
    if len(rows) < expected and not proc.timed_out:
        problems.append(f"{len(rows)} of {expected} (model, batch) measured")
    if failed:
        problems.append(f"{failed} outside {plan.loop_ratio.text()}")
    ratios = [r["ratio"] for r in rows if r.get("ratio") is not None]
    res.summary = (
        f"{judged} judged, median ratio {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})"
        if ratios
        else "no ratio"
    )
    return settle(res, problems, proc.timed_out)


def same_machine_records(ctx: Ctx) -> tuple[dict[tuple[str, int], Record], str]:
    """The memory subset's records measured on this machine: the rerun's, else this call's main run's."""
    if ctx.rerun_records:
        return ctx.rerun_records, "rerun"
    if ctx.main_origin == "this call":
        return ctx.main_records, "main"
    return {}, ""


def step_memory(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    figure = "NVML per-process" if plan.kind == "gpu" else "peak RSS"
    res = StepResult(
        "memory", PASS, f"record total (this machine) / fresh process ({figure}) in {plan.memory_ratio.text()}"
    )
    source, origin = same_machine_records(ctx)
    if not source:
        if NOT_RUN in (ctx.statuses.get("rerun"), ctx.statuses.get("main")):
            res.status, res.summary = NOT_RUN, "no records of this machine to compare: rerun did not run"
        else:
            res.status, res.summary = FAIL, "no records of this machine to compare (rerun gave none)"
        return res
    deadline = time.monotonic() + budget
    lock = ctx.out / "memory.lock"
    lock.touch()
    jobs = []
    for m in plan.memory_models:
        for b in plan.memory_batches:
            rec = source.get((m, b))
            lat = (rec or {}).get("latency_ms") or {}
            jobs.append(
                (
                    m,
                    b,
                    rec,
                    {
                        "model": m,
                        "batch": b,
                        "device": plan.torch_device,
                        "cudnn_benchmark": bool((rec or {}).get("cudnn_benchmark", True)),
                        "tf32": bool((rec or {}).get("tf32", False)),
                        "seed": int((rec or {}).get("seed", 0)),
                        "warmup": int(lat.get("warmup") or 3),
                        "timed": min(plan.memory_timed_cap, int(lat.get("n") or 10)),
                        "lock": str(lock),
                    },
                )
            )

    def one(job: tuple[str, int, Record | None, dict[str, Any]]) -> dict[str, Any]:
        m, b, rec, request = job
        row: dict[str, Any] = {"model": m, "batch": b, "record_from": origin}
        record_total = total_of(rec)
        if rec is None or record_total is None:
            row.update(verdict=FAIL, error=f"no memory total from the {origin} run")
            return row
        left = deadline - time.monotonic()
        if left < 2:
            row.update(verdict=NOT_RUN, error="time limit")
            return row
        proc = run_logged(
            [ctx.python, str(Path(__file__).resolve()), "--worker", "memory"],
            ctx.out / "logs" / f"memory-{m}-bs{b}.log",
            left,
            stdin_text=json.dumps(request),
        )
        answer = _answer(proc.log)
        if proc.timed_out and answer is None:
            row.update(verdict=NOT_RUN, error="time limit")
            return row
        problem = proc_problem(proc, "fresh process")
        if answer is None or problem or "error" in answer:
            row.update(verdict=FAIL, error=(answer or {}).get("error") or problem or "no answer")
            return row
        fresh = answer["total"]
        ratio = record_total / fresh if fresh else None
        row.update(
            record_total_mib=_mib(record_total),
            fresh_mib=fresh / MIB if fresh else None,
            ratio=ratio,
            fresh_method=answer.get("method"),
            record_method=rec.get("memory_method"),
            fresh_detail=answer.get("detail"),
            record_detail=rec.get("memory_bytes"),
            verdict=PASS if plan.memory_ratio.holds(ratio) else FAIL,
        )
        return row

    with ThreadPoolExecutor(max_workers=plan.memory_parallel) as pool:
        res.rows = list(pool.map(one, jobs))
    failed = [r for r in res.rows if r["verdict"] == FAIL]
    cut = any(r["verdict"] == NOT_RUN for r in res.rows)
    ratios = [r["ratio"] for r in res.rows if r.get("ratio")]
    res.summary = f"against the {origin} run's records: " + (
        f"{len(ratios)} compared, ratio {min(ratios):.3f}-{max(ratios):.3f}" if ratios else "none compared"
    )
    problems = [f"{r['model']} bs{r['batch']}: {r.get('error') or format(r.get('ratio') or 0, '.3f')}" for r in failed]
    return settle(res, problems, cut)


def _answer(log: Path) -> dict[str, Any] | None:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith(ANSWER):
            return dict(json.loads(line[len(ANSWER) :]))
    return None


ANSWER = "@@gpu-acceptance@@ "


def step_rerun(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    res = StepResult(
        "rerun", PASS, f"second run / main run, median, in {plan.rerun_ratio.text()} at batch {plan.rerun_batch}"
    )
    proc, records = run_pytest(ctx, "rerun", plan.memory_models, plan.memory_batches, budget, *plan.main_args)
    second = by_key([r for r in records if r.get("mode", "eager") == "eager"])
    ctx.rerun_records = second
    cut = proc.timed_out
    problems = [p for p in [proc_problem(proc, "pytest")] if p]
    problems += expect_records(records, plan.memory_models, plan.memory_batches, missing_ok=cut)
    env = _first_environment(ctx.out / "rerun.json")
    first_card, this_card = ctx.main_environment.get("device_name"), env.get("device_name")
    judge = bool(ctx.main_records) and (first_card == this_card or not env)
    where = ctx.main_origin or "none"
    if ctx.main_origin.startswith("call A"):
        host = (ctx.after.get("environment") or {}).get("host")
        where += f", on {host}" if host and host != platform.node() else ", on this machine"
    # A main run stopped at its time limit (here, or in call A) left some cells without a first median.
    main_cut = ctx.statuses.get("main") == NOT_RUN or "main" in (ctx.after.get("not_run") or [])
    for m in plan.memory_models:
        for b in plan.memory_batches:
            a, c = median_of(ctx.main_records.get((m, b))), median_of(second.get((m, b)))
            ratio = c / a if a and c else None
            judged = judge and b == plan.rerun_batch
            if (c is None and cut) or (a is None and main_cut):
                verdict = NOT_RUN
                cut = True
            elif judged:
                verdict = PASS if plan.rerun_ratio.holds(ratio) else FAIL
            else:
                verdict = INFO if ratio or not judge else FAIL
            res.rows.append({"model": m, "batch": b, "first_ms": a, "second_ms": c, "ratio": ratio, "verdict": verdict})
            if verdict == FAIL:
                problems.append(f"{m} bs{b}: " + (f"{ratio:.3f}" if ratio else "missing median"))
    ratios = [r["ratio"] for r in res.rows if r["ratio"] and r["batch"] == plan.rerun_batch]
    res.summary = f"first run: main ({where}); batch {plan.rerun_batch}: " + (
        f"{min(ratios):.3f}-{max(ratios):.3f}" if ratios else "no ratio"
    )
    others = [r["ratio"] for r in res.rows if r["ratio"] and r["batch"] != plan.rerun_batch]
    if others:
        res.summary += f"; other batches (not judged): {min(others):.3f}-{max(others):.3f}"
    if not ctx.main_records:
        if ctx.statuses.get("main") == NOT_RUN:
            cut = True
            res.summary += "; main did not run: nothing to compare"
        else:
            problems.append("no main records to compare (call B reads call A's main.json from --after)")
    elif not judge:
        res.status = NA
        res.summary += f"; not judged: main ran on {first_card}, this run on {this_card}"
    return settle(res, problems, cut)


def step_oom(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    if plan.kind == "gpu":
        card = (ctx.environment.get("gpu_start") or {}).get("memory_total_bytes")
        limit = int(card) if card else plan.oom_limit_bytes
        what = "the card's memory" if card else "no card memory from NVML: the largest card's"
    else:
        limit, what = plan.oom_limit_bytes, " ".join(plan.oom_args)
    batch = oom_batch(limit)
    res = StepResult(
        "oom",
        PASS,
        f"{OOM_MODEL} at batch {batch} (input {size(batch * OOM_INPUT_BYTES)}, first activation "
        f"{size(batch * OOM_ACTIVATION_BYTES)} > {size(limit)}, {what}): skipped as out of memory, exit 0",
    )
    project = ctx.out / "work-oom"
    project.mkdir(parents=True, exist_ok=True)
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "conftest.py").write_text(OOM_CONFTEST)
    (project / "oom_models.py").write_text(OOM_MODELS_PY)
    proc, records = run_pytest(
        ctx, "oom", [OOM_MODEL], [batch], budget, *plan.oom_args, max_time=min(plan.max_time, 2.0), cwd=project
    )
    rec = by_key(records).get((OOM_MODEL, batch))
    problems = [p for p in [proc_problem(proc, "pytest")] if p]
    log = proc.text()
    reason = (rec or {}).get("reason") or next(
        (line[line.index("out of memory") :] for line in log.splitlines() if "out of memory" in line), None
    )
    outcome = (rec or {}).get("outcome") or ("skipped" if "1 skipped" in log else None)
    res.rows.append(
        {
            "model": OOM_MODEL,
            "batch": batch,
            "input_gb": batch * OOM_INPUT_BYTES / 1e9,
            "activation_gb": batch * OOM_ACTIVATION_BYTES / 1e9,
            "limit_gb": limit / 1e9,
            "outcome": outcome,
            "reason": reason,
        }
    )
    cut = proc.timed_out and outcome is None
    if not cut and (outcome != "skipped" or not reason or "out of memory" not in str(reason).lower()):
        problems.append(f"expected a skip 'out of memory', got {outcome!r} ({reason})")
    res.summary = f"{outcome}: {str(reason)[:160]}"
    return settle(res, problems, cut)


def step_xdist(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    gpu = plan.kind == "gpu"
    n = " ".join(plan.xdist_args)
    if not ctx.help_read:
        return StepResult("xdist", FAIL, f"{' '.join(plan.xdist_args)}", summary=HELP_NOT_READ)
    allow = plan.xdist_allow if plan.xdist_allow in ctx.help_text else None
    criterion = f"{n} without {plan.xdist_allow}: refused (usage error, exit 4); " if allow else ""
    criterion += f"{n} {allow or ''}: every record passed" + (", every record on cuda:0 (one GPU)" if gpu else "")
    res = StepResult("xdist", PASS, criterion)
    problems: list[str] = []
    notes: list[str] = []
    deadline = time.monotonic() + budget
    if allow:
        # Two workers on one device disturb each other: the plugin must refuse unless asked.
        refused = run_pytest(
            ctx, "xdist-refused", plan.xdist_models[:1], plan.xdist_batches[:1], min(budget, 30), *plan.xdist_args
        )[0]
        if refused.timed_out:
            return settle(res, [], cut=True)
        log = refused.text()
        if refused.rc != 4 or allow not in log:
            problems.append(f"without {allow}: exit {refused.rc}, expected a usage error (4) naming {allow}")
        else:
            notes.append(f"refused without {allow}")
    else:
        notes.append(f"{plan.xdist_allow} not in this version: no sharing guard to check")
    proc, records = run_pytest(
        ctx,
        "xdist",
        plan.xdist_models,
        plan.xdist_batches,
        max(1.0, deadline - time.monotonic()),
        *plan.xdist_args,
        *([allow] if allow else []),
        max_time=min(plan.max_time, 1.0),
        quiet=False,
    )
    problems += [p for p in [proc_problem(proc, "pytest")] if p]
    problems += expect_records(records, plan.xdist_models, plan.xdist_batches, missing_ok=proc.timed_out)
    log = proc.text()
    workers = sorted({w for w in ("gw0", "gw1", "gw2", "gw3") if f"[{w}]" in log})
    devices = sorted({str(r.get("device")) for r in records})
    if gpu and records and devices != ["cuda:0"]:
        problems.append(f"devices {devices}, expected only cuda:0")
    for r in records:
        res.rows.append(
            {
                "model": r.get("model"),
                "batch": r.get("batch_size"),
                "device": r.get("device"),
                "median_ms": median_of(r),
                "outcome": r.get("outcome"),
            }
        )
    res.summary = "; ".join(
        notes + [f"{len(records)} records on {','.join(devices) or '-'}", f"workers seen: {','.join(workers) or '-'}"]
    )
    return settle(res, problems, proc.timed_out)


def _native_bf16() -> bool:
    from pytest_dnnbench.device import missing_bf16, read_cpu_flags

    return missing_bf16(read_cpu_flags()) is None


def step_lowp(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    p = plan.lowp_precision
    res = StepResult("lowp", PASS, f"{p} + channels-last: records passed with precision {p}, channels_last true")
    proc, records = run_pytest(
        ctx, "lowp", plan.lowp_models, plan.lowp_batches, budget, f"--dnn-precision={p}", "--dnn-channels-last"
    )
    problems = [x for x in [proc_problem(proc, "pytest")] if x]
    problems += expect_records(records, plan.lowp_models, plan.lowp_batches, missing_ok=proc.timed_out)
    for r in records:
        if r.get("precision") != p or r.get("channels_last") is not True:
            problems.append(
                f"{r.get('model')} bs{r.get('batch_size')}: precision {r.get('precision')}, "
                f"channels_last {r.get('channels_last')}"
            )
        res.rows.append(
            {
                "model": r.get("model"),
                "batch": r.get("batch_size"),
                "fp32_ms": None,  # the main run's, filled in at the end (main runs later in call A)
                "lowp_cl_ms": median_of(r),
                "speedup": None,
                "outcome": r.get("outcome"),
            }
        )
    res.summary = f"{len(records)} records"
    return settle(res, problems, proc.timed_out)


def _modes_step(
    ctx: Ctx,
    budget: float,
    name: str,
    mode: str,
    models: Sequence[str],
    batches: Sequence[int],
    extra: Sequence[str],
    criterion: str,
    rehearsal: str = "",
) -> StepResult:
    """One run with ``--dnn-modes=mode``: records passed in that mode; each non-eager output checked
    against eager; for compile, the record's torch.compile mode is the one asked for."""
    res = StepResult(name, PASS, criterion)
    proc, records = run_pytest(ctx, name, models, batches, budget, f"--dnn-modes={mode}", *extra)
    problems = [p for p in [proc_problem(proc, "pytest")] if p]
    mine = [r for r in records if r.get("mode") == mode]
    problems += expect_records(mine, models, batches, missing_ok=proc.timed_out)
    compile_mode = next((a.split("=", 1)[1] for a in extra if a.startswith("--dnn-compile-mode=")), None)
    for r in mine:
        outputs = [c for c in r.get("checks") or [] if isinstance(c, dict) and c.get("metric") == "output"]
        if mode != "eager" and not (outputs and all(c.get("passed") for c in outputs)):
            problems.append(f"{r.get('model')}: output check against eager {'failed' if outputs else 'missing'}")
        options = (r.get("runtime") or {}).get("options") or {}
        if compile_mode is not None and options.get("mode") != compile_mode:
            problems.append(f"{r.get('model')}: runtime mode {options.get('mode')}, expected {compile_mode}")
        res.rows.append(
            {
                "model": r.get("model"),
                "batch": r.get("batch_size"),
                "mode": r.get("mode"),
                "median_ms": median_of(r),
                "eager_main_ms": None,  # filled in at the end from the main run
                "speedup": None,
                "output_vs_eager": outputs[0].get("measured") if outputs else None,
                "prepare_s": r.get("prepare_s"),
                "runtime_mode": options.get("mode"),
                "outcome": r.get("outcome"),
            }
        )
    res.summary = f"{len(mine)} records in mode {mode}" + (f" ({rehearsal})" if rehearsal else "")
    preps = [r["prepare_s"] for r in res.rows if r.get("prepare_s") is not None]
    if preps:
        res.summary += f"; preparation {min(preps):.1f}-{max(preps):.1f} s"
    return settle(res, problems, proc.timed_out)


def step_cudagraph(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    mode = plan.graph_mode
    criterion = f"--dnn-modes={mode} at batch 1: records passed in mode {mode}"
    if not ctx.help_read:
        return StepResult("cudagraph", FAIL, criterion, summary=HELP_NOT_READ)
    if "--dnn-modes" not in ctx.help_text:
        return StepResult("cudagraph", NA, criterion, summary="not available in this version (no --dnn-modes)")
    rehearsal = "CPU rehearsal: CUDA graphs need a GPU" if mode == "eager" else ""
    return _modes_step(ctx, budget, "cudagraph", mode, plan.graph_models, [1], (), criterion, rehearsal)


def step_compile(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    batches = ",".join(str(b) for b in plan.compile_batches)
    extra: tuple[str, ...] = ()
    if plan.compile_mode is None:
        mode = "eager"
        criterion = f"CPU rehearsal, --dnn-modes=eager at batch {batches}: records passed"
        rehearsal = "CPU rehearsal: one torch.compile test takes about 47 s on 2 cores"
    else:
        mode, extra = "compile", (f"--dnn-compile-mode={plan.compile_mode}",)
        criterion = (
            f"--dnn-modes=compile --dnn-compile-mode={plan.compile_mode} at batch {batches}: records passed, "
            "output checked against eager"
        )
        rehearsal = ""
    if not ctx.help_read:
        return StepResult("compile", FAIL, criterion, summary=HELP_NOT_READ)
    if "--dnn-modes" not in ctx.help_text or (extra and "--dnn-compile-mode" not in ctx.help_text):
        return StepResult("compile", NA, criterion, summary="not available in this version (no --dnn-compile-mode)")
    return _modes_step(
        ctx, budget, "compile", mode, plan.compile_models, plan.compile_batches, extra, criterion, rehearsal
    )


def step_isolation(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    criterion = "--dnn-isolate=process: records passed, isolation 'process', memory total measured"
    if not ctx.help_read:
        return StepResult("isolation", FAIL, criterion, summary=HELP_NOT_READ)
    if "--dnn-isolate" not in ctx.help_text:
        return StepResult("isolation", NA, criterion, summary="not available in this version (no --dnn-isolate)")
    res = StepResult("isolation", PASS, criterion)
    models, batches = plan.isolation_models, plan.isolation_batches
    proc, records = run_pytest(ctx, "isolation", models, batches, budget, "--dnn-isolate=process", *plan.main_args)
    problems = [p for p in [proc_problem(proc, "pytest")] if p]
    problems += expect_records(records, models, batches, missing_ok=proc.timed_out)
    for r in records:
        if r.get("isolation") != "process":
            problems.append(f"{r.get('model')} bs{r.get('batch_size')}: isolation {r.get('isolation')!r}")
        if r.get("outcome") == "passed" and total_of(r) is None:
            problems.append(f"{r.get('model')} bs{r.get('batch_size')}: no memory total")
        res.rows.append(
            {
                "model": r.get("model"),
                "batch": r.get("batch_size"),
                "median_ms": median_of(r),
                "total_mib": _mib(total_of(r)),
                "memory_method": short_method(r.get("memory_method")),
                "main_ms": None,  # filled in at the end from the main run
                "main_total_mib": None,
                "outcome": r.get("outcome"),
            }
        )
    res.summary = f"{len(records)} records, isolation {','.join(sorted({str(r.get('isolation')) for r in records}))}"
    return settle(res, problems, proc.timed_out)


def step_order(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    m, first = plan.order_model, plan.order_first
    res = StepResult(
        "order",
        PASS,
        f"{m} after {first} in one process / {m} alone: memory total in {plan.order_ratio.text()} (latency: info)",
    )
    deadline = time.monotonic() + budget
    # The run alone is one model, the run after two: the first may take up to 55 % of the budget.
    alone_proc, alone = run_pytest(ctx, "order-alone", [m], plan.order_batches, budget * 0.55, *plan.main_args)
    if alone_proc.timed_out:
        return settle(res, [], cut=True)
    after_proc, after = run_pytest(
        ctx, "order-after", [first, m], plan.order_batches, max(1.0, deadline - time.monotonic()), *plan.main_args
    )
    problems = [
        p for p in [proc_problem(alone_proc, "pytest (alone)"), proc_problem(after_proc, "pytest (after)")] if p
    ]
    problems += expect_records(alone, [m], plan.order_batches)
    problems += expect_records(after, [first, m], plan.order_batches, missing_ok=after_proc.timed_out)
    models_in_order = [str(r.get("model")) for r in after]
    if first in models_in_order and m in models_in_order and models_in_order.index(m) < models_in_order.index(first):
        problems.append(f"{m} ran before {first}: the order asked for was not kept ({models_in_order})")
    a_by, b_by = by_key(alone), by_key(after)
    for b in plan.order_batches:
        ra, rb = a_by.get((m, b)), b_by.get((m, b))
        ta, tb = total_of(ra), total_of(rb)
        ratio = tb / ta if ta and tb else None
        la, lb = median_of(ra), median_of(rb)
        verdict = NOT_RUN if rb is None and after_proc.timed_out else PASS if plan.order_ratio.holds(ratio) else FAIL
        res.rows.append(
            {
                "model": m,
                "batch": b,
                "alone_total_mib": _mib(ta),
                "after_total_mib": _mib(tb),
                "ratio": ratio,
                "alone_ms": la,
                "after_ms": lb,
                "latency_ratio": lb / la if la and lb else None,
                "alone_method": short_method((ra or {}).get("memory_method")),
                "after_method": short_method((rb or {}).get("memory_method")),
                "verdict": verdict,
            }
        )
        if verdict == FAIL:
            problems.append(f"{m} bs{b}: memory after {first} / alone " + (f"{ratio:.3f}" if ratio else "missing"))
    ratios = [r["ratio"] for r in res.rows if r.get("ratio")]
    res.summary = f"memory total after/alone {', '.join(f'{x:.3f}' for x in ratios) or '-'}; latency after/alone " + (
        ", ".join(f"{r['latency_ratio']:.3f}" for r in res.rows if r.get("latency_ratio")) or "-"
    )
    return settle(res, problems, after_proc.timed_out)


def judge_tf32(errors: Mapping[str, float | None], limit: float) -> tuple[bool, str]:
    """Whether fp32 work ran in IEEE fp32: each relative error (norm of fp32 - fp64 over norm of fp64)
    below ``limit``. IEEE fp32 gives about 1e-7 to 1e-6 here, TF32 (10-bit mantissa) about 1e-4 to 1e-3."""
    missing = [k for k in ("conv", "matmul") if errors.get(k) is None]
    if missing:
        return False, f"no figure for {', '.join(missing)}"
    figures = {k: float(v) for k, v in errors.items() if v is not None}
    text = ", ".join(f"{k} {v:.1e}" for k, v in figures.items())
    high = [k for k, v in figures.items() if not v < limit]
    if high:
        return False, f"{text}: {', '.join(high)} at TF32 level (>= {limit:.0e}): fp32 work ran in reduced precision"
    return True, f"{text}: IEEE fp32 (< {limit:.0e})"


def step_tf32(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    gpu = plan.kind == "gpu"
    res = StepResult(
        "tf32",
        PASS,
        f"fp32 conv and matmul under the plugin's settings vs fp64: relative error < {plan.tf32_limit:.0e} (IEEE)"
        if gpu
        else "TF32 is CUDA-only (n/a); the same comparison rehearsed on the CPU",
    )
    proc = run_logged(
        [ctx.python, str(Path(__file__).resolve()), "--worker", "tf32"],
        ctx.out / "logs" / "tf32.log",
        budget,
        stdin_text=json.dumps({"device": plan.torch_device}),
    )
    answer = _answer(proc.log)
    if answer is None and proc.timed_out:
        return settle(res, [], cut=True)
    problem = proc_problem(proc, "tf32 worker")
    if answer is None or problem or "error" in answer:
        return settle(res, [(answer or {}).get("error") or problem or "no answer"])
    res.data = answer
    ok, text = judge_tf32(answer.get("plugin_settings") or {}, plan.tf32_limit)
    on = answer.get("tf32_on")
    contrast = ""
    if on:
        on_ok, on_text = judge_tf32(on, plan.tf32_limit)
        contrast = f"; with TF32 on (--dnn-tf32): {on_text.split(':')[0]}" + (
            " (no difference: this check could not see TF32 here)" if on_ok else ""
        )
    flags = answer.get("flags") or {}
    res.rows.append({"settings": "plugin (TF32 off)", **(answer.get("plugin_settings") or {})})
    if on:
        res.rows.append({"settings": "--dnn-tf32", **on})
    if not gpu:
        res.status = NA
        res.summary = f"TF32 exists on CUDA (Ampere and newer) only; CPU rehearsal: {text}"
        return res if ok else settle(res, [f"CPU fp32 not IEEE: {text}"])
    res.summary = f"{text}{contrast}; flags matmul {flags.get('tf32_matmul')}, cudnn {flags.get('tf32_cudnn')}"
    return settle(res, [] if ok else [text])


def step_env_end(ctx: Ctx, budget: float) -> StepResult:
    if ctx.plan.kind == "gpu":
        state = nvml_state()
        ctx.environment["gpu_end"] = state
        res = StepResult(
            "env-end",
            PASS,
            "clocks and throttle reasons read (thermal/power slowdown is reported, not judged)",
            summary=state_line(state),
            data=state,
        )
        if "sm_clock_mhz" not in state:
            res.status = FAIL
        bad = BAD_THROTTLE & set(state.get("throttle_reasons") or [])
        if bad:
            res.summary += f"; WARNING: slowed down by {','.join(sorted(bad))} at the end: timings may be low"
        return res
    state = cpu_state()
    ctx.environment["cpu_end"] = state
    return StepResult("env-end", PASS, "CPU described", summary=state_line(state), data=state)


Step = Callable[[Ctx, float], StepResult]
STEPS: dict[str, Step] = {
    "env-start": step_env_start,
    "cudagraph": step_cudagraph,
    "lowp": step_lowp,
    "oom": step_oom,
    "xdist": step_xdist,
    "isolation": step_isolation,
    "compile": step_compile,
    "main": step_main,
    "records": step_records,
    "loop": step_loop,
    "rerun": step_rerun,
    "memory": step_memory,
    "order": step_order,
    "tf32": step_tf32,
    "env-end": step_env_end,
}
#: Kept free at the end for env-end and the tables.
RESERVE_S = 3.0
#: env-start and env-end always run (quick, and the table needs them), each with its cap or this budget.
ALWAYS_BUDGET_S = 30.0


def fill_from_main(results: Sequence[StepResult], ctx: Ctx) -> None:
    """The comparisons with the main run's eager fp32 records, made once main has run (it runs after
    lowp, cudagraph, compile and isolation in call A)."""
    main = ctx.main_records
    if not main:
        return
    for res in results:
        if res.name == "lowp":
            for row in res.rows:
                base = median_of(main.get((str(row["model"]), int(row["batch"] or 0))))
                row["fp32_ms"] = base
                low = row.get("lowp_cl_ms")
                row["speedup"] = base / low if base and low else None
        elif res.name in ("cudagraph", "compile"):
            for row in res.rows:
                base = median_of(main.get((str(row["model"]), int(row["batch"] or 0))))
                row["eager_main_ms"] = base
                ms = row.get("median_ms")
                row["speedup"] = base / ms if base and ms else None
        elif res.name == "isolation":
            for row in res.rows:
                rec = main.get((str(row["model"]), int(row["batch"] or 0)))
                row["main_ms"], row["main_total_mib"] = median_of(rec), _mib(total_of(rec))
        else:
            continue
        speedups = [r["speedup"] for r in res.rows if r.get("speedup")]
        if speedups:
            res.summary += f"; speed-up over main's eager fp32 {min(speedups):.2f}x-{max(speedups):.2f}x"


# -- workers (subprocesses of this script) --------------------------------------------------------


class Interleaved:
    """Wraps the plugin's backend: every call the plugin times is paired with one loop call.

    The order alternates every call (loop first, then plugin first), as in
    ``benchmarks/plugin_vs_loop.py``. The loop times the very call the plugin times (the same
    model and the same input tensor) in the plainest way: two CUDA events and a
    ``torch.cuda.synchronize()``, or ``perf_counter`` around the call on the CPU.
    """

    def __init__(self, backend: Any, device: str):
        self.backend = backend
        self.device = device
        self.loop_samples: list[float] = []
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def memory_probe(self, call: Callable[[], object] | None = None) -> Any:
        """The plugin's probe on CUDA (cheap, and around the timed calls); none on the CPU.

        The CPU's memory pass is one more call after the timed ones, with the allocator in
        another mode: it changes no timing, and it costs half a second per row on 2 cores.
        """
        if self.device == "cpu":
            return _NoMemory()
        return self.backend.memory_probe(call)

    def timer(self, fn: Callable[[], object]) -> Callable[[], float]:
        plugin_timer = self.backend.timer(fn)
        loop = hand_timer(self.device, fn)

        def once() -> float:
            self.calls += 1
            if self.calls % 2:
                self.loop_samples.append(loop())
                return float(plugin_timer())
            value = float(plugin_timer())
            self.loop_samples.append(loop())
            return value

        return once


class _NoMemory:
    def start(self) -> None:
        pass

    def stop(self) -> tuple[dict[str, int | None], str]:
        return {"total": None}, "not measured (loop step)"


def hand_timer(device: str, fn: Callable[[], object]) -> Callable[[], float]:
    if device == "cpu":

        def once_cpu() -> float:
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) * 1e3

        return once_cpu
    import torch

    start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]

    def once_cuda() -> float:
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return float(start.elapsed_time(end))

    return once_cuda


def worker_loop(request: dict[str, Any]) -> int:
    import torch

    from pytest_dnnbench.measure.backends import make_backend
    from pytest_dnnbench.measure.bench import BenchSettings, apply_process_settings, measure, prepare_model
    from pytest_dnnbench.measure.timing import SamplingPolicy
    from pytest_dnnbench.registry import REGISTRY, build_model

    device = request["device"]
    max_samples = int(request["max_samples"])
    policy = SamplingPolicy(
        max_time_s=float(request["max_time"]),
        max_samples=max_samples,
        min_samples=min(10, max_samples),
        warmup_max=3 if max_samples < 50 else 50,
    )
    settings = BenchSettings(device=device, policy=policy)
    apply_process_settings(settings)
    backend = make_backend(device)
    out = Path(request["out"])
    for name in request["models"]:
        spec = REGISTRY.get(name)
        try:
            torch.manual_seed(settings.seed)
            model = prepare_model(build_model(spec), settings)
        except Exception as exc:  # noqa: BLE001 - one broken model does not stop the others
            for b in request["batches"]:
                _append(out, {"model": name, "batch": b, "error": f"build: {type(exc).__name__}: {exc}"[:300]})
            continue
        for batch in request["batches"]:
            row: dict[str, Any] = {"model": name, "batch": batch}
            try:
                backend.before_measure()
                wrapped = Interleaved(backend, device)
                m = measure(model, batch, spec.input_size, settings, wrapped)
                n = m.timing.stats.n
                loop_timed = wrapped.loop_samples[-n:]  # the loop calls paired with the plugin's timed calls
                plugin_ms, loop_ms = float(m.timing.stats.median), float(statistics.median(loop_timed))
                row.update(plugin_ms=plugin_ms, loop_ms=loop_ms, ratio=plugin_ms / loop_ms, n=n, capped=m.timing.capped)
            except Exception as exc:  # noqa: BLE001
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
            _append(out, row)
            print(json.dumps(row), flush=True)
        del model
        gc.collect()
        backend.release()
    return 0


def _append(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


@contextlib.contextmanager
def file_lock(path: str) -> Iterator[None]:
    """One fresh process at a time measures (cuDNN's autotuner must not see another one running)."""
    import fcntl

    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def worker_memory(request: dict[str, Any]) -> int:
    """A fresh process that holds only the model and its batch: the figure the record's total must match."""
    import torch

    from pytest_dnnbench.measure.bench import BenchSettings, apply_process_settings, make_input, prepare_model
    from pytest_dnnbench.measure.memory import malloc_trim, read_status, reset_peak_rss
    from pytest_dnnbench.registry import REGISTRY, build_model

    device = request["device"]
    kwargs: dict[str, Any] = {"cudnn_benchmark": bool(request["cudnn_benchmark"]), "seed": int(request["seed"])}
    if "tf32" in {f.name for f in dataclasses.fields(BenchSettings)}:
        kwargs["tf32"] = bool(request.get("tf32", False))  # the plugin's default: off, even for convolutions
    settings = BenchSettings(device=device, **kwargs)
    apply_process_settings(settings)
    spec = REGISTRY.get(request["model"])
    batch = int(request["batch"])
    torch.manual_seed(settings.seed)
    model = build_model(spec)  # on the CPU, before the lock: only the measuring part is serialised
    answer: dict[str, Any] = {"model": spec.name, "batch": batch}
    cuda = device.startswith("cuda")
    with file_lock(request["lock"]):
        # Only this process creates a CUDA context while it holds the lock: the NVML process that
        # appears is this one, even where NVML sees another PID namespace than os.getpid().
        before_used = _device_used() if cuda else None
        before_pids = set(_nvml_processes()) if cuda else set()
        model = prepare_model(model, settings)
        x = make_input(batch, spec.input_size, settings)
        timer = hand_timer(device, lambda: model(x))
        with torch.inference_mode():
            for _ in range(max(1, int(request["warmup"]))):
                timer()
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()  # as the plugin does: the autotuner's trial workspaces are not the model's
                torch.cuda.reset_peak_memory_stats()
            else:
                gc.collect()
                malloc_trim()
                reset_peak_rss()
            # The memory figure does not grow with the number of calls (the plan caps their number).
            for _ in range(max(1, int(request["timed"]))):
                timer()
            if cuda:
                torch.cuda.synchronize()
        if cuda:
            procs = _nvml_processes()
            new = [pid for pid in procs if pid not in before_pids]
            pid = os.getpid() if os.getpid() in procs else (new[0] if len(new) == 1 else None)
            per_process = procs.get(pid) if pid is not None else None
            after_used = _device_used()
            detail = {
                "allocator_peak": int(torch.cuda.max_memory_allocated()),
                "reserved_peak": int(torch.cuda.max_memory_reserved()),
                "device_used_delta": None if before_used is None or after_used is None else after_used - before_used,
                "nvml_pid": pid,
                "pid": os.getpid(),
            }
            if per_process is not None:
                answer.update(total=per_process, method="NVML per-process memory after the timed calls")
            elif detail["device_used_delta"] is not None:
                answer.update(
                    total=detail["device_used_delta"],
                    method="NVML device memory used, after minus before this process (NVML shows no "
                    "per-process figure here)",
                )
            else:
                answer.update(total=None, error="NVML gives no figure for this process")
        else:
            st = read_status()
            detail = {"VmHWM": st.get("VmHWM"), "VmRSS": st.get("VmRSS")}
            answer.update(
                total=st.get("VmHWM") or st.get("VmRSS"),
                method="peak RSS of a fresh process during the timed calls (VmHWM reset after warm-up)",
            )
        answer["detail"] = detail
    sys.stdout.write("\n" + ANSWER + json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0


def _nvml_handle() -> Any:
    import pynvml

    pynvml.nvmlInit()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    if visible.startswith("GPU-"):
        return pynvml, pynvml.nvmlDeviceGetHandleByUUID(visible)
    return pynvml, pynvml.nvmlDeviceGetHandleByIndex(int(visible) if visible.isdigit() else 0)


def _nvml_processes() -> dict[int, int | None]:
    """PID -> GPU memory of the compute processes NVML lists on the device (empty where it cannot)."""
    try:
        nv, handle = _nvml_handle()
        procs = nv.nvmlDeviceGetComputeRunningProcesses(handle) or []
    except Exception:  # noqa: BLE001
        return {}
    out: dict[int, int | None] = {}
    for p in procs:
        used = getattr(p, "usedGpuMemory", None)
        out[int(p.pid)] = int(used) if used is not None else None
    return out


def _device_used() -> int | None:
    try:
        nv, handle = _nvml_handle()
        return int(nv.nvmlDeviceGetMemoryInfo(handle).used)
    except Exception:  # noqa: BLE001
        return None


def numeric_errors(device: str, batch: int = 4, size: int = 1024) -> dict[str, float]:
    """Relative errors (norm of the difference over norm of the reference) of an fp32 convolution and an
    fp32 matrix product against the same operations in fp64 on the same fp32-rounded inputs, on
    ``device``, under whatever TF32 settings are in force."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 64, 56, 56, generator=g).to(device)
    w = (torch.randn(64, 64, 3, 3, generator=g) / 24).to(device)
    a = torch.randn(size, size, generator=g).to(device)
    b = torch.randn(size, size, generator=g).to(device)

    def rel(y32: torch.Tensor, y64: torch.Tensor) -> float:
        return float(torch.linalg.vector_norm(y32.double() - y64) / torch.linalg.vector_norm(y64))

    with torch.inference_mode():
        conv = rel(F.conv2d(x, w, padding=1), F.conv2d(x.double(), w.double(), padding=1))
        matmul = rel(a @ b, a.double() @ b.double())
    return {"conv": conv, "matmul": matmul}


def worker_tf32(request: dict[str, Any]) -> int:
    """An fp32 convolution and matrix product under the plugin's process settings (TF32 off by default),
    then with the plugin's --dnn-tf32 setting, against fp64."""
    import torch

    from pytest_dnnbench.measure.bench import BenchSettings, apply_process_settings, read_tf32_flags, set_tf32

    device = request["device"]
    answer: dict[str, Any] = {"device": device}
    try:
        apply_process_settings(BenchSettings(device=device))  # the plugin's defaults, as a plain run has them
        answer["flags"] = read_tf32_flags(torch)
        answer["plugin_settings"] = numeric_errors(device)
        if device.startswith("cuda"):
            set_tf32(True)
            answer["tf32_on"] = numeric_errors(device)
            answer["device_name"] = torch.cuda.get_device_name(device)
    except Exception as exc:  # noqa: BLE001 - reported as the step's failure
        answer["error"] = f"{type(exc).__name__}: {exc}"[:300]
    sys.stdout.write("\n" + ANSWER + json.dumps(answer, default=str) + "\n")
    sys.stdout.flush()
    return 0


# -- the tables -----------------------------------------------------------------------------------


def fmt(x: Any, spec: str = ".3f") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def detail_tables(results: Sequence[StepResult], plan: Plan) -> list[str]:
    by = {r.name: r for r in results}
    lines: list[str] = []
    loop = by.get("loop")
    if loop and loop.rows:
        lines += [
            "",
            (
                f"plugin / loop, interleaved in one process (criterion: {plan.loop_ratio.text()} where median "
                f">= {plan.loop_min_ms:g} ms; below: info)"
            ),
            f"{'model':<18} {'batch':>5} {'plugin ms':>10} {'loop ms':>10} {'n':>5} {'ratio':>7}  verdict",
        ]
        for r in loop.rows:
            lines.append(
                f"{r['model']:<18} {r['batch']:>5} {fmt(r.get('plugin_ms')):>10} {fmt(r.get('loop_ms')):>10} "
                f"{fmt(r.get('n')):>5} {fmt(r.get('ratio')):>7}  {r.get('verdict')}"
                + (f"  {r['error']}" if r.get("error") else "")
            )
    records = by.get("records")
    if records and records.rows:
        lines += [
            "",
            "memory breakdown per main record (MiB), gpu_state and energy (criterion: see the records step)",
            f"{'model':<18} {'batch':>5} {'total':>8} {'context':>8} {'resv-alloc':>10} {'method':<18} "
            f"{'samples':>7} {'during':>6} {'J/image':>9}  verdict",
        ]
        for r in records.rows:
            lines.append(
                f"{r['model']:<18} {r['batch']:>5} {fmt(r.get('total_mib'), '.1f'):>8} "
                f"{fmt(r.get('context_mib'), '.1f'):>8} {fmt(r.get('reserved_minus_allocator_mib'), '.1f'):>10} "
                f"{fmt(r.get('memory_method')):<18} {fmt(r.get('gpu_state_samples')):>7} "
                f"{fmt(r.get('during_timed_calls')):>6} {fmt(r.get('joules_per_image'), '.4g'):>9}  {r.get('verdict')}"
            )
        data = records.data
        if data.get("nvml_pid_method") or data.get("cuda_context_method"):
            context = fmt(_mib(data.get("cuda_context_bytes")), ".1f")
            lines.append(
                f"NVML PID {data.get('nvml_pid')}: {data.get('nvml_pid_method')}; "
                f"context {context} MiB ({data.get('cuda_context_method')})"
            )
    mem = by.get("memory")
    if mem and mem.rows:
        lines += [
            "",
            f"memory total: record (this machine) / fresh process (criterion: {plan.memory_ratio.text()})",
            f"{'model':<18} {'batch':>5} {'record MiB':>11} {'fresh MiB':>10} {'ratio':>7}  verdict",
        ]
        for r in mem.rows:
            lines.append(
                f"{r['model']:<18} {r['batch']:>5} {fmt(r.get('record_total_mib'), '.1f'):>11} "
                f"{fmt(r.get('fresh_mib'), '.1f'):>10} {fmt(r.get('ratio')):>7}  {r.get('verdict')}"
                + (f"  {r['error']}" if r.get("error") else "")
            )
    rerun = by.get("rerun")
    if rerun and rerun.rows:
        lines += [
            "",
            (
                f"between runs: second pytest process / main run, median (criterion: {plan.rerun_ratio.text()} "
                f"at batch {plan.rerun_batch}; other batches: info)"
            ),
            f"{'model':<18} {'batch':>5} {'first ms':>10} {'second ms':>10} {'ratio':>7}  verdict",
        ]
        for r in rerun.rows:
            lines.append(
                f"{r['model']:<18} {r['batch']:>5} {fmt(r.get('first_ms')):>10} {fmt(r.get('second_ms')):>10} "
                f"{fmt(r.get('ratio')):>7}  {r.get('verdict')}"
            )
    order = by.get("order")
    if order and order.rows:
        lines += [
            "",
            f"order: {plan.order_model} after {plan.order_first} in one process / alone "
            f"(criterion: memory total in {plan.order_ratio.text()}; latency: info)",
            f"{'model':<18} {'batch':>5} {'alone MiB':>10} {'after MiB':>10} {'ratio':>7} {'alone ms':>9} "
            f"{'after ms':>9}  verdict",
        ]
        for r in order.rows:
            lines.append(
                f"{r['model']:<18} {r['batch']:>5} {fmt(r.get('alone_total_mib'), '.1f'):>10} "
                f"{fmt(r.get('after_total_mib'), '.1f'):>10} {fmt(r.get('ratio')):>7} {fmt(r.get('alone_ms')):>9} "
                f"{fmt(r.get('after_ms')):>9}  {r.get('verdict')}"
            )
    lowp = by.get("lowp")
    if lowp and lowp.rows:
        lines += [
            "",
            f"{plan.lowp_precision} + channels-last against the main run's fp32 (info)",
            f"{'model':<18} {'batch':>5} {'fp32 ms':>10} {plan.lowp_precision + '+cl ms':>10} {'speed-up':>8}",
        ]
        for r in lowp.rows:
            lines.append(
                f"{r['model']:<18} {r['batch']:>5} {fmt(r.get('fp32_ms')):>10} {fmt(r.get('lowp_cl_ms')):>10} "
                f"{fmt(r.get('speedup'), '.2f'):>8}"
            )
    modes = [by[n] for n in ("cudagraph", "compile") if n in by and by[n].rows]
    if modes:
        lines += [
            "",
            "deployment modes against the main run's eager fp32 (info)",
            f"{'model':<18} {'batch':>5} {'mode':<10} {'ms':>9} {'eager ms':>9} {'speed-up':>8} {'prepare s':>9} "
            f"{'output':>9}",
        ]
        for res in modes:
            for r in res.rows:
                lines.append(
                    f"{r['model']:<18} {r['batch']:>5} {fmt(r.get('mode')):<10} {fmt(r.get('median_ms')):>9} "
                    f"{fmt(r.get('eager_main_ms')):>9} {fmt(r.get('speedup'), '.2f'):>8} "
                    f"{fmt(r.get('prepare_s'), '.1f'):>9} {fmt(r.get('output_vs_eager'), '.1e'):>9}"
                )
    iso = by.get("isolation")
    if iso and iso.rows:
        lines += [
            "",
            "--dnn-isolate=process against the main run (info)",
            f"{'model':<18} {'batch':>5} {'ms':>9} {'main ms':>9} {'total MiB':>10} {'main MiB':>9}  method",
        ]
        for r in iso.rows:
            lines.append(
                f"{r['model']:<18} {r['batch']:>5} {fmt(r.get('median_ms')):>9} {fmt(r.get('main_ms')):>9} "
                f"{fmt(r.get('total_mib'), '.1f'):>10} {fmt(r.get('main_total_mib'), '.1f'):>9}  "
                f"{r.get('memory_method')}"
            )
    return lines


def versions_block(ctx: Ctx) -> list[str]:
    """The versions the run actually used: the env-start probe's (as the pytest subprocesses import
    them), the driver from NVML, and the main run's results file where it says otherwise."""
    env = ctx.environment
    probe = env.get("probe_versions") or env.get("versions") or {}
    pe = ctx.main_environment
    gs = env.get("gpu_start") or {}
    items: list[tuple[str, Any, Any]] = [
        ("python", probe.get("python"), pe.get("python")),
        ("torch", env.get("torch_version") or probe.get("torch"), pe.get("torch")),
        ("CUDA (torch)", env.get("torch_cuda"), pe.get("cuda") or pe.get("torch_cuda_build")),
        ("cuDNN", env.get("cudnn"), pe.get("cudnn")),
        ("driver", gs.get("driver"), pe.get("driver")),
        ("CUDA (driver)", gs.get("cuda_driver_version"), None),
        ("pytest", probe.get("pytest"), None),
        ("pytest-benchmark", probe.get("pytest-benchmark"), None),
        ("pytest-xdist", probe.get("pytest-xdist"), None),
        ("pytest-dnnbench", probe.get("pytest-dnnbench"), pe.get("plugin_version")),
        ("timm", probe.get("timm"), pe.get("timm")),
        ("torchvision", probe.get("torchvision"), pe.get("torchvision")),
        ("nvidia-ml-py", probe.get("nvidia-ml-py"), None),
        ("thop", probe.get("ultralytics-thop"), pe.get("thop")),
        ("pretrainedmodels", probe.get("pretrainedmodels"), pe.get("pretrainedmodels")),
    ]
    gpu = ctx.plan.kind == "gpu"
    if not gpu:
        items = [item for item in items if not item[0].startswith(("driver", "CUDA (driver)"))]
    parts = []
    for name, value, recorded in items:
        text = f"{name} {fmt(value)}"
        if recorded is not None and value is not None and str(recorded) != str(value):
            text += f" (results file: {recorded})"
        parts.append(text)
    lines = [f"versions used (env-start probe in a subprocess{'; driver from NVML' if gpu else ''}):"]
    line = " "
    for part in parts:
        if len(line) + len(part) + 3 > 100:
            lines.append(line)
            line = " "
        line += f" {part} |"
    lines.append(line.rstrip(" |"))
    return lines


def summary_table(results: Sequence[StepResult], ctx: Ctx) -> list[str]:
    plan = ctx.plan
    env = ctx.environment
    pe = ctx.main_environment
    call = f"call {plan.call}" if plan.call != "all" else "all steps"
    if plan.kind == "gpu":
        gs = env.get("gpu_start") or {}
        head = (
            f"GPU acceptance ({call}): {gs.get('name') or pe.get('device_name')}, driver {gs.get('driver')}, "
            f"CUDA {env.get('torch_cuda') or pe.get('cuda')}, cuDNN {env.get('cudnn') or pe.get('cudnn')}, "
            f"torch {env.get('torch_version') or (env.get('versions') or {}).get('torch')}"
        )
    else:
        cs = env.get("cpu_start") or {}
        head = (
            f"CPU mode (--cpu, {call}): {cs.get('cpu')}, {cs.get('cpu_count')} cores, "
            f"torch {env.get('torch_version') or (env.get('versions') or {}).get('torch')}, "
            f"{env.get('torch_threads')} thread(s)"
        )
    lines = [
        "",
        "=" * 100,
        head,
        *versions_block(ctx),
        "-" * 100,
        f"{'step':<10} {'verdict':<21} {'time':>6} {'expect':>6}  criterion / result",
        "-" * 100,
    ]
    for r in results:
        expect = f"{r.expected_s:>5.0f}s" if r.expected_s else f"{'':>6}"
        lines.append(f"{r.name:<10} {r.status:<21} {r.seconds:>5.0f}s {expect}  {r.criterion}".rstrip())
        for part in r.summary.splitlines() or [""]:
            if part:
                lines.append(f"{'':<10} {'':<21} {'':>6} {'':>6}  -> {part}")
    verdict = overall(results)
    lines += ["-" * 100, "step seconds (measured; step_seconds.json, for --step-seconds): " + seconds_line(results)]
    not_run = [r.name for r in results if r.status == NOT_RUN]
    if not_run and plan.call == "A":
        lines.append(f"not run here, for call B (--after {ctx.out}): {', '.join(not_run)}")
    lines += [
        f"overall: {verdict}  ({ctx.elapsed():.0f} s of {plan.deadline_s:.0f} s; results in {ctx.out})",
        "=" * 100,
    ]
    return lines


def seconds_line(results: Sequence[StepResult]) -> str:
    return " ".join(f"{r.name}={r.seconds:.0f}" for r in results if r.status != NOT_RUN or r.cut)


def overall(results: Sequence[StepResult]) -> str:
    if any(r.status == FAIL for r in results):
        return FAIL
    if any(r.status == NOT_RUN for r in results):
        return "INCOMPLETE"
    return PASS


def exit_status(results: Sequence[StepResult]) -> int:
    v = overall(results)
    return 0 if v == PASS else 1 if v == FAIL else 2


def write_json(ctx: Ctx, results: Sequence[StepResult], finished: bool) -> None:
    doc = {
        "schema": SCHEMA,
        "mode": ctx.plan.kind,
        "call": ctx.plan.call,
        "finished": finished,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_s": ctx.elapsed(),
        "deadline_s": ctx.plan.deadline_s,
        "overall": overall(results) if finished else None,
        "not_run": [r.name for r in results if r.status == NOT_RUN],
        "main_records_from": ctx.main_origin,
        "expected_seconds_from": ctx.expected_from,
        "plan": asdict(ctx.plan),
        "environment": ctx.environment,
        "steps": [asdict(r) for r in results],
    }
    tmp = ctx.out / "acceptance.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    tmp.replace(ctx.out / "acceptance.json")


# -- measured step durations ----------------------------------------------------------------------


def read_step_seconds(path: Path, kind: str) -> dict[str, float]:
    """Expected seconds per step from a step_seconds.json (ours) or a plain {step: seconds} mapping;
    empty when the file is missing or holds another kind's (gpu/cpu) figures."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    if "steps" in data:
        if data.get("kind") not in (None, kind):
            return {}
        data = data["steps"]
    return {str(k): float(v) for k, v in dict(data).items() if isinstance(v, int | float) and v >= 0}


def measured_seconds(results: Sequence[StepResult], known: Mapping[str, float]) -> dict[str, float]:
    """The expected seconds for the next run: ``known``, replaced by what each step that ran took here.
    A step stopped at its time limit needs more than it ran: at least 1.5 times that, or what was known."""
    out = dict(known)
    for r in results:
        if r.status == NOT_RUN and not r.cut:
            continue
        seconds = round(r.seconds, 1)
        out[r.name] = max(out.get(r.name, 0.0), round(1.5 * seconds, 1)) if r.cut else seconds
    return out


def write_step_seconds(ctx: Ctx, results: Sequence[StepResult]) -> None:
    doc = {
        "schema": STEP_SECONDS_SCHEMA,
        "kind": ctx.plan.kind,
        "device": (ctx.environment.get("gpu_start") or {}).get("name")
        or (ctx.environment.get("cpu_start") or {}).get("cpu"),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "steps": measured_seconds(results, ctx.expected),
        "this_call": {r.name: round(r.seconds, 1) for r in results if r.status != NOT_RUN or r.cut},
    }
    (ctx.out / "step_seconds.json").write_text(json.dumps(doc, indent=1) + "\n")


# -- main -----------------------------------------------------------------------------------------


def run_all(ctx: Ctx, steps: Sequence[str] | None = None) -> list[StepResult]:
    """Run ``steps`` (the call's) in order, each only when its expected duration fits in the time left."""
    names = list(steps) if steps is not None else call_steps(ctx.plan.call)
    results: list[StepResult] = []
    interrupted = False
    for name in names:
        fn = STEPS[name]
        always = name in ("env-start", "env-end")  # quick, and the table needs them
        expected = ctx.expected_s(name)
        if name in ("cudagraph", "compile") and ctx.help_read and "--dnn-modes" not in ctx.help_text:
            expected = 0.5  # only says "not available in this version"
        left = ctx.remaining() - (0 if always else RESERVE_S)
        why = "interrupted" if interrupted else (None if always else start_decision(expected, left))
        if why is not None:
            results.append(StepResult(name, NOT_RUN, "", summary=why))
            ctx.statuses[name] = NOT_RUN
            ctx.log(f"{name}: {NOT_RUN}; {why}")
            continue
        cap = ctx.plan.caps.get(name, left)
        budget = step_budget(expected, cap, left) if not always else ctx.plan.caps.get(name, ALWAYS_BUDGET_S)
        ctx.log(f"{name}: start (expects {expected:.0f} s, up to {budget:.0f} s)")
        t0 = time.monotonic()
        try:
            res = fn(ctx, budget)
        except KeyboardInterrupt:
            interrupted = True
            res = StepResult(name, FAIL, "", summary="interrupted (Ctrl-C / SIGTERM)")
        except Exception as exc:  # noqa: BLE001 - one failing step does not stop the others
            res = StepResult(
                name,
                FAIL,
                "",
                summary=f"{type(exc).__name__}: {exc}\n"
                + indent("".join(traceback.format_exc().splitlines(keepends=True)[-6:])),
            )
        res.seconds = time.monotonic() - t0
        res.expected_s = expected
        results.append(res)
        ctx.statuses[name] = res.status
        ctx.log(f"{name}: {res.status} in {res.seconds:.1f} s; {res.summary.splitlines()[0] if res.summary else ''}")
        write_json(ctx, results, finished=False)
    return results


def load_after(ctx: Ctx, after: Path) -> list[str]:
    """Call A's output (--after): its acceptance.json (the steps it did not run), main.json (the main
    run's records, which call B's rerun compares with) and step_seconds.json. Returns the deferred steps."""
    try:
        doc = json.loads((after / "acceptance.json").read_text())
    except (OSError, ValueError) as exc:
        ctx.log(f"--after {after}: no call A acceptance.json ({type(exc).__name__}): nothing deferred")
        doc = {}
    deferred = [str(s["name"]) for s in doc.get("steps") or [] if str(s.get("status", "")).startswith("not run")]
    ctx.after = {
        "path": str(after),
        "environment": doc.get("environment") or {},
        "call": doc.get("call"),
        "not_run": deferred,
    }
    records = [r for r in read_records(after / "main.json") if r.get("mode", "eager") == "eager"]
    if records:
        ctx.main_records = by_key(records)
        ctx.main_origin = f"call A ({after})"
        ctx.main_environment = _first_environment(after / "main.json")
    if (after / "step_seconds.json").exists():
        measured = read_step_seconds(after / "step_seconds.json", ctx.plan.kind)
        if measured:
            ctx.expected.update(measured)
            ctx.expected_from.append(str(after / "step_seconds.json"))
    ctx.log(f"--after {after}: {len(records)} main records; call A did not run: {', '.join(deferred) or 'nothing'}")
    return deferred


def share_floors(out: Path) -> None:
    """On the CPU, each pytest process first measures the runtime floor (a fresh interpreter importing torch:
    5 s on 2 cores) unless another process of the same run left it in the plugin's floor cache
    (``pytest_dnnbench.measure.floor.FLOOR_CACHE_ENV``, as pytest-xdist workers and the test suite share it):
    the run's processes share one, in ``OUT/floors`` unless the caller gave a folder."""
    from pytest_dnnbench.measure.floor import FLOOR_CACHE_ENV

    if not os.environ.get(FLOOR_CACHE_ENV):
        (out / "floors").mkdir(exist_ok=True)
        SUBPROCESS_ENV[FLOOR_CACHE_ENV] = str(out / "floors")


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="the same steps on the CPU with small models")
    ap.add_argument(
        "--call",
        choices=CALLS,
        default="all",
        help="A: env-start, the never-run parts, a smaller main and the loop; B: rerun, memory, order, tf32 and "
        "what call A did not run (--after); all: every step in one process (default)",
    )
    ap.add_argument(
        "--after",
        default=None,
        help="call A's output folder (acceptance.json, main.json, step_seconds.json), read by call B",
    )
    ap.add_argument(
        "--step-seconds",
        default=None,
        help="expected seconds per step from an earlier run's step_seconds.json (or a {step: seconds} JSON)",
    )
    ap.add_argument(
        "--out",
        default=None,
        help="directory for acceptance.json, logs, results files (default: a new temporary directory)",
    )
    ap.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="global time limit in seconds (GPU: A 240, B 150, all 390; CPU: A 150, B 90, all 240)",
    )
    ap.add_argument("--max-time", type=float, default=None, help="--dnn-max-time per test, seconds (1 GPU, 0.5 CPU)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the subprocesses")
    ap.add_argument("--worker", choices=("loop", "memory", "tf32"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        request = json.loads(sys.stdin.read())
        workers: dict[str, Callable[[dict[str, Any]], int]] = {
            "loop": worker_loop,
            "memory": worker_memory,
            "tf32": worker_tf32,
        }
        return workers[args.worker](request)

    t0 = time.monotonic()
    make = cpu_plan if args.cpu else gpu_plan
    kwargs: dict[str, Any] = {"call": args.call, "deadline_s": args.deadline}
    if args.max_time is not None:
        kwargs["max_time"] = args.max_time
    plan = make(**kwargs)
    SUBPROCESS_ENV.update(plan.env)
    out = Path(args.out).resolve() if args.out else Path(tempfile.mkdtemp(prefix="gpu-acceptance-"))
    out.mkdir(parents=True, exist_ok=True)
    share_floors(out)
    ctx = Ctx(plan=plan, out=out, python=args.python, t0=t0, expected=dict(plan.expected))
    ctx.work.mkdir(exist_ok=True)
    (ctx.work / "pytest.ini").write_text("[pytest]\n")
    signal.signal(signal.SIGTERM, _sigterm)
    ctx.log(
        f"{'CPU mode' if args.cpu else 'GPU'} acceptance, call {plan.call}, deadline {plan.deadline_s:.0f} s, "
        f"--dnn-max-time={plan.max_time:g}s, output in {out}"
    )
    deferred: list[str] = []
    if args.after:
        after = Path(args.after).resolve()
        if after == out and (out / "acceptance.json").exists():
            shutil.copy2(out / "acceptance.json", out / "acceptance-A.json")  # this call rewrites it
        deferred = load_after(ctx, after)
    if args.step_seconds:
        measured = read_step_seconds(Path(args.step_seconds), plan.kind)
        ctx.expected.update(measured)
        ctx.expected_from.append(args.step_seconds if measured else f"{args.step_seconds} (nothing usable)")
    try:
        results = run_all(ctx, call_steps(plan.call, deferred))
    except KeyboardInterrupt:
        results = [StepResult("run", FAIL, "", summary="interrupted")]
    fill_from_main(results, ctx)
    lines = detail_tables(results, plan) + summary_table(results, ctx)
    text = "\n".join(lines)
    print(text, flush=True)
    (out / "acceptance.txt").write_text(text + "\n")
    write_json(ctx, results, finished=True)
    write_step_seconds(ctx, results)
    return exit_status(results)


if __name__ == "__main__":
    sys.exit(main())
