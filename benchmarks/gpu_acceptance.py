"""The CUDA path, proven on a real GPU in one call: the acceptance script (docs/gpu-acceptance.md).

One command runs every check of the CUDA path under a global time limit and ends with a table
that says PASS or FAIL per step, even when a step fails or the time runs out:

    python benchmarks/gpu_acceptance.py --out DIR          # on a GPU: at most 300 s
    python benchmarks/gpu_acceptance.py --cpu --out DIR    # the same steps on the CPU, at most 90 s

Steps, in order (each in its own try/except; a step that does not fit in the time left is
"not run (time limit)"):

 1. env-start   card, driver, CUDA/cuDNN, clocks and throttle reasons (NVML); the plugin is loaded
 2. main        pytest through the plugin: 12 models x batch 1, 8, 64, --dnn-max-time=2, results
                file and --dnn-report
 3. loop        the plugin's measurement path against a minimal loop (two CUDA events and a
                synchronize; perf_counter on CPU), interleaved call by call on the same input in
                the same process; ratio of medians per (model, batch)
 4. memory      the main run's memory ``total`` against a fresh process that holds only the
                model and its batch (same warm-up and timed calls, same cudnn.benchmark), read
                through NVML per process (peak RSS on CPU)
 5. rerun       the memory subset again, in a new pytest process: ratio of medians between runs
 6. oom         a forced out-of-memory (a huge batch; --dnn-max-host-memory on CPU) is a skip
 7. xdist       pytest-xdist with one GPU: -n 2 alone is refused; with --dnn-allow-shared-gpu both
                workers are pinned to cuda:0 (on CPU: --dnn-allow-parallel-cpu)
 8. lowp        fp16 + channels-last (bf16 + channels-last on CPU)
 9. cudagraph   --dnn-modes=cudagraph on two models at batch 1, each output checked against eager
10. env-end     clocks and throttle reasons again

Everything lands in --out: acceptance.json (machine-readable), acceptance.txt (the tables),
the pytest results files, the report, and one log per subprocess. Exit status: 0 when every
step passed (or is "not available in this version"), 1 when a step failed, 2 when none failed
but some did not run (time limit).

Only the plugin's command line, the results-file schema and the public functions of
``pytest_dnnbench.measure.*`` and ``pytest_dnnbench.registry`` are used.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import gc
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MIB = 2**20
SCHEMA = "gpu-acceptance/1"
#: One record of a pytest-dnnbench results file (schema pytest-dnnbench/2), as JSON data.
Record = dict[str, Any]

PASS, FAIL, NA, NOT_RUN, INFO = "PASS", "FAIL", "n/a", "not run (time limit)", "info"
#: Statuses that count as success for the exit status (n/a: "not available in this version").
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
    pytest_device: str  # --dnn-device
    torch_device: str  # the device the in-process loop and the children use
    models: tuple[str, ...]
    batches: tuple[int, ...]
    max_time: float  # --dnn-max-time, seconds
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
    oom_model: str
    oom_batch: int
    oom_args: tuple[str, ...]
    xdist_models: tuple[str, ...]
    xdist_batches: tuple[int, ...]
    xdist_args: tuple[str, ...]
    xdist_allow: str  # the option that lets several workers share the device
    memory_timed_cap: int  # the fresh process's timed calls: the record's, at most this
    deadline_s: float
    caps: dict[str, float] = field(default_factory=dict)  # per-step time caps, seconds
    env: tuple[tuple[str, str], ...] = ()  # set in every subprocess


PAPER_SET = (
    "squeezenet1_1",
    "mobilenet_v2",
    "shufflenet",
    "resnet18",
    "resnet50",
    "resnet152",
    "vgg16",
    "densenet121",
    "inception_v3",
    "se_resnet50",
    "dpn68",
    "nasnetalarge",
)


def gpu_plan(deadline_s: float = 300.0, max_time: float = 2.0) -> Plan:
    return Plan(
        kind="gpu",
        pytest_device="cuda",
        torch_device="cuda:0",
        models=PAPER_SET,
        batches=(1, 8, 64),
        max_time=max_time,
        # 1.5 s per (model, batch) for plugin and loop calls together: GPU calls vary little, most
        # rows reach the 1 % target long before, and the whole script must fit in 5 minutes.
        loop_max_time=min(max_time, 1.5),
        loop_max_samples=5000,
        loop_ratio=Range(0.97, 1.03),
        loop_min_ms=1.0,
        memory_models=("squeezenet1_1", "mobilenet_v2", "resnet18", "resnet50", "vgg16", "densenet121"),
        memory_batches=(1, 64),
        memory_ratio=Range(0.95, 1.05),
        memory_parallel=4,
        memory_timed_cap=100,
        rerun_ratio=Range(0.95, 1.05),
        rerun_batch=64,
        lowp_precision="fp16",
        lowp_models=("resnet50", "mobilenet_v2", "vgg16"),
        lowp_batches=(1, 64),
        graph_models=("resnet50", "mobilenet_v2"),
        graph_mode="cudagraph",
        # VGG-16 at batch 12288: the first convolution's output alone is 158 GB, more than an H200's
        # 141 GB, so its allocation fails before any kernel runs, while the input (1.85e9 elements,
        # 7.4 GB) stays below 2**31 elements.
        oom_model="vgg16",
        oom_batch=12288,
        oom_args=(),
        xdist_models=("resnet18", "mobilenet_v2"),
        xdist_batches=(1, 8),
        xdist_args=("-n", "2"),
        xdist_allow="--dnn-allow-shared-gpu",
        deadline_s=deadline_s,
        # Guards against a hang, not shares: they add up to more than the deadline, which decides.
        caps={"main": 130, "loop": 80, "memory": 45, "rerun": 45, "oom": 30, "xdist": 40, "lowp": 35, "cudagraph": 30},
    )


#: The --cpu mode's default deadline (s).
CPU_DEADLINE_S = 90.0


def cpu_plan(deadline_s: float = CPU_DEADLINE_S, max_time: float = 0.5) -> Plan:
    # The CPU run proves the machinery, not the figures: on shared cores a co-tenant made a CPU
    # median 30x slower, so the timing ranges are wide enough that noise cannot flip
    # them; memory is not noisy.
    timing = Range(0.25, 4.0)
    return Plan(
        kind="cpu",
        pytest_device="cpu",
        torch_device="cpu",
        # Small models: process start-up (torch and torchvision imports, ~3.5 s) dominates already.
        models=("squeezenet1_1", "mobilenet_v2", "shufflenet_v2_x0_5"),
        batches=(1, 2),
        max_time=max_time,
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
        # squeezenet1_1 at batch 256 needs far more than 512 MB (its input is 154 MB, its first
        # activation 807 MB), while importing torchvision and building the model, which may happen
        # under the limit, need about 90 MB.
        oom_model="squeezenet1_1",
        oom_batch=256,
        oom_args=("--dnn-max-host-memory=512MB",),
        xdist_models=("squeezenet1_1", "shufflenet_v2_x0_5"),
        xdist_batches=(1,),
        xdist_args=("-n", "2"),
        xdist_allow="--dnn-allow-parallel-cpu",
        deadline_s=deadline_s,
        # Guards against a hang, not shares: the deadline decides. Sized for the default 90 s and
        # grown with a longer deadline: whoever gives the run more time (a loaded machine, the test
        # suite) gives each step more too; two xdist workers importing torch beside two busy
        # processes took longer than 30 s.
        caps={
            name: cap * max(1.0, deadline_s / CPU_DEADLINE_S)
            for name, cap in {
                "main": 40,
                "loop": 30,
                "memory": 30,
                "rerun": 30,
                "oom": 30,
                "xdist": 30,
                "lowp": 30,
                "cudagraph": 30,
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
    rows: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ctx:
    """What steps share: the plan, paths, the clock and what earlier steps found."""

    plan: Plan
    out: Path
    python: str
    t0: float
    help_text: str = ""
    main_records: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

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
    proc = run_logged(pytest_cmd(ctx, *args), ctx.out / "logs" / f"{name}.log", timeout_s, cwd=ctx.work)
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


def total_of(record: Record | None) -> int | None:
    try:
        value = record["memory_bytes"]["total"]  # type: ignore[index]
    except (TypeError, KeyError):
        return None
    return int(value) if value is not None else None


def proc_problem(proc: Proc, what: str) -> str | None:
    """Why a finished subprocess counts as failed (None when it exited 0)."""
    if proc.timed_out:
        return f"{what} stopped at its time limit after {proc.seconds:.0f} s (log {proc.log.name})"
    if proc.rc != 0:
        return f"{what} exited with status {proc.rc} (log {proc.log.name}):\n{indent(proc.tail())}"
    return None


def indent(text: str, pad: str = "      ") -> str:
    return "\n".join(pad + line for line in text.splitlines())


def expect_records(
    records: Sequence[Record], models: Sequence[str], batches: Sequence[int], outcome: str = "passed"
) -> list[str]:
    """Problems: (model, batch) without a record, or with another outcome."""
    got = by_key(records)
    problems = []
    for m in models:
        for b in batches:
            r = got.get((m, b))
            if r is None:
                problems.append(f"{m} bs{b}: no record")
            elif r.get("outcome") != outcome:
                problems.append(f"{m} bs{b}: {r.get('outcome')} ({r.get('reason')})")
    return problems


# -- environment (NVML, no CUDA context in this process) -----------------------------------------


def nvml_state() -> dict[str, Any]:
    """Card, driver, memory, clocks, power and throttle reasons of the first visible GPU, via NVML."""
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


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in (
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
    ):
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


# -- steps ----------------------------------------------------------------------------------------

#: What a step that adapts to the plugin's options says when env-start could not read them.
HELP_NOT_READ = (
    "the plugin's pytest --help was not read at env-start (see logs/help.log): cannot tell which options exist"
)

PROBE = """
import json, torch, pytest_dnnbench
print(json.dumps({"plugin_file": pytest_dnnbench.__file__, "torch_cuda": torch.version.cuda,
                  "cudnn": torch.backends.cudnn.version(), "torch_threads": torch.get_num_threads()}))
"""


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
    # In a subprocess, as the steps will see them; cudnn.version() loads the library, creates no context.
    try:
        probe = subprocess.run(
            [ctx.python, "-c", PROBE],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=max(budget, 1),
            check=False,
        )
        env.update(json.loads(probe.stdout.strip().splitlines()[-1]))
    except subprocess.TimeoutExpired:
        env["plugin_file"] = f"probe failed: importing torch and the plugin took over {max(budget, 1):.0f} s"
    except (ValueError, IndexError):
        env["plugin_file"] = "probe failed: " + probe.stderr.strip()[-300:]
    helped = run_logged(pytest_cmd(ctx, "--help"), ctx.out / "logs" / "help.log", budget, cwd=ctx.work)
    ctx.help_text = helped.log.read_text(errors="replace") if helped.log.exists() else ""
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
        res.summary = (
            f"{state.get('name')}, driver {state.get('driver')}, CUDA {env.get('torch_cuda')}, "
            f"cuDNN {env.get('cudnn')}; {state_line(state)}"
        )
    else:
        state = cpu_state()
        env["cpu_start"] = state
        res.summary = f"{state_line(state)}, torch threads {env.get('torch_threads')}"
    res.summary += f"; plugin {env.get('plugin_file')}"
    ctx.environment.update(env)
    res.data = env
    if problems:
        res.status, res.summary = FAIL, "; ".join(problems) + "; " + res.summary
    return res


def step_main(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    res = StepResult(
        "main", PASS, f"pytest exit 0; {len(plan.models) * len(plan.batches)} records passed; report written"
    )
    report = ctx.out / "report"
    proc, records = run_pytest(ctx, "main", plan.models, plan.batches, budget, f"--dnn-report={report}")
    ctx.main_records = by_key([r for r in records if r.get("mode", "eager") == "eager"])
    problems = [p for p in [proc_problem(proc, "pytest")] if p]
    problems += expect_records(records, plan.models, plan.batches)
    if not (report / "report.html").exists() and not (report / "report.md").exists():
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
                "outcome": r.get("outcome"),
            }
        )
    env = _first_environment(ctx.out / "main.json")
    if env:
        ctx.environment["plugin_environment"] = {
            k: env.get(k)
            for k in (
                "torch",
                "torchvision",
                "timm",
                "thop",
                "cuda",
                "cudnn",
                "device_name",
                "driver",
                "cudnn_benchmark",
                "tf32_matmul",
                "tf32_cudnn",
                "threads",
                "gpu_state_start",
                "gpu_state_end",
            )
            if k in env
        }
    res.summary = (
        f"{len(records)} records in {proc.seconds:.0f} s (cuda {env.get('cuda')}, cudnn {env.get('cudnn')}, "
        f"{env.get('device_name')})"
        if env
        else f"{len(records)} records in {proc.seconds:.0f} s"
    )
    if problems:
        res.status = FAIL
        res.summary += "; " + "; ".join(problems[:6]) + (f"; ... {len(problems) - 6} more" if len(problems) > 6 else "")
    return res


def _mib(n: int | None) -> float | None:
    return None if n is None else n / MIB


def _first_environment(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()).get("environment") or {})
    except (OSError, ValueError):
        return {}


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
    if len(rows) < expected:
        problems.append(f"{len(rows)} of {expected} (model, batch) measured")
    if failed:
        problems.append(f"{failed} outside {plan.loop_ratio.text()}")
    ratios = [r["ratio"] for r in rows if r.get("ratio") is not None]
    res.summary = (
        f"{judged} judged, median ratio {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})"
        if ratios
        else "no ratio"
    )
    if problems:
        res.status = FAIL
        res.summary += "; " + "; ".join(problems)
    return res


def step_memory(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    figure = "NVML per-process" if plan.kind == "gpu" else "peak RSS"
    res = StepResult("memory", PASS, f"record total / fresh process ({figure}) in {plan.memory_ratio.text()}")
    deadline = time.monotonic() + budget
    lock = ctx.out / "memory.lock"
    lock.touch()
    jobs = []
    for m in plan.memory_models:
        for b in plan.memory_batches:
            rec = ctx.main_records.get((m, b))
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
        row: dict[str, Any] = {"model": m, "batch": b}
        record_total = total_of(rec)
        if rec is None or record_total is None:
            row.update(verdict=FAIL, error="no memory total from the main run")
            return row
        left = deadline - time.monotonic()
        if left < 2:
            row.update(verdict=FAIL, error="time limit")
            return row
        proc = run_logged(
            [ctx.python, str(Path(__file__).resolve()), "--worker", "memory"],
            ctx.out / "logs" / f"memory-{m}-bs{b}.log",
            left,
            stdin_text=json.dumps(request),
        )
        answer = _answer(proc.log)
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
    ratios = [r["ratio"] for r in res.rows if r.get("ratio")]
    res.summary = f"{len(ratios)} compared, ratio {min(ratios):.3f}-{max(ratios):.3f}" if ratios else "none compared"
    if failed:
        res.status = FAIL
        res.summary += "; " + "; ".join(
            f"{r['model']} bs{r['batch']}: {r.get('error') or format(r.get('ratio') or 0, '.3f')}" for r in failed[:6]
        )
    return res


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
        "rerun", PASS, f"second run / first run, median, in {plan.rerun_ratio.text()} at batch {plan.rerun_batch}"
    )
    proc, records = run_pytest(ctx, "rerun", plan.memory_models, plan.memory_batches, budget)
    second = by_key(records)
    problems = [p for p in [proc_problem(proc, "pytest")] if p]
    for m in plan.memory_models:
        for b in plan.memory_batches:
            a, c = median_of(ctx.main_records.get((m, b))), median_of(second.get((m, b)))
            ratio = c / a if a and c else None
            judged = b == plan.rerun_batch
            verdict = (PASS if plan.rerun_ratio.holds(ratio) else FAIL) if judged else (INFO if ratio else FAIL)
            res.rows.append({"model": m, "batch": b, "first_ms": a, "second_ms": c, "ratio": ratio, "verdict": verdict})
            if verdict == FAIL:
                problems.append(f"{m} bs{b}: " + (f"{ratio:.3f}" if ratio else "missing median"))
    ratios = [r["ratio"] for r in res.rows if r["ratio"] and r["batch"] == plan.rerun_batch]
    res.summary = f"batch {plan.rerun_batch}: {min(ratios):.3f}-{max(ratios):.3f}" if ratios else "no ratio"
    others = [r["ratio"] for r in res.rows if r["ratio"] and r["batch"] != plan.rerun_batch]
    if others:
        res.summary += f"; other batches (not judged): {min(others):.3f}-{max(others):.3f}"
    if problems:
        res.status = FAIL
        res.summary += "; " + "; ".join(problems[:6])
    return res


def step_oom(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    how = " ".join(plan.oom_args) or "the card's memory"
    res = StepResult(
        "oom", PASS, f"{plan.oom_model} at batch {plan.oom_batch} ({how}): skipped as out of memory, exit 0"
    )
    proc, records = run_pytest(
        ctx, "oom", [plan.oom_model], [plan.oom_batch], budget, *plan.oom_args, max_time=min(plan.max_time, 2.0)
    )
    rec = by_key(records).get((plan.oom_model, plan.oom_batch))
    problems = [p for p in [proc_problem(proc, "pytest")] if p]
    log = proc.log.read_text(errors="replace") if proc.log.exists() else ""
    reason = (rec or {}).get("reason") or next(
        (line[line.index("out of memory") :] for line in log.splitlines() if "out of memory" in line), None
    )
    outcome = (rec or {}).get("outcome") or ("skipped" if "1 skipped" in log else None)
    res.rows.append({"model": plan.oom_model, "batch": plan.oom_batch, "outcome": outcome, "reason": reason})
    if outcome != "skipped" or not reason or "out of memory" not in str(reason).lower():
        problems.append(f"expected a skip 'out of memory', got {outcome!r} ({reason})")
    res.summary = f"{outcome}: {str(reason)[:160]}"
    if problems:
        res.status, res.summary = FAIL, "; ".join(problems) + "; " + res.summary
    return res


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
    if allow:
        # Two workers on one device disturb each other: the plugin must refuse unless asked.
        refused = run_pytest(
            ctx, "xdist-refused", plan.xdist_models[:1], plan.xdist_batches[:1], min(budget, 30), *plan.xdist_args
        )[0]
        log = refused.log.read_text(errors="replace") if refused.log.exists() else ""
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
        budget,
        *plan.xdist_args,
        *([allow] if allow else []),
        max_time=min(plan.max_time, 1.0),
        quiet=False,
    )
    problems += [p for p in [proc_problem(proc, "pytest")] if p]
    problems += expect_records(records, plan.xdist_models, plan.xdist_batches)
    log = proc.log.read_text(errors="replace") if proc.log.exists() else ""
    workers = sorted({w for w in ("gw0", "gw1", "gw2", "gw3") if f"[{w}]" in log})
    devices = sorted({str(r.get("device")) for r in records})
    if gpu and devices != ["cuda:0"]:
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
    if problems:
        res.status = FAIL
        res.summary += "; " + "; ".join(problems[:6])
    return res


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
    problems += expect_records(records, plan.lowp_models, plan.lowp_batches)
    for r in records:
        if r.get("precision") != p or r.get("channels_last") is not True:
            problems.append(
                f"{r.get('model')} bs{r.get('batch_size')}: precision {r.get('precision')}, "
                f"channels_last {r.get('channels_last')}"
            )
        base = median_of(ctx.main_records.get(key_of(r)))
        low = median_of(r)
        res.rows.append(
            {
                "model": r.get("model"),
                "batch": r.get("batch_size"),
                "fp32_ms": base,
                f"{p}_cl_ms": low,
                "speedup": base / low if base and low else None,
                "outcome": r.get("outcome"),
            }
        )
    speedups = [r["speedup"] for r in res.rows if r.get("speedup")]
    res.summary = f"{len(records)} records; speed-up over fp32 " + (
        f"{min(speedups):.2f}x-{max(speedups):.2f}x" if speedups else "-"
    )
    if problems:
        res.status = FAIL
        res.summary += "; " + "; ".join(problems[:6])
    return res


def step_cudagraph(ctx: Ctx, budget: float) -> StepResult:
    plan = ctx.plan
    mode = plan.graph_mode
    res = StepResult("cudagraph", PASS, f"--dnn-modes={mode} at batch 1: records passed in mode {mode}")
    if not ctx.help_read:
        res.status, res.summary = FAIL, HELP_NOT_READ
        return res
    if "--dnn-modes" not in ctx.help_text:
        res.status, res.summary = NA, "not available in this version (pytest --help lists no --dnn-modes)"
        return res
    proc, records = run_pytest(ctx, "cudagraph", plan.graph_models, [1], budget, f"--dnn-modes={mode}")
    problems = [p for p in [proc_problem(proc, "pytest")] if p]
    mine = [r for r in records if r.get("mode") == mode]
    problems += expect_records(mine, plan.graph_models, [1])
    for r in records:
        base = median_of(ctx.main_records.get(key_of(r)))
        outputs = [c for c in r.get("checks") or [] if isinstance(c, dict) and c.get("metric") == "output"]
        if mode != "eager" and not (outputs and all(c.get("passed") for c in outputs)):
            problems.append(f"{r.get('model')}: output check against eager {'failed' if outputs else 'missing'}")
        res.rows.append(
            {
                "model": r.get("model"),
                "batch": r.get("batch_size"),
                "mode": r.get("mode"),
                "median_ms": median_of(r),
                "eager_main_ms": base,
                "output_vs_eager": outputs[0].get("measured") if outputs else None,
                "prepare_s": r.get("prepare_s"),
                "outcome": r.get("outcome"),
            }
        )
    res.summary = f"{len(mine)} records in mode {mode}"
    if problems:
        res.status = FAIL
        res.summary += "; " + "; ".join(problems[:6])
    return res


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
STEPS: tuple[tuple[str, Step, float], ...] = (
    # name, function, least time it needs to start (s)
    ("env-start", step_env_start, 0.0),
    ("main", step_main, 20.0),
    ("loop", step_loop, 15.0),
    ("memory", step_memory, 10.0),
    ("rerun", step_rerun, 10.0),
    ("oom", step_oom, 8.0),
    ("xdist", step_xdist, 10.0),
    ("lowp", step_lowp, 8.0),
    ("cudagraph", step_cudagraph, 8.0),
    ("env-end", step_env_end, 0.0),
)
#: Kept free at the end for env-end and the tables.
RESERVE_S = 3.0


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
    mem = by.get("memory")
    if mem and mem.rows:
        lines += [
            "",
            f"memory total: main run's record / fresh process (criterion: {plan.memory_ratio.text()})",
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
    lowp = by.get("lowp")
    if lowp and lowp.rows:
        key = f"{plan.lowp_precision}_cl_ms"
        lines += [
            "",
            f"{plan.lowp_precision} + channels-last against the main run's fp32 (info)",
            f"{'model':<18} {'batch':>5} {'fp32 ms':>10} {plan.lowp_precision + '+cl ms':>10} {'speed-up':>8}",
        ]
        for r in lowp.rows:
            lines.append(
                f"{r['model']:<18} {r['batch']:>5} {fmt(r.get('fp32_ms')):>10} {fmt(r.get(key)):>10} "
                f"{fmt(r.get('speedup'), '.2f'):>8}"
            )
    return lines


def summary_table(results: Sequence[StepResult], ctx: Ctx) -> list[str]:
    plan = ctx.plan
    env = ctx.environment
    pe = env.get("plugin_environment") or {}
    if plan.kind == "gpu":
        gs = env.get("gpu_start") or {}
        head = (
            f"GPU acceptance: {gs.get('name') or pe.get('device_name')}, driver {gs.get('driver')}, "
            f"CUDA {env.get('torch_cuda') or pe.get('cuda')}, cuDNN {env.get('cudnn') or pe.get('cudnn')}, "
            f"torch {(env.get('versions') or {}).get('torch')}"
        )
    else:
        cs = env.get("cpu_start") or {}
        head = (
            f"CPU mode (--cpu): {cs.get('cpu')}, {cs.get('cpu_count')} cores, "
            f"torch {(env.get('versions') or {}).get('torch')}, {env.get('torch_threads')} thread(s)"
        )
    lines = ["", "=" * 100, head, f"{'step':<10} {'verdict':<21} {'time':>6}  criterion / result", "-" * 100]
    for r in results:
        lines.append(f"{r.name:<10} {r.status:<21} {r.seconds:>5.0f}s  {r.criterion}")
        for part in r.summary.splitlines() or [""]:
            if part:
                lines.append(f"{'':<10} {'':<21} {'':>6}  -> {part}")
    verdict = overall(results)
    lines += [
        "-" * 100,
        f"overall: {verdict}  ({ctx.elapsed():.0f} s of {plan.deadline_s:.0f} s; results in {ctx.out})",
        "=" * 100,
    ]
    return lines


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
        "finished": finished,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_s": ctx.elapsed(),
        "deadline_s": ctx.plan.deadline_s,
        "overall": overall(results) if finished else None,
        "plan": asdict(ctx.plan),
        "environment": ctx.environment,
        "steps": [asdict(r) for r in results],
    }
    tmp = ctx.out / "acceptance.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    tmp.replace(ctx.out / "acceptance.json")


# -- main -----------------------------------------------------------------------------------------


def run_all(ctx: Ctx) -> list[StepResult]:
    results: list[StepResult] = []
    interrupted = False
    for name, fn, least in STEPS:
        always = name in ("env-start", "env-end")  # quick, and the table needs them
        if name == "cudagraph" and ctx.help_read and "--dnn-modes" not in ctx.help_text:
            least = 0.5  # only says "not available in this version"
        left = ctx.remaining() - (0 if always else RESERVE_S)
        if interrupted or (not always and left < least):
            results.append(
                StepResult(
                    name,
                    NOT_RUN,
                    "",
                    summary="interrupted" if interrupted else f"{max(left, 0):.0f} s left, needs {least:.0f} s",
                )
            )
            ctx.log(f"{name}: {NOT_RUN}; {results[-1].summary}")
            continue
        budget = max(1.0, min(ctx.plan.caps.get(name, left), left)) if not always else 30.0
        ctx.log(f"{name}: start (up to {budget:.0f} s)")
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
        results.append(res)
        ctx.log(f"{name}: {res.status} in {res.seconds:.1f} s; {res.summary.splitlines()[0] if res.summary else ''}")
        write_json(ctx, results, finished=False)
    return results


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="the same steps on the CPU with small models (<= 90 s)")
    ap.add_argument(
        "--out",
        default=None,
        help="directory for acceptance.json, logs, results files (default: a new temporary directory)",
    )
    ap.add_argument("--deadline", type=float, default=None, help="global time limit in seconds (300 GPU, 90 CPU)")
    ap.add_argument("--max-time", type=float, default=None, help="--dnn-max-time per test, seconds (2 GPU, 1 CPU)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the subprocesses")
    ap.add_argument("--worker", choices=("loop", "memory"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        request = json.loads(sys.stdin.read())
        return worker_loop(request) if args.worker == "loop" else worker_memory(request)

    t0 = time.monotonic()
    make = cpu_plan if args.cpu else gpu_plan
    kwargs: dict[str, float] = {}
    if args.deadline is not None:
        kwargs["deadline_s"] = args.deadline
    if args.max_time is not None:
        kwargs["max_time"] = args.max_time
    plan = make(**kwargs)
    SUBPROCESS_ENV.update(plan.env)
    out = Path(args.out).resolve() if args.out else Path(tempfile.mkdtemp(prefix="gpu-acceptance-"))
    out.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(plan=plan, out=out, python=args.python, t0=t0)
    ctx.work.mkdir(exist_ok=True)
    (ctx.work / "pytest.ini").write_text("[pytest]\n")
    signal.signal(signal.SIGTERM, _sigterm)
    ctx.log(
        f"{'CPU mode' if args.cpu else 'GPU'} acceptance, deadline {plan.deadline_s:.0f} s, "
        f"--dnn-max-time={plan.max_time:g}s, output in {out}"
    )
    try:
        results = run_all(ctx)
    except KeyboardInterrupt:
        results = [StepResult("run", FAIL, "", summary="interrupted")]
    lines = detail_tables(results, plan) + summary_table(results, ctx)
    text = "\n".join(lines)
    print(text, flush=True)
    (out / "acceptance.txt").write_text(text + "\n")
    write_json(ctx, results, finished=True)
    return exit_status(results)


if __name__ == "__main__":
    sys.exit(main())
