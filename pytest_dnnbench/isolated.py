"""``--dnn-isolate=process``: measure one (model, batch size) in a fresh process.

The parent (the pytest process, or an xdist worker) starts ``python -m pytest_dnnbench.isolated``
for each test, writes one JSON request on its stdin, and reads one JSON answer from the last line
of its stdout that starts with :data:`ANSWER_PREFIX`. The child builds the model from its registry
spec (so only models registered by importable name, ``"package.module:callable"``, or from the
built-in catalogue can be isolated), prepares it, counts FLOPs and parameters, and measures it
with the same :func:`~pytest_dnnbench.measure.bench.measure` as an in-process run, then prints the
record (the same schema). Nothing but the child ever holds the model, so the memory figures are
those of a process that has only ever seen this model at this batch size. On the CPU the child
measures before it counts FLOPs or collects the environment, so that its peak RSS is that of a
process holding torch, the model's library, the model and the batch: the record's ``total`` is
that figure, measured directly (``direct_total``, and ``memory_method`` starts with ``direct:``).

The parent side (:func:`run_isolated`) turns every failure into a clear message: a non-zero exit
status or a crash (with the status and the tail of stderr), a timeout (the child is killed), out
of memory in the child (the usual skip), and a model that cannot be rebuilt elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

from .measure.child import ChildTimeout, last_line, run_json_child, stderr_tail

if TYPE_CHECKING:
    import torch

    from .jsontypes import JsonObject
    from .measure.backends import Backend
    from .measure.bench import BenchSettings, Measurement
    from .measure.flops import Complexity
    from .models.spec import ModelSpec

ANSWER_PREFIX = "@@dnnbench-isolated@@ "
#: Seconds allowed on top of the time budget: starting Python, importing torch, building the model.
STARTUP_MARGIN_S = 120.0


class IsolationError(Exception):
    """The isolated measurement failed; the message says how (the test fails with it)."""


class IsolatedOutOfMemory(Exception):
    """The child ran out of memory: ``str()`` is the summary for the skip message."""


class IsolatedModel:
    """What ``dnn_model`` returns under ``--dnn-isolate=process``: the spec, never a built model."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    def __repr__(self) -> str:
        return f"IsolatedModel({self.spec.name!r})"


def check_importable(spec: ModelSpec) -> None:
    if spec.factory is not None:
        raise IsolationError(
            f"--dnn-isolate=process: model {spec.name!r} was registered with a Python callable "
            f"({spec.builder}), which a fresh process cannot import. Register it by importable name, "
            f"registry.register({spec.name!r}, 'package.module:callable', ...), or run without --dnn-isolate"
        )


def make_request(
    spec: ModelSpec, settings: BenchSettings, batch_size: int, test: str, max_host_memory: int | None = None
) -> JsonObject:
    check_importable(spec)
    s = asdict(settings)
    return {
        "spec": {
            "name": spec.name,
            "source": spec.source,
            "builder": spec.builder,
            "input_size": list(spec.input_size),
            "paper_name": spec.paper_name,
            "family": spec.family,
            "builder_kwargs": [list(kv) for kv in spec.builder_kwargs],
        },
        "settings": s,
        "batch_size": int(batch_size),
        "test": test,
        "max_host_memory": max_host_memory,
    }


def timeout_for(settings: BenchSettings) -> float:
    return 2.0 * float(settings.policy.max_time_s) + STARTUP_MARGIN_S


def run_isolated(
    request: JsonObject, timeout_s: float, python: str | None = None
) -> tuple[JsonObject, JsonObject | None]:
    """Run the child; return its record and its environment (versions, hardware, settings), or raise
    :class:`IsolationError`/:class:`IsolatedOutOfMemory`. The parent never touches the device itself:
    on a GPU, only the child holds a CUDA context."""
    env = dict(os.environ)
    # The child imports what the parent could: the project's models, conftest directories.
    paths = [p for p in sys.path if p] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    name, batch = request["spec"]["name"], request["batch_size"]
    try:
        run = run_json_child(
            "pytest_dnnbench.isolated", request, prefix=ANSWER_PREFIX, timeout_s=timeout_s, env=env, python=python
        )
    except ChildTimeout as exc:
        raise IsolationError(
            f"isolated measurement of {name} at batch {batch} timed out after {timeout_s:g} s "
            f"(--dnn-max-time x 2 + {STARTUP_MARGIN_S:g} s to start); the process was killed"
            f"{stderr_tail(exc.stderr)}"
        ) from None
    answer = run.answer
    if run.returncode != 0 or answer is None:
        limit = request.get("max_host_memory")
        if limit is not None and died_of_the_memory_limit(run.returncode, run.stderr):
            raise IsolatedOutOfMemory(
                f"the measuring process {run.how} under the host-memory limit of {limit:,} bytes "
                f"(--dnn-max-host-memory): {last_line(run.stderr) or 'no message'}"
            )
        raise IsolationError(
            f"isolated measurement of {name} at batch {batch}: the process {run.how}"
            f"{'' if answer is not None or run.returncode != 0 else ' without an answer'}{stderr_tail(run.stderr)}"
        )
    if "oom" in answer:
        raise IsolatedOutOfMemory(answer["oom"])
    if "error" in answer:
        raise IsolationError(
            f"isolated measurement of {name} at batch {batch} failed: {answer['error']}{stderr_tail(run.stderr)}"
        )
    return answer["record"], answer.get("environment")


#: What a process says when the host-memory limit (RLIMIT_DATA) refused it memory in native code.
_MEMORY_WORDS = (
    "cannot allocate memory",
    "out of memory",
    "bad_alloc",
    "memoryerror",
    "thread creation failed",
    "resource temporarily unavailable",
    "can't allocate memory",
    "failed to allocate",
    # oneDNN (torch's CPU convolutions) loses the status of a refused allocation: creating a primitive
    # (its JIT code and scratchpad) under the limit fails with this alone; with room, the same call works.
    "could not create a primitive",
)
#: Signals a process dies of when native code does not handle a refused allocation.
_CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGKILL)


def died_of_the_memory_limit(status: int, stderr: str | None) -> bool:
    """Whether a measuring process that ran under ``--dnn-max-host-memory`` ended because of it.

    Native code (OpenMP's thread pool, allocators in C++) does not raise a Python error when
    RLIMIT_DATA refuses it memory: it aborts, or crashes on the null pointer. Under the limit such
    an end, or a message about memory, counts as out of memory.
    """
    text = (stderr or "").lower()
    return any(w in text for w in _MEMORY_WORDS) or (status < 0 and -status in _CRASH_SIGNALS)


# -- the child ---------------------------------------------------------------------------------------


def _child(request: JsonObject) -> JsonObject:
    """Build and measure the model in this (fresh) process; return the answer for the parent.

    On the CPU the model is built and measured first, and only then are its FLOPs counted and the
    environment collected: the memory pass then reads the peak RSS of a process holding torch, the
    model's library, the model and the batch (and this package's few pure-Python modules, about
    2 MiB), which is reported as the direct ``total`` (:func:`_direct_memory`). The FLOP counters
    (thop, FlopCounterMode) are primed before the measurement only under ``--dnn-max-host-memory``,
    so that their one-time cost is not charged to the model's limit: their resident part (about
    7 MiB here) then counts in the direct figure. On a GPU the order is the in-process one.
    """
    import torch

    from .measure.backends import make_backend
    from .measure.bench import BenchSettings, apply_process_settings, make_input, measure, prepare_model
    from .measure.timing import SamplingPolicy
    from .models.spec import ModelSpec
    from .oom import describe, host_memory_guard, is_out_of_memory
    from .registry import build_model, import_source

    s = dict(request["settings"])
    s["policy"] = SamplingPolicy(**s["policy"])
    settings = BenchSettings(**s)
    sp = request["spec"]
    spec = ModelSpec(
        name=sp["name"],
        source=sp["source"],
        builder=sp["builder"],
        input_size=tuple(sp["input_size"]),
        paper_name=sp.get("paper_name"),
        family=sp.get("family") or "",
        builder_kwargs=tuple(tuple(kv) for kv in sp["builder_kwargs"]),
    )
    batch = int(request["batch_size"])
    limit = request.get("max_host_memory")
    # On the CPU nothing but torch, the model's library, the model and the batch may be resident when
    # the memory is read: FLOP counting and the environment (importlib.metadata, NVML) come after it.
    memory_first = settings.device == "cpu"

    apply_process_settings(settings)
    backend = make_backend(settings.device)
    environment = None if memory_first else _environment(backend, settings)
    import_source(spec)  # before the limit: it bounds what the model adds, not importing its library
    primed = limit is not None or not memory_first
    if primed:
        _prime_counters()  # (and not the FLOP counters' one-time set-up)
    try:
        with host_memory_guard(limit):
            torch.manual_seed(settings.seed)
            t_build = time.monotonic()
            model = prepare_model(build_model(spec), settings)
            build_s = time.monotonic() - t_build
            if not memory_first:
                complexity = _complexity(model, make_input(1, spec.input_size, settings))
            backend.before_measure()
            # The budget covers the build, as for the first test of a model in process.
            measurement = measure(model, batch, spec.input_size, settings, backend, start=time.monotonic() - build_s)
            if memory_first:
                complexity = _complexity(model, make_input(1, spec.input_size, settings))
    except BaseException as exc:  # noqa: BLE001
        if is_out_of_memory(exc) or (limit is not None and _caused_by_memory(exc)):
            under = f"; under the host-memory limit of {limit:,} bytes (--dnn-max-host-memory)" if limit else ""
            return {"oom": describe(exc) + under}
        raise
    if memory_first:
        from .measure.floor import library_of, model_bytes

        # What import_source imported: the library, or the module of a dnnbench/custom builder.
        module = spec.builder.partition(":")[0] if ":" in spec.builder else type(model).__module__
        library = library_of(spec.source, module)
        measurement = _direct_memory(measurement, library, model_bytes(model), counters_primed=primed)
    if environment is None:
        environment = _environment(backend, settings)

    from .record import timed_record
    from .results import plain

    record = timed_record(  # the record the in-process runner assembles, from the same parts
        model=spec.name,
        spec=spec,
        settings=settings,
        device_name=backend.device_name(),
        threads=torch.get_num_threads(),
        measurement=measurement,
        complexity=complexity,
        test=request.get("test"),
        build_s=build_s,
        isolation="process",
    )
    return {"record": plain(record.to_json()), "environment": plain(environment)}


#: ``memory_method`` of a record whose ``total`` an isolated child measured directly starts with this.
DIRECT_METHOD = "direct: "


def _direct_memory(
    measurement: Measurement, library: str | None, model_nbytes: int, counters_primed: bool = False
) -> Measurement:
    """The CPU memory figures of a child as measured directly.

    ``total`` stays what the memory pass read, the child's peak RSS, and is repeated as
    ``direct_total`` (the parent can tell a direct figure by that key, and by ``memory_method``
    starting with :data:`DIRECT_METHOD`) and as ``process_total`` (the child is the whole process);
    ``model`` is the model's own bytes (parameters and buffers).
    """
    memory = dict(measurement.memory)
    peak = memory.get("total")
    if peak is None:
        return measurement
    memory["direct_total"] = peak
    memory["process_total"] = peak
    memory["model"] = model_nbytes
    held = ", ".join(["torch", *([library] if library else []), "the model and the batch"])
    primed = "; the FLOP counters primed before it (--dnn-max-host-memory) count in it" if counters_primed else ""
    method = f"{DIRECT_METHOD}peak RSS of an isolated process holding {held}{primed}; {measurement.memory_method}"
    return dataclasses.replace(measurement, memory=memory, memory_method=method)


def _prime_counters() -> None:
    from .measure.flops import prime_counters

    prime_counters()


def _complexity(model: torch.nn.Module, example: torch.Tensor) -> Complexity:
    from .measure.flops import measure_complexity

    return measure_complexity(model, example)


def _environment(backend: Backend, settings: BenchSettings) -> JsonObject:
    from . import __version__
    from .measure.environment import collect_environment

    return collect_environment(backend, settings, __version__)


def _caused_by_memory(exc: BaseException) -> bool:
    """Whether ``exc`` or an error it came from is a refused allocation (a limit can surface as another error,
    e.g. a failed deserialisation whose cause is a MemoryError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError) or (isinstance(current, OSError) and current.errno == 12):
            return True
        if any(w in str(current).lower() for w in _MEMORY_WORDS):
            return True
        current = current.__cause__ or current.__context__
    return False


def main() -> int:
    request = json.loads(sys.stdin.read())
    answer = _child(request)
    sys.stdout.write("\n" + ANSWER_PREFIX + json.dumps(answer, allow_nan=False) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
