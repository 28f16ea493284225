"""Command-line options and their parsers.

Every option lives in the ``dnnbench`` group with the ``--dnn-`` prefix and,
where it makes sense, an ini twin (``dnn_*``). The command line wins over the
ini file, which wins over the default. Parsers raise ``pytest.UsageError``
naming the bad value and the fix. No torch here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

import pytest

from .measure.timing import SamplingPolicy

PAPER_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
PRECISIONS = ("fp32", "fp16", "bf16")

# (option, ini name, ini type, default as the ini would hold it, help)
_OPTIONS: list[tuple[str, str, str, Optional[str], str]] = [
    ("--dnn-models", "dnn_models", "string", None,
     "benchmark these models: 'paper' (the 44 of Bianco et al.), 'all', 'default', names and globs "
     "such as 'resnet*', comma separated. Turns on benchmark mode."),
    ("--dnn-device", "dnn_device", "string", "auto", "device: auto (cuda when present, else cpu), cpu, cuda, cuda:N."),
    ("--dnn-batch-sizes", "dnn_batch_sizes", "string", "1,2,4,8,16,32,64",
     "comma separated batch sizes (default: the paper's 1,2,4,8,16,32,64)."),
    ("--dnn-precision", "dnn_precision", "string", "fp32", "fp32 (the paper's), fp16 or bf16 (CUDA)."),
    ("--dnn-threads", "dnn_threads", "string", None, "CPU threads for torch (default: torch's own choice)."),
    ("--dnn-cudnn-benchmark", "dnn_cudnn_benchmark", "string", "on",
     "cuDNN autotuning, on (default, as in the paper) or off."),
    ("--dnn-seed", "dnn_seed", "string", "0", "seed of the random weights and inputs."),
    ("--dnn-min-samples", "dnn_min_samples", "string", "10", "minimum timed calls per test (the paper's 10)."),
    ("--dnn-max-samples", "dnn_max_samples", "string", "5000", "maximum timed calls per test."),
    ("--dnn-ci-target", "dnn_ci_target", "string", "1%",
     "stop sampling once the median's 95%% confidence interval is within this (e.g. 1%% or 0.01)."),
    ("--dnn-max-time", "dnn_max_time", "string", "10s",
     "time budget per test for warm-up and sampling (e.g. 20, 20s, 2m); a test cut short is marked capped."),
    ("--dnn-warmup", "dnn_warmup", "string", "3", "minimum warm-up calls before timing."),
    ("--dnn-json", "dnn_json", "string", None, "write the results file (schema pytest-dnnbench/1) to this path."),
    ("--dnn-isolate", "dnn_isolate", "string", "none",
     "none (default: every test in this process) or process (each model and batch size measured in a "
     "fresh subprocess; models must be registered by importable name)."),
    ("--dnn-max-host-memory", "dnn_max_host_memory", "string", None,
     "host memory a test may add to the process while it builds and measures its model (e.g. 8GB, "
     "16GiB; Linux resource limit); beyond it the test is skipped as out of memory."),
]


def addoptions(parser: pytest.Parser) -> None:
    group = parser.getgroup("dnnbench", "deep-network benchmarks (pytest-dnnbench)")
    for opt, ini, kind, default, help_text in _OPTIONS:
        dest = ini
        group.addoption(opt, dest=dest, default=None, metavar="VALUE", help=help_text)
        ini_default = default if default is not None else ""
        parser.addini(ini, help=f"default for {opt}", type=kind, default=ini_default)  # type: ignore[arg-type]
    group.addoption("--dnn-channels-last", dest="dnn_channels_last", action="store_true", default=None,
                    help="run models and inputs in channels-last memory format.")
    parser.addini("dnn_channels_last", help="default for --dnn-channels-last", type="bool", default=False)
    group.addoption("--dnn-allow-parallel-cpu", dest="dnn_allow_parallel_cpu", action="store_true", default=False,
                    help="allow benchmark tests on the CPU under pytest-xdist (-n): parallel workers disturb "
                         "each other's timings, so this is refused unless asked for.")
    group.addoption("--dnn-list-models", dest="dnn_list_models", action="store_true", default=False,
                    help="list the registered models (names, paper names, sources, input sizes) and exit.")


def raw(config: pytest.Config, name: str) -> Any:
    """An option's value: command line, else ini, else the default."""
    value = config.getoption(name, default=None)
    if value is None:
        value = config.getini(name)
        if value == "":
            value = None
    return value


# -- parsers (each raises pytest.UsageError with the option, the value and the fix) ----------

def _fail(option: str, value: Any, why: str, fix: str) -> pytest.UsageError:
    return pytest.UsageError(f"{option}={value!s}: {why}. {fix}")


def parse_batch_sizes(value: str, option: str = "--dnn-batch-sizes") -> tuple[int, ...]:
    parts = [p.strip() for p in str(value).split(",")]
    if not any(parts):
        raise _fail(option, value, "no batch size given", "Give positive integers such as 1,8,64")
    sizes: list[int] = []
    for part in parts:
        if not part:
            continue
        if not re.fullmatch(r"[+]?\d+", part):
            raise _fail(option, value, f"{part!r} is not a whole number", "Give positive integers such as 1,8,64")
        n = int(part)
        if n < 1:
            raise _fail(option, value, f"batch size {n} is not positive", "Batch sizes start at 1, e.g. 1,8,64")
        if n not in sizes:
            sizes.append(n)
    return tuple(sizes)


def parse_device(value: str, option: str = "--dnn-device") -> str:
    v = str(value).strip().lower()
    if not DEVICE_RE.match(v):
        raise _fail(option, value, "unknown device", "Use auto, cpu, cuda or cuda:N (N = GPU index)")
    return v


def parse_precision(value: str, option: str = "--dnn-precision") -> str:
    v = str(value).strip().lower()
    if v not in PRECISIONS:
        raise _fail(option, value, "unknown precision", f"Use one of {', '.join(PRECISIONS)}")
    return v


def parse_on_off(value: Any, option: str) -> bool:
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("on", "true", "1", "yes"):
        return True
    if v in ("off", "false", "0", "no"):
        return False
    raise _fail(option, value, "expected on or off", f"Use {option}=on or {option}=off")


def parse_int(value: Any, option: str, minimum: int = 0) -> int:
    v = str(value).strip()
    if not re.fullmatch(r"[+-]?\d+", v):
        raise _fail(option, value, "not a whole number", f"Give an integer of at least {minimum}")
    n = int(v)
    if n < minimum:
        raise _fail(option, value, f"must be at least {minimum}", f"Give an integer of at least {minimum}")
    return n


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|sec|m|min|h)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {None: 1.0, "s": 1.0, "sec": 1.0, "ms": 1e-3, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(value: Any, option: str = "--dnn-max-time") -> float:
    m = _DURATION_RE.match(str(value))
    if not m:
        raise _fail(option, value, "not a duration", "Give seconds such as 20, 20s, 500ms or 2m")
    seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2).lower() if m.group(2) else None]
    if not seconds > 0 or not math.isfinite(seconds):
        raise _fail(option, value, "must be longer than zero", "Give seconds such as 20, 20s, 500ms or 2m")
    return seconds


def parse_fraction(value: Any, option: str = "--dnn-ci-target") -> float:
    v = str(value).strip()
    try:
        f = float(v[:-1]) / 100.0 if v.endswith("%") else float(v)
    except ValueError:
        raise _fail(option, value, "not a number", "Give a relative width such as 1% or 0.01") from None
    if not 0.0 < f < 1.0:
        raise _fail(option, value, "must lie between 0 and 100 %", "Give a relative width such as 1% or 0.01")
    return f


@dataclass(frozen=True)
class DnnOptions:
    """Every parsed option (what pytest_configure stashes)."""

    models: Optional[str]
    device: str
    batch_sizes: tuple[int, ...]
    precision: str
    channels_last: bool
    threads: Optional[int]
    cudnn_benchmark: bool
    seed: int
    policy: SamplingPolicy
    json_path: Optional[str]
    #: --dnn-max-host-memory in bytes (None: no guard).
    max_host_memory: Optional[int] = None
    #: --dnn-isolate: "none" or "process".
    isolate: str = "none"


def _get(config: pytest.Config, name: str, parse: Callable[..., Any], option: str) -> Any:
    value = raw(config, name)
    return None if value is None else parse(value, option)


def parse_options(config: pytest.Config) -> DnnOptions:
    min_samples = _get(config, "dnn_min_samples", lambda v, o: parse_int(v, o, 1), "--dnn-min-samples")
    max_samples = _get(config, "dnn_max_samples", lambda v, o: parse_int(v, o, 1), "--dnn-max-samples")
    if max_samples < min_samples:
        raise pytest.UsageError(
            f"--dnn-max-samples={max_samples} is below --dnn-min-samples={min_samples}: raise the maximum "
            "or lower the minimum"
        )
    warmup = _get(config, "dnn_warmup", lambda v, o: parse_int(v, o, 0), "--dnn-warmup")
    policy = SamplingPolicy(
        min_samples=min_samples,
        max_samples=max_samples,
        ci_target=_get(config, "dnn_ci_target", parse_fraction, "--dnn-ci-target"),
        max_time_s=_get(config, "dnn_max_time", parse_duration, "--dnn-max-time"),
        warmup_min=warmup,
        warmup_max=max(warmup, SamplingPolicy.warmup_max),
    )
    models = raw(config, "dnn_models")
    channels_last = config.getoption("dnn_channels_last", default=None)
    if channels_last is None:
        channels_last = bool(config.getini("dnn_channels_last"))
    return DnnOptions(
        models=str(models).strip() if models is not None and str(models).strip() else None,
        device=_get(config, "dnn_device", parse_device, "--dnn-device"),
        batch_sizes=_get(config, "dnn_batch_sizes", parse_batch_sizes, "--dnn-batch-sizes"),
        precision=_get(config, "dnn_precision", parse_precision, "--dnn-precision"),
        channels_last=bool(channels_last),
        threads=_get(config, "dnn_threads", lambda v, o: parse_int(v, o, 1), "--dnn-threads"),
        cudnn_benchmark=_get(config, "dnn_cudnn_benchmark", parse_on_off, "--dnn-cudnn-benchmark"),
        seed=_get(config, "dnn_seed", lambda v, o: parse_int(v, o, 0), "--dnn-seed"),
        policy=policy,
        json_path=raw(config, "dnn_json"),
        max_host_memory=_get(config, "dnn_max_host_memory", parse_host_memory, "--dnn-max-host-memory"),
        isolate=_get(config, "dnn_isolate", parse_isolate, "--dnn-isolate"),
    )


def parse_isolate(value: Any, option: str = "--dnn-isolate") -> str:
    v = str(value).strip().lower()
    if v not in ("none", "process"):
        raise _fail(option, value, "unknown isolation", "Use none or process")
    return v


def parse_host_memory(value: Any, option: str = "--dnn-max-host-memory") -> int:
    from .constraints import parse_size
    from .oom import GUARD_SUPPORTED

    try:
        size = parse_size(value)
    except ValueError as exc:
        raise _fail(option, value, str(exc), "Give a size such as 8GB, 8000MB or 16GiB") from None
    if not GUARD_SUPPORTED:
        raise _fail(option, value, "the host-memory guard needs Linux (RLIMIT_DATA and /proc)",
                    "Leave the option out on this platform")
    return size
