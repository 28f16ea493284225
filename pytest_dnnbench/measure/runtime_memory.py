"""The memory a deployed ONNX Runtime or OpenVINO process holds, measured directly (no torch, no pytest).

A model exported for a runtime is deployed without torch: what such a process holds is measured in
one, a fresh ``python -m pytest_dnnbench.measure.runtime_memory`` that gets a JSON request on stdin
and answers one JSON line on stdout (after :data:`ANSWER_PREFIX`). The child:

1. reads its ``VmRSS`` (``/proc/self/status``) right after it starts (``start``: the interpreter,
   this package's pure-Python modules that ``-m`` imports, about 3.5 MiB, and this module);
2. imports numpy, :mod:`.runtimes` and the runtime, and for OpenVINO loads its CPU plugin (ONNX
   Runtime's import already holds its CPU execution provider), then reads ``VmRSS``: the
   *runtime floor*;
3. loads the file with :func:`.runtimes.load` and reads ``VmRSS``: ``model`` is what the load
   added (the runtime's copies of the weights, its compiled graph);
4. makes a seeded standard-normal float32 batch of ``input_shape`` (float32 always: the exported
   models take float32 inputs whatever the precision they compute in) and runs two warm-up calls
   (``warmup``: what they added, reported apart and counted in ``delta``; OpenVINO prepares its
   weights at the first call, ONNX Runtime keeps its activation arena);
5. resets the kernel's high-water mark (``echo 5 > /proc/self/clear_refs``), runs ``calls`` calls
   and reads ``VmHWM``: ``total``; ``delta`` is ``total`` less the ``VmRSS`` after the load.

Where the mark cannot be reset, ``VmHWM`` still covers the load's transient peaks and the method
says so. At the end the child checks that torch was never imported (``torch_imported`` in the
answer; an error if it was).

For resnet18 in fp32 at batch 1 on one thread (this machine, 2026): ONNX Runtime 1.32 holds a
floor of 57 MiB, 97 MiB for the model (its copy of the 45 MiB of weights, and a prepacked one),
a delta of 7 MiB, 161 MiB in all; OpenVINO 2026.4 a floor of 83 MiB (20 of them its CPU plugin),
80 MiB for the model from an fp32 IR, and a delta of 54 MiB, nearly all of it what its first call
prepares (the weights in its own layout), 216 MiB in all.

The child's threads are pinned through the runtime's options (``threads``) and the thread
variables (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``); it inherits the
parent's environment otherwise, without the variables that start coverage in every subprocess
(:func:`.floor.floor_env`). The parent (:func:`measure_runtime_memory`) needs Linux ``/proc``;
elsewhere it measures nothing and says so, without starting the child.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .child import ChildTimeout, last_line, run_json_child

__all__ = [
    "ANSWER_PREFIX",
    "MEMORY_KEYS",
    "RuntimeMemoryError",
    "make_request",
    "measure_runtime_memory",
    "run_child",
]

ANSWER_PREFIX = "@@dnnbench-runtime-memory@@ "
#: The keys of the memory figures (bytes, or None where not measured).
MEMORY_KEYS = ("total", "runtime_floor", "model", "delta", "warmup")
STATUS_PATH = "/proc/self/status"
CLEAR_REFS_PATH = "/proc/self/clear_refs"
#: Thread variables set to ``threads`` in the child (numpy's BLAS sizes its buffers by its thread count).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
WARMUP_CALLS = 2


class RuntimeMemoryError(Exception):
    """The measuring process failed or timed out; the message says how (its last stderr line)."""


# -- the parent --------------------------------------------------------------------------------------------


def make_request(
    runtime: str, path: Path, *, input_shape: tuple[int, ...], precision: str, threads: int, calls: int = 10
) -> dict[str, Any]:
    if calls < 1:
        raise ValueError(f"calls must be at least 1, not {calls}")
    return {
        "runtime": runtime,
        "path": str(Path(path).resolve()),
        "input_shape": [int(n) for n in input_shape],
        "precision": precision,
        "threads": int(threads),
        "calls": int(calls),
    }


def measure_runtime_memory(
    runtime: str,
    path: Path,
    *,
    input_shape: tuple[int, ...],
    precision: str,
    threads: int,
    calls: int = 10,
    timeout_s: float = 300,
) -> tuple[dict[str, int | None], str]:
    """The memory of a fresh process that runs the exported file at ``path`` in ``runtime`` on the CPU.

    Returns ``({"total", "runtime_floor", "model", "delta", "warmup"}, method)`` in bytes (see the
    module's description), or all None and a method starting ``not measured:`` where this system
    has no ``/proc``. Raises :class:`RuntimeMemoryError` when the child fails or takes longer than
    ``timeout_s``.
    """
    if not os.path.exists(STATUS_PATH):
        return (
            dict.fromkeys(MEMORY_KEYS),
            f"not measured: the memory of a deployed {runtime} process is read from {STATUS_PATH}, "
            "which needs Linux /proc",
        )
    request = make_request(runtime, path, input_shape=input_shape, precision=precision, threads=threads, calls=calls)
    return memory_of(run_child(request, timeout_s))


def child_env(threads: int, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: the parent's (or ``env``) without coverage's start-up variables,
    this process's ``sys.path`` in front of ``PYTHONPATH``, and the thread variables at ``threads``."""
    from .floor import floor_env

    out = floor_env(env, sys.path)
    out.update(dict.fromkeys(THREAD_VARIABLES, str(int(threads))))
    return out


def run_child(request: Mapping[str, Any], timeout_s: float, python: str | None = None) -> dict[str, Any]:
    """Run the measuring process on ``request``; its answer (raises :class:`RuntimeMemoryError`)."""
    what = f"measuring the memory of {request['runtime']} on {Path(str(request['path'])).name}"
    try:
        run = run_json_child(
            "pytest_dnnbench.measure.runtime_memory",
            request,
            prefix=ANSWER_PREFIX,
            timeout_s=timeout_s,
            env=child_env(int(request["threads"])),
            python=python,
        )
    except ChildTimeout as exc:
        last = last_line(exc.stderr, 500)
        raise RuntimeMemoryError(
            f"{what}: timed out after {timeout_s:g} s; the process was killed{': ' + last if last else ''}"
        ) from None
    except OSError as exc:
        raise RuntimeMemoryError(f"{what}: the process could not start: {exc}") from None
    answer = run.answer
    if answer is not None and answer.get("error"):
        raise RuntimeMemoryError(f"{what}: {answer['error']}")
    if run.returncode != 0 or answer is None:
        how = run.how if run.returncode != 0 else "ended without its answer"
        raise RuntimeMemoryError(f"{what}: the process {how}: {last_line(run.stderr, 500) or 'no message'}")
    return answer


def memory_of(answer: Mapping[str, Any]) -> tuple[dict[str, int | None], str]:
    """The memory figures and the method a child's answer gives."""
    readings = answer["readings"]
    start, floor, loaded = readings["start"], readings["runtime_floor"], readings["loaded"]
    warm, peak = readings["warm"], readings["peak"]
    raw = {
        "total": peak,
        "runtime_floor": floor,
        "model": loaded - floor,
        "delta": peak - loaded,
        "warmup": warm - loaded,
    }
    clamped = sorted(k for k, v in raw.items() if v < 0)
    memory: dict[str, int | None] = {k: max(0, int(v)) for k, v in raw.items()}
    info = answer["runtime"]
    reset = answer["peak_reset"]
    method = (
        f"direct: peak RSS (VmHWM) of a fresh process running {info['name']} {info['version']} on the "
        f"exported file (runtime import + its weight copies + the forward pass; no torch): "
        f"runtime_floor = VmRSS after importing {_imported(str(info['name']))} "
        f"(the interpreter and this package's modules: {_mib(start)} at start), "
        f"model = what loading the file added, "
        f"delta = peak over {answer['calls']} calls after {WARMUP_CALLS} warm-up calls above the level after "
        f"the load (warm-up calls added {_mib(raw['warmup'])}), "
        + (
            "high-water mark reset before the calls (/proc/self/clear_refs)"
            if reset
            else "high-water mark NOT reset (/proc/self/clear_refs refused): it covers the load's transient peaks"
        )
        + f"; batch {'x'.join(str(n) for n in answer['input_shape'])} float32, {answer['threads']} thread(s)"
    )
    if clamped:
        method += f"; {', '.join(clamped)} below 0 (memory returned to the system) counted as 0"
    return memory, method


def _imported(runtime: str) -> str:
    if runtime == "openvino":
        return "numpy and openvino and loading its CPU plugin"
    return f"numpy and {runtime}"


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


# -- the child ---------------------------------------------------------------------------------------------


def _status() -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of ``/proc/self/status`` in bytes (:func:`.memory.read_status` would import ctypes)."""
    out: dict[str, int] = {}
    with open(STATUS_PATH, encoding="ascii", errors="replace") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def _rss() -> int:
    return _status()["VmRSS"]


def _reset_peak() -> bool:
    """Reset ``VmHWM`` to the current RSS; whether the kernel did it (checked, not assumed)."""
    try:
        with open(CLEAR_REFS_PATH, "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    st = _status()
    # Reset, the mark is the current RSS (a page or two above it, as the read itself touches memory).
    return st["VmHWM"] - st["VmRSS"] < 1 << 20


def _child(request: Mapping[str, Any]) -> dict[str, Any]:
    start = _rss()
    runtime = str(request["runtime"])
    threads = int(request["threads"])

    import numpy

    from . import runtimes

    module = runtimes.import_runtime(runtime)
    primed = None
    if runtime == "openvino":
        # Load the CPU plugin, which any OpenVINO program on the CPU holds (kept loaded to the end).
        primed = module.Core()
        primed.get_versions("CPU")
    floor = _rss()
    loaded_model = runtimes.load(
        runtime, Path(str(request["path"])), device="cpu", threads=threads, precision=str(request["precision"])
    )
    loaded = _rss()
    shape = tuple(int(n) for n in request["input_shape"])
    x = numpy.random.default_rng(0).standard_normal(shape, dtype=numpy.float32)
    for _ in range(WARMUP_CALLS):
        loaded_model.run(x)
    warm = _rss()
    reset = _reset_peak()
    for _ in range(int(request["calls"])):
        loaded_model.run(x)
    peak = _status()["VmHWM"]
    torch_imported = "torch" in sys.modules
    answer: dict[str, Any] = {
        "readings": {"start": start, "runtime_floor": floor, "loaded": loaded, "warm": warm, "peak": peak},
        "peak_reset": reset,
        "runtime": loaded_model.info.to_json(),
        "calls": int(request["calls"]),
        "threads": threads,
        "input_shape": list(shape),
        "torch_imported": torch_imported,
    }
    loaded_model.close()
    del primed
    if torch_imported:
        answer["error"] = "torch was imported in the runtime's process, whose memory must not include it"
    return answer


def main() -> int:
    try:
        answer = _child(json.loads(sys.stdin.read()))
    except Exception as exc:  # noqa: BLE001 - the parent gets the message, stderr the traceback
        import traceback

        traceback.print_exc()
        text = " ".join(str(exc).split()) or "no message"
        answer = {"error": f"{type(exc).__name__}: {text[:500]}", "torch_imported": "torch" in sys.modules}
    sys.stdout.write("\n" + ANSWER_PREFIX + json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 1 if answer.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
