"""Every option of the plugin: one table, one parser per kind of value, one frozen :class:`Settings`.

Each option lives in the ``dnnbench`` group with the ``--dnn-`` prefix and, where it makes sense,
an ini twin (``dnn_*``). The command line wins over the ini file, which wins over the default.

Rules that hold for every option:

- a bad value is a ``pytest.UsageError`` that names the option, the value (cut to a readable
  length) and the fix (:func:`usage_error`), raised at configure time, before any model is built;
- a relative path given on the command line is relative to the directory pytest was started in
  (``config.invocation_params.dir``); one given in the ini file is relative to the ini file's
  directory (the rootdir where there is no ini file): pytest's own rule.

No torch here.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypedDict, TypeVar

import pytest

from .constraints import Constraints
from .gate import Tolerances
from .jsonfile import resolved
from .measure.timing import SamplingPolicy
from .problems import UsageProblem, bad_value, check_writable, shown
from .run_store import StoreChoice, store_choice
from .shards import Shard, parse_run_group, parse_shard

__all__ = [
    "OPTIONS",
    "Option",
    "Settings",
    "addoptions",
    "item_limits",
    "usage_error",
    "PAPER_BATCH_SIZES",
    "PRECISIONS",
    "parse_batch_sizes",
    "parse_device",
    "parse_modes",
    "parse_choice",
    "parse_on_off",
    "parse_int",
    "parse_duration",
    "parse_fraction",
    "parse_tolerance",
    "parse_probability",
    "parse_bytes",
    "parse_fps",
    "parse_size",
    "parse_rate",
]

PAPER_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
#: The precisions a benchmark can run in (fp32 is the paper's).
PRECISIONS = ("fp32", "fp16", "bf16")
DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
#: Largest batch size accepted (a tensor index is 32-bit in many kernels).
MAX_BATCH = 2**31 - 1
#: Most CPU threads accepted for torch.
MAX_THREADS = 4096
#: Most fresh processes a suspicious latency is confirmed in (``--dnn-confirm``).
MAX_CONFIRM = 20

T = TypeVar("T")


# -- the option table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One option: its flag, its ini twin (or none), how it is given, its default and its help."""

    flag: str
    dest: str
    help: str
    #: ``value`` (``--flag=VALUE``), ``switch`` (``--flag``), ``optional`` (``--flag`` or ``--flag=VALUE``).
    kind: Literal["value", "switch", "optional"] = "value"
    #: Ini type of the twin (``string``, ``bool``, or ``list``: a comma list that the ini file may also give one
    #: item per line, or as a TOML list), None where there is no twin.
    ini: Literal["string", "bool", "list"] | None = "string"
    default: str | None = None
    metavar: str = "VALUE"
    #: For ``optional``: the value of the bare flag.
    const: str | None = None
    ini_help: str = ""
    #: Parses a value given for the option (the value, where it was given: the flag or a marker's keyword).
    #: With ``field``: the option is read with it, and where the value goes is said by ``field``.
    parse: Callable[[object, str], Any] | None = None
    #: Where the parsed value goes: ``tolerances.<field>`` (:class:`.gate.Tolerances`) or
    #: ``constraints.<field>`` (:class:`.constraints.Constraints`, with its ``<field>_source``).
    field: str | None = None
    #: The marker that overrides the option per test, and its keyword, e.g. ``("dnn_tolerance", "latency")``.
    marker: tuple[str, str] | None = None


def addoptions(parser: pytest.Parser) -> None:
    """Add every option of :data:`OPTIONS` (and its ini twin) to pytest's parser."""
    group = parser.getgroup("dnnbench", "deep-network benchmarks (pytest-dnnbench)")
    for opt in OPTIONS:
        if opt.kind == "switch":
            group.addoption(opt.flag, dest=opt.dest, action="store_true", default=None, help=opt.help)
        elif opt.kind == "optional":
            group.addoption(
                opt.flag, dest=opt.dest, nargs="?", const=opt.const, default=None, metavar=opt.metavar, help=opt.help
            )
        else:
            group.addoption(opt.flag, dest=opt.dest, default=None, metavar=opt.metavar, help=opt.help)
    for opt in OPTIONS:
        if opt.ini == "bool":
            parser.addini(opt.dest, help=f"default for {opt.flag}{opt.ini_help}", type="bool", default=False)
        elif opt.ini == "string":
            parser.addini(opt.dest, help=f"default for {opt.flag}{opt.ini_help}", type="string", default="")
        elif opt.ini == "list":  # a comma list, items one per line, or a TOML list: all read as one comma list
            parser.addini(opt.dest, help=f"default for {opt.flag}{opt.ini_help}", type="linelist", default=[])


# -- errors and parsers (one per kind of value) ---------------------------------------------------


def usage_error(option: str, value: object, why: str, fix: str) -> pytest.UsageError:
    """The one shape of a bad-value error: ``OPTION=VALUE: why. Fix`` (:func:`.outputs.bad_value`)."""
    return pytest.UsageError(str(bad_value(option, value, why, fix)))


def parse_batch_sizes(value: object, option: str = "--dnn-batch-sizes") -> tuple[int, ...]:
    parts = [p.strip() for p in str(value).split(",")]
    if not any(parts):
        raise usage_error(option, value, "no batch size given", "Give positive integers such as 1,8,64")
    sizes: list[int] = []
    for part in parts:
        if not part:
            continue
        if not re.fullmatch(r"[+]?\d+", part):
            raise usage_error(
                option, value, f"{shown(part)[:20]!r} is not a whole number", "Give positive integers such as 1,8,64"
            )
        if len(part.lstrip("+")) > 12:
            raise usage_error(
                option, value, f"a batch size of {len(part)} digits is too large", "Give batch sizes such as 1,8,64"
            )
        n = int(part)
        if n < 1:
            raise usage_error(option, value, f"batch size {n} is not positive", "Batch sizes start at 1, e.g. 1,8,64")
        if n > MAX_BATCH:
            raise usage_error(
                option, value, f"batch size {n} is above {MAX_BATCH:,}", "Give batch sizes such as 1,8,64"
            )
        if n not in sizes:
            sizes.append(n)
    return tuple(sizes)


def parse_device(value: object, option: str = "--dnn-device") -> str:
    v = str(value).strip().lower()
    if not DEVICE_RE.match(v):
        raise usage_error(option, value, "unknown device", "Use auto, cpu, cuda or cuda:N (N = GPU index)")
    return v


def parse_choice(value: object, option: str, choices: tuple[str, ...], what: str = "value") -> str:
    v = str(value).strip().lower()
    if v not in choices:
        fix = f"Use {choices[0]} or {choices[1]}" if len(choices) == 2 else f"Use one of {', '.join(choices)}"
        raise usage_error(option, value, f"unknown {what}", fix)
    return v


def parse_precision(value: object, option: str = "--dnn-precision") -> str:
    return parse_choice(value, option, PRECISIONS, "precision")


def parse_modes(value: object, option: str = "--dnn-modes") -> tuple[str, ...]:
    """A comma list of deployment modes, each once, in the order given; a mode whose runtime is not
    installed is a usage error that names the pip extra."""
    from .measure.modes import MODES
    from .measure.runtimes import missing_extra

    parts = [p.strip().lower() for p in str(value).split(",") if p.strip()]
    if not parts:
        raise usage_error(
            option, value, "no mode given", f"Give modes such as eager,compile (known: {', '.join(MODES)})"
        )
    modes: list[str] = []
    for part in parts:
        if part not in MODES:
            raise usage_error(option, value, f"unknown mode {shown(part)[:40]!r}", f"Use {', '.join(MODES)}")
        if part not in modes:
            modes.append(part)
    for mode in modes:
        problem = missing_extra(mode)
        if problem is not None:
            raise usage_error(
                option, value, f"mode {mode} cannot run here: {problem}", "Install the extra, or leave the mode out"
            )
    return tuple(modes)


def parse_on_off(value: object, option: str) -> bool:
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("on", "true", "1", "yes"):
        return True
    if v in ("off", "false", "0", "no"):
        return False
    raise usage_error(option, value, "expected on or off", f"Use {option}=on or {option}=off")


def parse_int(value: object, option: str, minimum: int = 0, maximum: int = 10**9) -> int:
    """A whole number in ``[minimum, maximum]`` (the bounds keep absurd values from reaching torch)."""
    v = str(value).strip()
    if not re.fullmatch(r"[+-]?\d+", v):
        raise usage_error(option, value, "not a whole number", f"Give an integer of at least {minimum}")
    if len(v.lstrip("+-")) > len(str(maximum)) + 1:
        raise usage_error(
            option, value, f"must be at most {maximum:,}", f"Give an integer from {minimum} to {maximum:,}"
        )
    n = int(v)
    if n < minimum:
        raise usage_error(option, value, f"must be at least {minimum}", f"Give an integer of at least {minimum}")
    if n > maximum:
        raise usage_error(
            option, value, f"must be at most {maximum:,}", f"Give an integer from {minimum} to {maximum:,}"
        )
    return n


#: The longest duration any option accepts: a week. Longer values overflow the clocks and timers they reach
#: (``OverflowError: timestamp out of range``), and no benchmark step needs them.
MAX_DURATION_S = 7 * 24 * 3600.0

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|sec|m|min|h)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {None: 1.0, "s": 1.0, "sec": 1.0, "ms": 1e-3, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(value: object, option: str = "--dnn-max-time", allow_zero: bool = False) -> float:
    m = _DURATION_RE.match(str(value))
    if not m:
        raise usage_error(option, value, "not a duration", "Give seconds such as 20, 20s, 500ms or 2m")
    seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2).lower() if m.group(2) else None]
    if not math.isfinite(seconds) or seconds > MAX_DURATION_S:
        raise usage_error(
            option, value, "longer than a week (604800 s)", "Give seconds such as 20, 20s, 500ms or 2m, at most 7 days"
        )
    if not (seconds >= 0 if allow_zero else seconds > 0):
        raise usage_error(option, value, "must be longer than zero", "Give seconds such as 20, 20s, 500ms or 2m")
    return seconds


def _number(text: str) -> float:
    """A float from ``text``, or ValueError (also for overflowing and not-a-number input)."""
    f = float(text)
    if not math.isfinite(f):
        raise ValueError(text)
    return f


def parse_fraction(value: object, option: str = "--dnn-ci-target") -> float:
    """A relative width strictly between 0 and 1: ``1%`` or ``0.01``."""
    v = str(value).strip()
    try:
        f = _number(v[:-1]) / 100.0 if v.endswith("%") else _number(v)
    except ValueError:
        raise usage_error(option, value, "not a number", "Give a relative width such as 1% or 0.01") from None
    if not 0.0 < f < 1.0:
        raise usage_error(option, value, "must lie between 0 and 100 %", "Give a relative width such as 1% or 0.01")
    return f


def parse_tolerance(value: object, option: str, unit: Literal["relative", "points"] = "relative") -> float:
    """``10%`` or ``0.1`` (relative), or points of Top-1; zero or more, finite."""
    v = str(value).strip()
    try:
        f = _number(v[:-1]) / 100.0 if unit == "relative" and v.endswith("%") else _number(v)
    except ValueError:
        fix = (
            "Give a fraction or a percentage such as 0.1 or 10%"
            if unit == "relative"
            else "Give percentage points such as 0.5"
        )
        raise usage_error(option, value, "not a number", fix) from None
    if f < 0:
        raise usage_error(
            option, value, "must be zero or more", "Give a tolerance such as 10% (latency, memory) or 0.5 (Top-1)"
        )
    return f


def parse_points(value: object, option: str) -> float:
    """A tolerance in percentage points (Top-1)."""
    return parse_tolerance(value, option, "points")


def parse_slowdown(value: object, option: str) -> float:
    """A ratio to the baseline above 1: ``2``, ``2x``, ``1.5×``."""
    v = str(value).strip()
    number = v[:-1] if v[-1:].lower() in ("x", "\u00d7") else v
    try:
        f = _number(number)
    except ValueError:
        raise usage_error(option, value, "not a ratio", "Give a slowdown factor above 1 such as 2 or 2x") from None
    if not f > 1.0:
        raise usage_error(
            option, value, "must be above 1 (a ratio to the baseline)", "Give a slowdown factor such as 2 or 1.5x"
        )
    return f


#: The longest a busy test waits for the machine to calm down (``--dnn-calm-wait``).
MAX_CALM_WAIT_S = 30.0


def parse_calm_wait(value: object, option: str) -> float:
    seconds = parse_duration(value, option, allow_zero=True)
    if seconds > MAX_CALM_WAIT_S:
        raise usage_error(
            option, value, f"longer than the {MAX_CALM_WAIT_S:g} s a test may wait", "Give at most 30s (or 0)"
        )
    return seconds


def parse_probability(value: object, option: str) -> float:
    """A significance level strictly between 0 and 0.5."""
    try:
        a = _number(str(value).strip())
    except ValueError:
        raise usage_error(option, value, "not a number", "Give a probability such as 0.001") from None
    if not 0.0 < a < 0.5:
        raise usage_error(option, value, "must lie between 0 and 0.5", "Give a probability such as 0.001 or 0.01")
    return a


# -- sizes and rates, as the constraints take them (pure; parse_bytes/parse_rate say what was wrong) ------

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\s*([A-Za-z]*)\s*$")


def parse_size(value: object) -> int:
    """``"0.7GB"`` -> 700000000, ``"1.4GiB"`` -> 1503238554, ``"700MB"``, ``"123456"`` (bytes).

    Units: B, kB/KB, MB, GB, TB (powers of 10) and KiB, MiB, GiB, TiB (powers of 2),
    case-insensitive. The result is rounded to whole bytes and must be positive.
    Raises ``ValueError`` saying what is wrong, ``OverflowError`` for a size of 2^63 bytes or more.
    """
    shown = _short(value)
    if isinstance(value, bool):
        raise ValueError(f"{_short(value)} is not a size")
    if isinstance(value, int):
        number, unit = float(value), ""
        if value <= 0:
            raise ValueError(f"size {shown} is not positive")
        if value >= MAX_SIZE:
            raise OverflowError(f"size {shown} is 8 EiB (2^63 bytes) or more")
        return int(value)
    if isinstance(value, float):
        number, unit = value, ""
    else:
        m = _SIZE_RE.match(str(value))
        if not m:
            raise ValueError(f"{shown} is not a size (expected a number and a unit such as 0.7GB, 700MB, 1.4GiB)")
        mantissa, exponent, unit = m.groups()
        if exponent and abs(int(exponent[-6:])) > 100 or len(mantissa) > 40:
            if exponent and exponent.startswith("-") or float(mantissa or 0) == 0:
                raise ValueError(f"size {shown} is less than one byte")
            raise OverflowError(f"size {shown} is 8 EiB (2^63 bytes) or more")
        number = float(mantissa) * (10.0 ** int(exponent) if exponent else 1.0)
        unit = unit.lower()
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {unit[:20]!r} in {shown} (use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)")
    if math.isnan(number) or number <= 0:
        raise ValueError(f"size {shown} is not positive")
    if not math.isfinite(number):
        raise OverflowError(f"size {shown} is 8 EiB (2^63 bytes) or more")
    # Exact for the usual inputs: multiply the decimal mantissa in integers where possible.
    scaled = _exact_scale(str(value), number, _UNITS[unit]) if not isinstance(value, float) else number * _UNITS[unit]
    if not math.isfinite(scaled) or scaled >= MAX_SIZE:
        raise OverflowError(f"size {shown} is 8 EiB (2^63 bytes) or more")
    result = int(math.floor(scaled + 0.5))
    if result <= 0:
        raise ValueError(f"size {shown} is less than one byte")
    return result


#: Sizes from here on are refused: the figure would overflow a signed 64-bit integer (8 EiB).
MAX_SIZE = 2**63


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _exact_scale(text: str, number: float, factor: int) -> float:
    """``number * factor`` without binary rounding surprises for decimal input (0.7 * 10^9 = 700000000)."""
    from decimal import Decimal, InvalidOperation

    m = _SIZE_RE.match(text)
    if not m:
        return number * factor
    mantissa, exponent, _ = m.groups()
    try:
        d = Decimal(mantissa) * (Decimal(10) ** int(exponent) if exponent else 1) * factor
    except InvalidOperation:
        return number * factor
    return float(d.to_integral_value(rounding="ROUND_HALF_UP"))


_FPS_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\s*(fps)?\s*$", re.IGNORECASE)


def parse_fps(value: object) -> float:
    """``"30"``, ``"29.97"``, ``"60fps"`` -> frames (images) per second, positive and finite."""
    if isinstance(value, bool):
        raise ValueError(f"{_short(value)} is not a frame rate")
    if isinstance(value, (int, float)):
        fps = float(value)
    else:
        m = _FPS_RE.match(str(value))
        if not m:
            raise ValueError(f"{_short(value)} is not a frame rate (expected a number such as 15, 30 or 60)")
        fps = float(m.group(1)) * (10.0 ** int(m.group(2)) if m.group(2) else 1.0)
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"frame rate {_short(value)} is not positive")
    return fps


def parse_bytes(value: object, option: str) -> int:
    """A size with its unit exactly as written: ``1.0GB`` = 10^9 bytes, ``1.4GiB`` = 1.4 x 2^30."""
    try:
        return parse_size(value)
    except OverflowError:
        raise usage_error(
            option, value, "8 EiB (2^63 bytes) or more", "Use e.g. 1.0GB (10^9 bytes), 700MB or 1.4GiB"
        ) from None
    except ValueError as exc:
        raise usage_error(
            option, value, str(exc), "Use e.g. 1.0GB (10^9 bytes), 700MB, 1.4GiB (2^30 bytes) or plain bytes"
        ) from None


def parse_rate(value: object, option: str) -> float:
    """Images per second, positive and finite."""
    try:
        return parse_fps(value)
    except OverflowError:
        raise usage_error(option, value, "too large a rate", "Give images per second such as 15, 30 or 60") from None
    except ValueError as exc:
        raise usage_error(option, value, str(exc), "Give images per second such as 15, 30 or 60") from None


def parse_path(value: str, base: Path) -> Path:
    """``value`` as an absolute path (``~`` expanded; relative to ``base``)."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


# -- reading the options ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Value:
    """An option's raw value and where it came from (``cmdline``, ``ini`` or ``default``)."""

    text: str | None
    origin: Literal["cmdline", "ini", "default"]
    base: Path

    def describe(self, option: Option) -> str:
        """How the value was given, for messages: ``--dnn-max-memory=1GB`` or ``ini dnn_max_memory = 1GB``."""
        if self.origin == "ini":
            return f"ini {option.dest} = {self.text}"
        return f"{option.flag}={self.text}"


# -- the option table ------------------------------------------------------------------------------

OPTIONS: tuple[Option, ...] = (
    # what to run, and how
    Option(
        "--dnn-models",
        "dnn_models",
        "benchmark these models: 'paper' (the 44 of Bianco et al.), 'all', 'default', names and globs "
        "such as 'resnet*', comma separated. Turns on benchmark mode.",
        ini="list",
    ),
    Option(
        "--dnn-device", "dnn_device", "device: auto (cuda when present, else cpu), cpu, cuda, cuda:N.", default="auto"
    ),
    Option(
        "--dnn-batch-sizes",
        "dnn_batch_sizes",
        "comma separated batch sizes (default: the paper's 1,2,4,8,16,32,64).",
        default="1,2,4,8,16,32,64",
        ini="list",
    ),
    Option("--dnn-precision", "dnn_precision", "fp32 (the paper's), fp16 or bf16 (CUDA).", default="fp32"),
    Option(
        "--dnn-modes",
        "dnn_modes",
        "deployment modes, comma separated: eager (default, the paper's), compile (torch.compile), cudagraph "
        "(CUDA graph replay, CUDA only), onnxruntime (pip extra [onnx]), openvino (pip extra [openvino], CPU only).",
        default="eager",
        ini="list",
    ),
    Option(
        "--dnn-compile-mode",
        "dnn_compile_mode",
        "torch.compile mode of --dnn-modes=compile: default, reduce-overhead, max-autotune or "
        "max-autotune-no-cudagraphs.",
        default="default",
    ),
    Option(
        "--dnn-prepare-timeout",
        "dnn_prepare_timeout",
        "longest a mode's preparation (compile, export, conversion) may take, outside the latency budget "
        "(e.g. 300, 5m); past it the test is skipped.",
        default="300s",
    ),
    Option(
        "--dnn-threads",
        "dnn_threads",
        "CPU threads for torch (default: torch's own choice, never more than the CPUs this process may run on).",
    ),
    Option(
        "--dnn-cudnn-benchmark",
        "dnn_cudnn_benchmark",
        "cuDNN autotuning, on (default, as in the paper) or off.",
        default="on",
    ),
    Option("--dnn-seed", "dnn_seed", "seed of the random weights and inputs.", default="0"),
    Option("--dnn-min-samples", "dnn_min_samples", "minimum timed calls per test (the paper's 10).", default="10"),
    Option("--dnn-max-samples", "dnn_max_samples", "maximum timed calls per test.", default="5000"),
    Option(
        "--dnn-ci-target",
        "dnn_ci_target",
        "stop sampling once the median's 95%% confidence interval is within this (e.g. 1%% or 0.01).",
        default="1%",
    ),
    Option(
        "--dnn-max-time",
        "dnn_max_time",
        "time budget per test for warm-up and sampling (e.g. 20, 20s, 2m); a test cut short is marked capped.",
        default="10s",
    ),
    Option("--dnn-warmup", "dnn_warmup", "minimum warm-up calls before timing.", default="3"),
    Option("--dnn-json", "dnn_json", "write the results file (schema pytest-dnnbench/2) to this path."),
    Option(
        "--dnn-store",
        "dnn_store",
        "record every result in a results store, the history across commits and machines: without a value the "
        "embedded SQLite file .dnnbench/history.sqlite under the rootdir; sqlite:///PATH; postgresql://USER@HOST/DB "
        "for a team's server. The environment variable DNNBENCH_STORE names it too (keep a password there).",
        kind="optional",
        metavar="URL",
        const="default",
        ini_help=" (default: the embedded store)",
    ),
    Option(
        "--dnn-shard",
        "dnn_shard",
        "run shard K of N (K/N, 1-based) of the selected benchmark tests: whole models, balanced by their estimated "
        "cost, the same split on every machine; auto in a Slurm array job (K and N from SLURM_ARRAY_TASK_*), auto/N "
        "in a Kubernetes Indexed Job (K from JOB_COMPLETION_INDEX). Merge the shards' results files with python -m "
        "pytest_dnnbench merge (docs/fleet.md).",
        metavar="K/N",
        ini=None,
    ),
    Option(
        "--dnn-run-group",
        "dnn_run_group",
        "the name that ties the shards (and reruns) of one run together, in the results store and the results "
        "file's environment (default: the CI's run id, such as github:<run id>-<attempt>).",
        metavar="NAME",
        ini=None,
    ),
    Option(
        "--dnn-isolate",
        "dnn_isolate",
        "none (default: every test in this process) or process (each model and batch size measured in a "
        "fresh subprocess; models must be registered by importable name).",
        default="none",
    ),
    Option(
        "--dnn-max-host-memory",
        "dnn_max_host_memory",
        "host memory a test may add to the process while it builds and measures its model (e.g. 8GB, "
        "16GiB; Linux resource limit); beyond it the test is skipped as out of memory.",
    ),
    Option(
        "--dnn-channels-last",
        "dnn_channels_last",
        "run models and inputs in channels-last memory format.",
        kind="switch",
        ini="bool",
    ),
    Option(
        "--dnn-tf32",
        "dnn_tf32",
        "let fp32 convolutions and matrix products run in TF32 on Ampere and newer GPUs (off by default: fp32 "
        "means fp32, as on the paper's Titan Xp); recorded, and part of the baseline platform key.",
        kind="switch",
        ini="bool",
    ),
    Option(
        "--dnn-allow-parallel-cpu",
        "dnn_allow_parallel_cpu",
        "allow benchmark tests on the CPU under pytest-xdist (-n): parallel workers disturb "
        "each other's timings, so this is refused unless asked for.",
        kind="switch",
        ini=None,
    ),
    Option(
        "--dnn-allow-shared-gpu",
        "dnn_allow_shared_gpu",
        "allow several pytest-xdist workers on one GPU (more workers than GPUs, or -n with --dnn-device=cuda:N): "
        "they disturb each other's timings, clocks and memory figures, so this is refused unless asked for.",
        kind="switch",
        ini=None,
    ),
    Option(
        "--dnn-list-models",
        "dnn_list_models",
        "list the registered models (names, paper names, sources, input sizes) and exit.",
        kind="switch",
        ini=None,
    ),
    # accuracy
    Option(
        "--dnn-imagenet",
        "dnn_imagenet",
        "validation images for Top-1/Top-5: ImageNet-1k val in ImageFolder layout (one folder per synset) or "
        "the flat ILSVRC2012 val folder with the devkit's ground truth; or any ImageFolder of your own classes.",
        metavar="DIR",
        ini_help=" (paths relative to the ini file)",
    ),
    Option(
        "--dnn-accuracy-limit",
        "dnn_accuracy_limit",
        "evaluate accuracy on a class-balanced subset of N images (quick runs); default: all.",
        metavar="N",
        ini_help=" (paths relative to the ini file)",
    ),
    Option(
        "--dnn-weights",
        "dnn_weights",
        "random (default), pretrained (local caches only: TORCH_HOME hub checkpoints, Hugging Face cache; "
        "nothing is downloaded), or a checkpoint file / folder of checkpoints.",
        metavar="WEIGHTS",
        ini_help=" (paths relative to the ini file)",
    ),
    # baselines, gating, constraints
    Option(
        "--dnn-baseline",
        "dnn_baseline",
        "baseline to check against: a file, 'auto' (baselines/<platform key>.json under the rootdir, the "
        "default), 'store' (the last runs of each test in the results store, --dnn-store) or 'none'.",
        default="auto",
    ),
    Option(
        "--dnn-baseline-branch",
        "dnn_baseline_branch",
        "with --dnn-baseline=store: the branch whose runs are the baseline (default: the repository's default "
        "branch; '*' for any branch).",
        metavar="BRANCH",
    ),
    Option(
        "--dnn-baseline-runs",
        "dnn_baseline_runs",
        "with --dnn-baseline=store: how many of the last complete runs each test is compared with.",
        default="5",
    ),
    Option(
        "--dnn-baseline-rounds",
        "dnn_baseline_rounds",
        "rounds kept per entry when saving a baseline (each --dnn-save-baseline run adds one; use at least 5).",
        default="10",
    ),
    Option(
        "--dnn-latency-tolerance",
        "dnn_latency_tolerance",
        "latency regression threshold: slower than baseline x (1 + this), and significant (e.g. 10%% or 0.1).",
        default="10%",
        parse=parse_tolerance,
        field="tolerances.latency",
        marker=("dnn_tolerance", "latency"),
    ),
    Option(
        "--dnn-memory-tolerance",
        "dnn_memory_tolerance",
        "memory regression threshold: total memory above baseline x (1 + this).",
        default="10%",
        parse=parse_tolerance,
        field="tolerances.memory",
        marker=("dnn_tolerance", "memory"),
    ),
    Option(
        "--dnn-top1-tolerance",
        "dnn_top1_tolerance",
        "Top-1 regression threshold in percentage points (measured accuracy only).",
        default="0.5",
        parse=parse_points,
        field="tolerances.top1",
        marker=("dnn_tolerance", "top1"),
    ),
    Option(
        "--dnn-latency-alpha",
        "dnn_latency_alpha",
        "one-sided significance level of the latency test against the between-round spread (0.01; 0.001 "
        "raises fewer false alarms on drifting machines and catches less: docs/baselines.md).",
        default="0.01",
        parse=parse_probability,
        field="tolerances.alpha",
    ),
    Option(
        "--dnn-max-slowdown",
        "dnn_max_slowdown",
        "hard ceiling of the latency gate: a quiet measurement slower than the baseline by this factor fails, "
        "whatever the baseline's spread (e.g. 2, 2x, 1.5x).",
        default="2x",
        parse=parse_slowdown,
        field="tolerances.max_slowdown",
        marker=("dnn_tolerance", "max_slowdown"),
    ),
    Option(
        "--dnn-strict",
        "dnn_strict",
        "fail an inconclusive latency comparison (measured on a busy machine, against a baseline recorded on "
        "one, or with fewer samples than the minimum) instead of passing it with a note.",
        kind="switch",
        ini="bool",
    ),
    Option(
        "--dnn-speed-reference",
        "dnn_speed_reference",
        "on the CPU, time a fixed reference workload after each call and compare latencies at the baseline's "
        "machine speed (on, the default), or compare them as measured (off): docs/baselines.md, "
        '"The machine\'s speed".',
        default="on",
        metavar="on|off",
    ),
    Option(
        "--dnn-confirm",
        "dnn_confirm",
        "fresh processes that measure a suspicious latency again (slower than the baseline beyond the tolerance, "
        "under the hard ceiling) before it fails; their medians are judged against the baseline's rounds "
        "(0 turns it off).",
        default="4",
    ),
    Option(
        "--dnn-calm-wait",
        "dnn_calm_wait",
        "how long a test measured on a busy machine waits for it to calm down before it is measured again "
        "(at most 30s; 0 measures again at once).",
        default="30s",
    ),
    Option(
        "--dnn-max-memory",
        "dnn_max_memory",
        "deployment constraint: maximum total process memory (0.7GB = 7e8 bytes, 700MB, 1.4GiB = 1.4 x 2^30, bytes).",
        parse=parse_bytes,
        field="constraints.max_memory",
        marker=("dnn_constraints", "max_memory"),
    ),
    Option(
        "--dnn-min-fps",
        "dnn_min_fps",
        "deployment constraint: minimum images per second at the batch size under test (e.g. 30).",
        parse=parse_rate,
        field="constraints.min_fps",
        marker=("dnn_constraints", "min_fps"),
    ),
    Option(
        "--dnn-max-model-memory",
        "dnn_max_model_memory",
        "deployment constraint: maximum memory of the model itself (CPU: its parameters and buffers + the forward "
        "pass's working set, without the runtime floor of torch and its library; GPU: the allocator's peak, "
        "without the CUDA context), e.g. 200MB.",
        parse=parse_bytes,
        field="constraints.max_model_memory",
        marker=("dnn_constraints", "max_model_memory"),
    ),
    Option(
        "--dnn-require-baseline",
        "dnn_require_baseline",
        "fail a test for which no baseline applies (for CI).",
        kind="switch",
        ini="bool",
    ),
    Option(
        "--dnn-save-baseline",
        "dnn_save_baseline",
        "add this run as one round to a baseline file (default: the platform's file in "
        "baselines/), merging with the entries already there; written atomically, and not "
        "after a run with a regression unless --dnn-baseline-force.",
        kind="optional",
        ini=None,
        metavar="PATH",
        const="auto",
    ),
    Option(
        "--dnn-baseline-force",
        "dnn_baseline_force",
        "with --dnn-save-baseline: save even though this run regressed against the baseline "
        "(or the file is for another platform).",
        kind="switch",
        ini=None,
    ),
    # reports
    Option(
        "--dnn-report",
        "dnn_report",
        "write the report into DIR at the end of the run: results.json, results.csv, report.md, "
        "report.html (self-contained) and the paper's figures as PNG.",
        metavar="DIR",
    ),
    Option(
        "--dnn-benchmark-tables",
        "dnn_benchmark_tables",
        "in benchmark mode, also print pytest-benchmark's own tables at the end of the run (hidden by default; "
        "--benchmark-json, --benchmark-save, --benchmark-compare and --benchmark-histogram work either way).",
        kind="switch",
        ini="bool",
    ),
)


def _rows(group: str) -> list[tuple[str, Option, Callable[[object, str], Any]]]:
    """The options whose value goes into ``group`` (``tolerances``, ``constraints``): (its field there, the
    option, its parser)."""
    return [
        (o.field.split(".", 1)[1], o, o.parse)
        for o in OPTIONS
        if o.field is not None and o.parse is not None and o.field.startswith(group + ".")
    ]


def _marked(marker: str) -> dict[str, tuple[str, Callable[[object, str], Any]]]:
    """The keywords of ``marker``: keyword -> (the field it sets, its parser), in the option table's order."""
    return {
        o.marker[1]: (o.field.split(".", 1)[1], o.parse)
        for o in OPTIONS
        if o.marker is not None and o.marker[0] == marker and o.field is not None and o.parse is not None
    }


_BY_DEST = {o.dest: o for o in OPTIONS}


class _Reader:
    """Reads options from a pytest config: command line, else ini, else the table's default."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.invocation = Path(config.invocation_params.dir)
        self.ini_dir = Path(config.inipath).parent if config.inipath else Path(config.rootpath)

    def value(self, dest: str) -> _Value:
        opt = _BY_DEST[dest]
        given = self.config.getoption(dest, default=None)
        if given is not None:
            return _Value(str(given), "cmdline", self.invocation)
        if opt.ini is not None:
            ini = self.config.getini(dest)
            if isinstance(ini, (list, tuple)):
                ini = ",".join(str(item).strip() for item in ini if str(item).strip())
            if ini not in ("", None):
                return _Value(str(ini), "ini", self.ini_dir)
        return _Value(opt.default, "default", self.ini_dir)

    def parsed(self, dest: str, parse: Callable[[str, str], T]) -> T | None:
        v = self.value(dest)
        return None if v.text is None else parse(v.text, _BY_DEST[dest].flag)

    def required(self, dest: str, parse: Callable[[str, str], T]) -> T:
        result = self.parsed(dest, parse)
        if result is None:
            raise pytest.UsageError(f"{_BY_DEST[dest].flag}: no value and no default")
        return result

    def switch(self, dest: str) -> bool:
        given = self.config.getoption(dest, default=None)
        if given is not None:
            return bool(given)
        if _BY_DEST[dest].ini != "bool":
            return False
        try:
            return bool(self.config.getini(dest))
        except (ValueError, pytest.UsageError) as exc:  # pytest's own words only: "invalid truth value 'maybe'"
            where = f" in {self.config.inipath}" if self.config.inipath else ""
            raise pytest.UsageError(
                f"ini {dest}{where}: {exc}. Use {dest} = true or {dest} = false (or leave the key out)"
            ) from None

    def path(self, dest: str) -> Path | None:
        v = self.value(dest)
        if v.text is None:
            return None
        if not v.text.strip():
            raise usage_error(_BY_DEST[dest].flag, v.text, "empty path", "Give a file or directory path")
        return parse_path(v.text.strip(), v.base)


@dataclass(frozen=True)
class Settings:
    """Every option of the session, parsed once at configure time (:meth:`from_config`)."""

    # -- what runs, and how
    models: str | None = None
    device: str = "auto"
    batch_sizes: tuple[int, ...] = PAPER_BATCH_SIZES
    precision: str = "fp32"
    modes: tuple[str, ...] = ("eager",)
    compile_mode: str = "default"
    prepare_timeout_s: float = 300.0
    channels_last: bool = False
    threads: int | None = None
    cudnn_benchmark: bool = True
    tf32: bool = False
    seed: int = 0
    policy: SamplingPolicy = SamplingPolicy()
    json_path: Path | None = None
    #: ``--dnn-store`` (ini ``dnn_store``, ``DNNBENCH_STORE``): the results store to write to (None: none).
    store: StoreChoice | None = None
    #: ``--dnn-shard``: this run's share of the tests (None: all of them).
    shard: Shard | None = None
    #: ``--dnn-run-group``, else the CI's run id (None: neither): ties the shards of one run together.
    run_group: str | None = None
    isolate: str = "none"
    max_host_memory: int | None = None
    allow_parallel_cpu: bool = False
    allow_shared_gpu: bool = False
    list_models: bool = False
    # -- accuracy
    imagenet: Path | None = None
    accuracy_limit: int | None = None
    weights: str = "random"
    # -- baselines and constraints
    baseline: str = "auto"
    baseline_given: bool = False
    require_baseline: bool = False
    save_baseline: str | None = None
    baseline_force: bool = False
    baseline_rounds: int = 10
    #: ``--dnn-baseline=store``: the branch (None: the repository's default; ``*``: any) and how many runs.
    baseline_branch: str | None = None
    baseline_runs: int = 5
    tolerances: Tolerances = Tolerances()
    constraints: Constraints = Constraints()
    strict: bool = False
    #: Time the reference workload on the CPU and compare latencies at the baseline's machine speed.
    speed_reference: bool = True
    calm_wait_s: float = MAX_CALM_WAIT_S
    confirm: int = 4
    # -- reports
    report_dir: Path | None = None
    #: pytest-benchmark's own end-of-run tables, in benchmark mode (``--dnn-benchmark-tables``).
    benchmark_tables: bool = False
    rootpath: Path = Path(".")

    @property
    def benchmark_mode(self) -> bool:
        """Benchmark mode: models were asked for (``--dnn-models`` or ini ``dnn_models``)."""
        return self.models is not None

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        r = _Reader(config)
        min_samples = r.required("dnn_min_samples", lambda v, o: parse_int(v, o, 1))
        max_samples = r.required("dnn_max_samples", lambda v, o: parse_int(v, o, 1))
        if max_samples < min_samples:
            raise pytest.UsageError(
                f"--dnn-max-samples={max_samples} is below --dnn-min-samples={min_samples}: raise the maximum "
                "or lower the minimum"
            )
        warmup = r.required("dnn_warmup", lambda v, o: parse_int(v, o, 0))
        policy = SamplingPolicy(
            min_samples=min_samples,
            max_samples=max_samples,
            ci_target=r.required("dnn_ci_target", parse_fraction),
            max_time_s=r.required("dnn_max_time", parse_duration),
            warmup_min=warmup,
            warmup_max=max(warmup, SamplingPolicy.warmup_max),
        )
        given = r.value("dnn_models")
        models = given.text
        if given.origin == "cmdline" and not (models or "").strip():
            # An unset CI variable ($MODELS) must not turn benchmark mode off silently.
            raise usage_error(
                "--dnn-models",
                models,
                "no model given",
                "Name models (e.g. --dnn-models=default, paper or resnet18,mobilenet_v2), or leave "
                "the option out (an empty ini dnn_models = stays off)",
            )
        shard, run_group = _shard_setting(r), _run_group_setting(r)
        settings = cls(
            models=models.strip() if models is not None and models.strip() else None,
            device=r.required("dnn_device", parse_device),
            batch_sizes=r.required("dnn_batch_sizes", parse_batch_sizes),
            precision=r.required("dnn_precision", parse_precision),
            modes=r.required("dnn_modes", parse_modes),
            compile_mode=r.required("dnn_compile_mode", _parse_compile_mode),
            prepare_timeout_s=r.required("dnn_prepare_timeout", parse_duration),
            channels_last=r.switch("dnn_channels_last"),
            threads=r.parsed("dnn_threads", lambda v, o: parse_int(v, o, 1, MAX_THREADS)),
            cudnn_benchmark=r.required("dnn_cudnn_benchmark", parse_on_off),
            tf32=r.switch("dnn_tf32"),
            seed=r.required("dnn_seed", lambda v, o: parse_int(v, o, 0, 2**63 - 1)),
            policy=policy,
            json_path=r.path("dnn_json"),
            store=_store_setting(r, shard, run_group),
            shard=shard,
            run_group=run_group,
            isolate=r.required("dnn_isolate", lambda v, o: parse_choice(v, o, ("none", "process"), "isolation")),
            max_host_memory=r.parsed("dnn_max_host_memory", _parse_host_memory),
            allow_parallel_cpu=r.switch("dnn_allow_parallel_cpu"),
            allow_shared_gpu=r.switch("dnn_allow_shared_gpu"),
            list_models=r.switch("dnn_list_models"),
            **_accuracy_settings(r),
            **_gating_settings(r),
            report_dir=_report_dir(r),
            benchmark_tables=r.switch("dnn_benchmark_tables"),
            rootpath=Path(config.rootpath),
        )
        if settings.baseline == "store" and settings.store is None:
            raise pytest.UsageError(
                "--dnn-baseline=store: no results store is named. Give --dnn-store=URL (or set DNNBENCH_STORE), "
                "or compare with a baseline file (--dnn-baseline=auto or a path)"
            )
        if settings.isolate == "process" and settings.modes != ("eager",):
            raise pytest.UsageError(
                f"--dnn-modes={','.join(settings.modes)} with --dnn-isolate=process: isolated measurements run "
                "eager only. Drop --dnn-isolate=process to run the other modes (in this process), or keep eager alone"
            )
        if settings.max_host_memory is not None and settings.modes != ("eager",):
            raise pytest.UsageError(
                f"--dnn-modes={','.join(settings.modes)} with --dnn-max-host-memory: the host-memory guard measures "
                "each test in a fresh process, which runs eager only (the other modes would silently be measured "
                "as eager). Drop --dnn-max-host-memory to run the other modes, or keep eager alone"
            )
        return settings


def _store_setting(r: _Reader, shard: Shard | None, run_group: str | None) -> StoreChoice | None:
    given = r.config.getoption("dnn_store", default=None)
    ini = r.config.getini("dnn_store")
    choice = store_choice(
        None if given is None else str(given), r.invocation, str(ini) if ini else None, r.ini_dir, os.environ
    )
    if choice is None:
        return None
    # The run's row in the store names its shard and run group.
    return replace(choice, shard=(shard.index, shard.count) if shard else None, run_group=run_group)


def _shard_setting(r: _Reader) -> Shard | None:
    """``--dnn-shard``; at a pytest-xdist worker, the controller's shard (``auto`` read where the run started)."""
    wired = getattr(r.config, "workerinput", None)
    try:
        if isinstance(wired, dict) and "dnn_shard" in wired:
            return parse_shard(wired["dnn_shard"], {})
        return parse_shard(r.value("dnn_shard").text, os.environ)
    except UsageProblem as exc:
        raise pytest.UsageError(str(exc)) from None


def _run_group_setting(r: _Reader) -> str | None:
    """``--dnn-run-group``, else the CI's run id (``<provider>:<id>``), else None."""
    text = r.value("dnn_run_group").text
    if text is not None:
        try:
            return parse_run_group(text)
        except UsageProblem as exc:
            raise pytest.UsageError(str(exc)) from None
    from .store.runmeta import ci_info, run_group_id

    return run_group_id(ci_info(os.environ))


def _parse_compile_mode(value: object, option: str) -> str:
    from .measure.modes import COMPILE_MODES

    return parse_choice(value, option, COMPILE_MODES, "torch.compile mode")


def _parse_host_memory(value: object, option: str) -> int:
    from .oom import GUARD_SUPPORTED

    size = parse_bytes(value, option)
    if not GUARD_SUPPORTED:
        raise usage_error(
            option,
            value,
            "the host-memory guard needs Linux (RLIMIT_DATA and /proc)",
            "Leave the option out on this platform",
        )
    return size


class _AccuracyFields(TypedDict):
    imagenet: Path | None
    accuracy_limit: int | None
    weights: str


class _GatingFields(TypedDict):
    baseline: str
    baseline_given: bool
    require_baseline: bool
    save_baseline: str | None
    baseline_force: bool
    baseline_rounds: int
    baseline_branch: str | None
    baseline_runs: int
    tolerances: Tolerances
    constraints: Constraints
    strict: bool
    speed_reference: bool
    calm_wait_s: float
    confirm: int


def _accuracy_settings(r: _Reader) -> _AccuracyFields:
    from .accuracy.weights import parse_weights

    data = r.path("dnn_imagenet")
    limit = r.parsed("dnn_accuracy_limit", _parse_limit)
    w = r.value("dnn_weights")
    text = w.text
    if text is not None and text.strip().lower() not in ("random", "pretrained"):
        text = str(parse_path(text.strip(), w.base))
    try:
        weights = parse_weights(text)
    except (ValueError, OSError) as exc:  # OSError: a path the system refuses (too long a name)
        raise usage_error(
            "--dnn-weights",
            text,
            f"the system refuses this path ({exc.strerror})" if isinstance(exc, OSError) else str(exc),
            "Use random, pretrained (local caches only) or the path of a checkpoint file or folder",
        ) from None
    return {"imagenet": data, "accuracy_limit": limit, "weights": weights}


def _parse_limit(value: object, option: str) -> int:
    v = str(value).strip()
    if not v.isdigit() or len(v) > 10 or int(v) < 1:
        raise usage_error(
            option, value, "not a positive whole number of at most 10 digits", "Give the number of images, e.g. 1000"
        )
    return int(v)


def _gating_settings(r: _Reader) -> _GatingFields:
    b = r.value("dnn_baseline")
    baseline_given = b.origin == "cmdline"
    baseline = str(b.text or "auto").strip()
    given_save = r.config.getoption("dnn_save_baseline", default=None)
    save: str | None = None
    if given_save is not None:
        save = str(given_save).strip() or "auto"
        save = "auto" if save.lower() == "auto" else str(resolved(parse_path(save, r.invocation)))
    if baseline.lower() in ("auto", "none", "store"):
        baseline = baseline.lower()
    else:
        baseline = str(resolved(parse_path(baseline, b.base)))  # a link loop is named when the file is read
    if not baseline_given and save not in (None, "auto"):
        baseline = save  # --dnn-save-baseline=PATH alone: compare with that file too
    require = r.switch("dnn_require_baseline")
    if require and baseline == "none":
        raise pytest.UsageError(
            "--dnn-require-baseline with --dnn-baseline=none: no baseline could ever apply. "
            "Drop one of the two, or name a baseline file (or auto)"
        )
    tolerances = replace(Tolerances(), **{key: r.required(o.dest, parse) for key, o, parse in _rows("tolerances")})
    given: dict[str, Any] = {}
    for key, o, parse in _rows("constraints"):
        v = r.value(o.dest)
        given[key] = r.parsed(o.dest, parse)
        given[f"{key}_source"] = v.describe(o) if v.text is not None else ""
    constraints = replace(Constraints(), **given)
    return {
        "baseline": baseline,
        "baseline_given": baseline_given,
        "require_baseline": require,
        "save_baseline": save,
        "baseline_force": r.switch("dnn_baseline_force"),
        "baseline_rounds": r.required("dnn_baseline_rounds", _parse_rounds),
        "baseline_branch": (r.value("dnn_baseline_branch").text or "").strip() or None,
        "baseline_runs": r.required("dnn_baseline_runs", lambda v, o: parse_int(v, o, 1, 1000)),
        "tolerances": tolerances,
        "constraints": constraints,
        "strict": r.switch("dnn_strict"),
        "speed_reference": r.required("dnn_speed_reference", _parse_on_off),
        "calm_wait_s": r.required("dnn_calm_wait", parse_calm_wait),
        "confirm": r.required("dnn_confirm", lambda v, o: parse_int(v, o, 0, MAX_CONFIRM)),
    }


def _parse_on_off(value: object, option: str) -> bool:
    v = str(value).strip().lower()
    if v in ("on", "true", "yes", "1"):
        return True
    if v in ("off", "false", "no", "0"):
        return False
    raise usage_error(option, value, "neither on nor off", "Give on or off")


def _parse_rounds(value: object, option: str) -> int:
    v = str(value).strip()
    if not re.fullmatch(r"[+]?\d+", v) or len(v) > 7:
        raise usage_error(option, value, "not a whole number below 10 million", "Give a number of rounds such as 10")
    n = int(v)
    if n < 1:
        raise usage_error(
            option, value, "must be at least 1", "Give a number of rounds such as 10 (at least 5 recommended)"
        )
    return n


def _report_dir(r: _Reader) -> Path | None:
    v = r.value("dnn_report")
    if v.text is None:
        return None
    if not v.text.strip():
        raise pytest.UsageError("--dnn-report=: give a directory, e.g. --dnn-report=dnn-report")
    out = parse_path(v.text.strip(), v.base)
    try:
        not_a_directory = out.exists() and not out.is_dir()
    except OSError:  # a name the system refuses: check_writable says so
        not_a_directory = False
    if not_a_directory:
        raise usage_error(
            "--dnn-report",
            v.text,
            f"{out} exists and is not a directory",
            "Give a directory (it is created if missing)",
        )
    try:
        check_writable(out, "--dnn-report", directory=True)
    except UsageProblem as exc:
        raise pytest.UsageError(str(exc)) from None
    return out


# -- per-test limits from markers ------------------------------------------------------------------


def _marker_signature(marker: str) -> str:
    return f"{marker}({', '.join(f'{kw}=None' for kw in _marked(marker))})"


MARKERS = (
    _marker_signature("dnn_tolerance") + ": override the baseline tolerances for this test (latency and memory "
    "relative, e.g. 0.2 or '20%'; top1 in percentage points; max_slowdown a ratio such as 3 or '3x').",
    _marker_signature("dnn_constraints") + ": deployment limits for this test's dnn_bench records (max_memory: "
    "'1.0GB', '700MB', '1.4GiB' or bytes; min_fps: images per second at the batch under test; max_model_memory: "
    "the model's own memory, without the runtime floor, as max_memory).",
)


def item_limits(
    settings: Settings, where: str, tolerance: pytest.Mark | None, constraints: pytest.Mark | None
) -> tuple[Tolerances, Constraints]:
    """This test's tolerances and constraints: the session's, overridden by its markers."""
    tol, cons = settings.tolerances, settings.constraints
    if tolerance is not None:
        rows = _marked("dnn_tolerance")
        kwargs = _marker_kwargs(tolerance, where, "dnn_tolerance", tuple(rows), "latency=0.2")
        tol = replace(tol, **{rows[kw][0]: rows[kw][1](v, f"{where}: dnn_tolerance({kw}") for kw, v in kwargs.items()})
    if constraints is not None:
        rows = _marked("dnn_constraints")
        kwargs = _marker_kwargs(constraints, where, "dnn_constraints", tuple(rows), "max_memory='1GB'")
        given: dict[str, Any] = {}
        for kw, value in kwargs.items():
            if value is not None:
                key, parse = rows[kw]
                given[key] = parse(value, f"{where}: dnn_constraints({kw}")
                given[f"{key}_source"] = f"marker dnn_constraints({kw}={value!r})"
        cons = replace(cons, **given)
    return tol, cons


def _marker_kwargs(mark: pytest.Mark, where: str, name: str, known: tuple[str, ...], example: str) -> dict[str, object]:
    if mark.args:
        raise pytest.UsageError(f"{where}: {name} takes keywords only, e.g. {name}({example})")
    unknown = set(mark.kwargs) - set(known)
    if unknown:
        raise pytest.UsageError(
            f"{where}: {name} got unknown keyword(s) {', '.join(sorted(unknown))}; "
            f"use {' or '.join(known) if len(known) == 2 else ', '.join(known[:-1]) + ' or ' + known[-1]}"
        )
    return dict(mark.kwargs)
