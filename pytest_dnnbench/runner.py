"""The measurement room: from a model to a finished :class:`~pytest_dnnbench.record.Record` (no pytest here).

:class:`Runner` owns what one run's measurements share: the device's backend and the process-wide
torch settings, the registry model built now (and what its modes prepared), the FLOP counts per model
and input size, and the CPU runtime floors. :meth:`Runner.measure` is one measurement, top to bottom:
build (the ``dnn_model`` fixture, :meth:`Runner.built`), guard against out of memory, count FLOPs,
prepare a mode and check its output against eager, time it, and the deployed memory; then, as the
session asks, :meth:`Runner.measure_again` (the machine was busy), :meth:`Runner.accuracy` and
:meth:`Runner.confirmation` (fresh processes for a suspicious latency).

What ends a test is raised as this module's own exceptions, which the session turns into pytest
outcomes: :class:`Skip` (and :class:`OutOfMemory`, a skip) and :class:`MeasurementFailed`.

``--dnn-isolate=process`` runs the same measurement in a child (:mod:`.isolated`), whose record is
assembled by the same :func:`~pytest_dnnbench.record.timed_record`.
"""

from __future__ import annotations

import dataclasses
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from .isolated import IsolatedModel
from .record import Accuracy, Record, timed_record

if TYPE_CHECKING:
    import torch

    from .accuracy.evaluate import AccuracyRun
    from .gate import Confirmation
    from .jsontypes import JsonObject
    from .measure.backends import Backend
    from .measure.bench import BenchSettings, Measurement
    from .measure.floor import Floor, FloorCache
    from .measure.flops import Complexity
    from .measure.load import LoadSnapshot
    from .measure.modes import Prepared
    from .record import Check
    from .registry import ModelSpec, Registry
    from .settings import Settings

__all__ = [
    "BUSY_CONFIRMATION",
    "BenchCall",
    "CurrentModel",
    "IsolatedModel",
    "MeasurementFailed",
    "Measured",
    "OutOfMemory",
    "Runner",
    "Skip",
    "library_hint",
    "runtime_memory_on_gpu",
]

T = TypeVar("T")

#: Why a fresh process's measurement is left out of a confirmation (``--dnn-confirm``).
BUSY_CONFIRMATION = "measured on a busy machine"


class Skip(Exception):
    """The measurement cannot be made here (a model that is not installed, a mode that cannot be prepared):
    ``str()`` says why; the test is skipped with it."""


class OutOfMemory(Skip):
    """The device (or the host-memory limit) ran out of memory: the test is skipped with ``str()``."""


class MeasurementFailed(Exception):
    """The measurement failed (an isolated child crashed, timed out): the test fails with ``str()``."""


@dataclass
class CurrentModel:
    """The registry model built for the tests running now (one at a time: the next replaces it)."""

    spec: ModelSpec
    module: torch.nn.Module
    #: Seconds its build took, until its first test is charged for them.
    build_s: float | None
    #: What its deployment modes prepared, by (mode, input shape): compiled models, runtime sessions, exported files.
    prepared: dict[tuple[str, tuple[int, ...]], Prepared] = dataclasses.field(default_factory=dict)

    def close(self) -> None:
        """Free what the modes prepared (and delete their exported files)."""
        while self.prepared:
            _, prepared = self.prepared.popitem()
            prepared.close()


@dataclass(frozen=True)
class BenchCall:
    """One ``dnn_bench`` call: what is measured, for which test (its node id, without an xdist group)."""

    test: str
    model: torch.nn.Module | IsolatedModel
    input_size: Sequence[int] | None
    batch: int
    name: str | None
    forward: Callable[[torch.Tensor], object] | None
    mode: str


@dataclass(frozen=True)
class Measured:
    """One measurement: its record, the module measured (None: in another process) and its registry spec."""

    record: Record
    module: torch.nn.Module | None
    spec: ModelSpec | None


class Runner:
    """One run's measurements (see the module's docstring)."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        device: Callable[[], str],
        notes: list[str],
        sys_path: Callable[[], list[str]],
    ):
        self.settings = settings
        self.registry = registry
        #: Resolves (once) and returns the device the tests run on.
        self._device = device
        #: The session's notes for the summary (shared: the runner adds to them).
        self.notes = notes
        #: Where a fresh interpreter measuring a floor finds the project's own models.
        self._sys_path = sys_path
        #: The run's environment (versions, hardware, settings): collected with the backend, or an isolated
        #: child's.
        self.environment: JsonObject | None = None
        self.accuracy_run: AccuracyRun | None = None
        self._backend: Backend | None = None
        self._bench_settings: BenchSettings | None = None
        self._restore: Callable[[], None] | None = None
        self._current: CurrentModel | None = None
        self._complexity: dict[tuple[str, tuple[int, ...]], Complexity] = {}
        self._foreign_complexity: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[int, ...], Complexity]] = (
            weakref.WeakKeyDictionary()
        )
        self._counters_primed = False
        self._floors: FloorCache | None = None
        #: The machine's load at the start of the benchmark run (for the run's load in the environment).
        self._load_start: LoadSnapshot | None = None

    # -- the device, its backend, the process-wide settings ------------------------------------------
    @property
    def has_backend(self) -> bool:
        return self._backend is not None

    def bench_settings(self) -> BenchSettings:
        if self._bench_settings is None:
            from .measure.bench import BenchSettings

            s = self.settings
            self._bench_settings = BenchSettings(
                device=self._device(),
                precision=s.precision,
                channels_last=s.channels_last,
                threads=s.threads,
                cudnn_benchmark=s.cudnn_benchmark,
                tf32=s.tf32,
                seed=s.seed,
                policy=s.policy,
                reference=s.speed_reference,
            )
        return self._bench_settings

    def backend(self) -> Backend:
        """The measurement backend of the device (made once; applies the process-wide torch settings)."""
        if self._backend is None:
            from . import __version__
            from .measure.backends import make_backend
            from .measure.bench import apply_process_settings
            from .measure.environment import collect_environment

            settings = self.bench_settings()
            self._restore = apply_process_settings(settings)
            self._backend = make_backend(settings.device)
            self.environment = collect_environment(self._backend, settings, __version__)
            # the run's modes (each record says its own): one name, or a comma list of them
            self.environment["mode"] = ",".join(self.settings.modes)
            self.environment["modes"] = list(self.settings.modes)
            if self._floors is not None:
                self.environment["runtime_floor"] = self._floors.as_json()
        return self._backend

    def machine_info(self) -> JsonObject:
        """What pytest-benchmark's ``machine_info`` gets (GPU names, driver, versions): facts that need no
        measurement, the same when a run is loaded to compare and when one is saved."""
        from .measure.environment import machine_info

        return machine_info(self.settings)

    def note_start(self) -> None:
        """The machine's load now: the start of the run's benchmarks (:meth:`finish_environment`)."""
        from .measure.load import take_snapshot

        self._load_start = take_snapshot()

    def finish_environment(self) -> None:
        """Record the machine's load over the run and the GPU state at its end (clocks, throttling)."""
        if self.environment is None:
            return
        if self._load_start is not None:
            from .measure.load import available_cpus, load_between, take_snapshot

            self.environment["load"] = load_between(self._load_start, take_snapshot(), available_cpus()).to_json()
        snapshot = self._backend.snapshot() if self._backend is not None else {}
        if snapshot:  # empty on the CPU
            self.environment["gpu_state_end"] = snapshot

    def close(self) -> None:
        """Undo the process-wide torch settings; stop the floors still measuring."""
        if self._restore is not None:
            self._restore()
            self._restore = None
        if self._floors is not None:
            self._floors.close()
        self._backend = None

    @staticmethod
    def modes() -> tuple[str, ...]:
        """The deployment modes a measurement knows."""
        from .measure.modes import MODES

        return tuple(MODES)

    @staticmethod
    def mode_problem(mode: str, device: str) -> str | None:
        """Why ``mode`` cannot run on ``device`` (a GPU-only mode on the CPU), or None."""
        if mode == "eager":
            return None
        from .measure.modes import mode_problem

        return mode_problem(mode, device)

    def mode_proof(self, mode: str) -> str | None:
        """Why ``mode`` cannot run on the run's device after all, found by trying it once in this process before any
        export; None where it runs, or where nothing needs proving.

        ``onnxruntime`` on CUDA: a session of a tiny model with ONNX Runtime's CUDA provider
        (``measure.runtimes.cuda_provider_problem``: the provider that cannot load its libraries is left out of
        the session silently, so that every test would export its model and then fail to load it). The device's
        backend is made first, so that the CUDA context is the backend's own (it finds this process's NVML
        entry by the context it creates). The answer is kept for the process. A backend that cannot be made proves
        nothing here: the tests meet its error where they always did."""
        if mode != "onnxruntime":
            return None
        device = self._device()
        if not device.startswith("cuda"):
            return None
        try:
            self.backend()
        except Exception:  # noqa: BLE001 - said by the first test that needs the backend
            return None
        import torch

        from .measure.runtimes import cuda_provider_problem

        return cuda_provider_problem(device, torch_cuda=torch.version.cuda)

    # -- the registry model of the tests running now -----------------------------------------------
    @contextmanager
    def built(self, spec: ModelSpec, planned_floors: set[str] | None = None) -> Iterator[torch.nn.Module]:
        """The registry model ``spec``, built with random weights (or ``--dnn-weights``) on the device, current
        while the block runs; its preparations are freed after it. ``planned_floors``: the models of the run
        whose floors are measured now, before this test's budget starts (the first model of a run)."""
        from .registry import ModelUnavailable, import_source

        backend = self.backend()
        backend.release()  # the previous model's fixture has been finished by now: return its memory first
        if planned_floors:
            self.measure_floors(planned_floors)
        import_source(spec)  # importing the library is not the model's time: before the budget starts
        start = time.monotonic()
        unavailable = None
        try:
            module = self._guarded(
                lambda: self._build(spec), lambda oom: _oom_message(None, self.bench_settings().device, oom, spec.name)
            )
        except ModelUnavailable as exc:
            unavailable = str(exc)
        if unavailable is not None:
            raise Skip(unavailable)
        # --dnn-max-time bounds the build too: the first test of this model is charged for it.
        self._current = CurrentModel(spec, module, time.monotonic() - start)
        try:
            yield module
        finally:
            current, self._current = self._current, None
            if current is not None:
                current.close()
            del current, module
            backend.release()

    def spec_of(self, model: object) -> ModelSpec | None:
        """The registry spec of ``model`` if it is the model built now (a user's own module: None)."""
        return self._current.spec if self._current is not None and self._current.module is model else None

    def _build(self, spec: ModelSpec) -> torch.nn.Module:
        import torch

        from .measure.bench import prepare_model
        from .registry import build_model

        torch.manual_seed(self.settings.seed)
        built = build_model(spec)
        if self.accuracy_run is not None:
            self.accuracy_run.load_weights(built, spec)  # --dnn-weights; local files only
        return prepare_model(built, self.bench_settings())

    def _guarded(self, work: Callable[[], T], message: Callable[[str], str]) -> T:
        """Run ``work`` under the host-memory guard; out of memory raises :class:`OutOfMemory`, anything else
        propagates.

        :class:`OutOfMemory` is raised outside the ``except`` block, so that the error and its frames (holding
        the input, the activations, a half-built model) are gone before the memory is released.
        """
        from .oom import describe, host_memory_guard, is_out_of_memory

        oom = None
        try:
            with host_memory_guard(self.settings.max_host_memory):
                return work()
        except BaseException as exc:  # noqa: BLE001 - re-raised unless it is out of memory
            if not is_out_of_memory(exc):
                raise
            oom = describe(exc)
        self.backend().release()
        limit = self.settings.max_host_memory
        under = f"; under the host-memory limit of {limit:,} bytes (--dnn-max-host-memory)" if limit is not None else ""
        raise OutOfMemory(message(oom + under))

    def _complexity_of(self, spec: ModelSpec | None, module: torch.nn.Module, size: tuple[int, int, int]) -> Complexity:
        """FLOPs and parameters, once per model and input size (not per batch)."""
        from .measure.bench import make_input
        from .measure.flops import measure_complexity

        def compute() -> Complexity:
            return measure_complexity(module, make_input(1, size, self.bench_settings()))

        if spec is not None:
            key = (spec.name, size)
            if key not in self._complexity:
                self._complexity[key] = compute()
            return self._complexity[key]
        per_module = self._foreign_complexity.setdefault(module, {})  # a user's own module, while it lives
        if size not in per_module:
            per_module[size] = compute()
        return per_module[size]

    # -- one measurement ------------------------------------------------------------------------------
    def measure(self, call: BenchCall) -> Measured:
        """One measurement, in this process or in an isolated child."""
        model = call.model
        self.settle_preparations()
        if isinstance(model, IsolatedModel):  # (this process never imports torch for it)
            return Measured(self._measure_isolated(call, model), None, model.spec)
        import torch

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"dnn_bench() benchmarks a torch.nn.Module, not {type(model).__name__}")
        spec = self.spec_of(model)
        return Measured(self._measure(call, model, spec), model, spec)

    def measure_again(self, first: Record, call: BenchCall) -> Measured:
        """The machine was busy: wait (at most ``--dnn-calm-wait``) for it to calm down, then measure once more.
        The record says so under ``load.retry``; if the machine is still busy, the latency verdict is
        inconclusive."""
        from .measure.load import wait_for_calm

        wait = self.settings.calm_wait_s
        calm, waited = wait_for_calm(wait) if wait > 0 else (False, 0.0)  # 0: measure again at once
        again = self.measure(call)
        first_load = first.load or {}
        retry = {
            "waited_s": round(waited, 3),
            "calm": calm,
            "first_median_ms": first.latency.median,
            "first_reasons": list(first_load.get("reasons") or []),
        }
        record = dataclasses.replace(again.record, load={**(again.record.load or {}), "retry": retry})
        return dataclasses.replace(again, record=record)

    def settle_preparations(self) -> None:
        """A preparation abandoned at ``--dnn-prepare-timeout`` goes on in a worker thread until it ends: wait
        for it (at most that timeout again) before anything else is measured, so that it disturbs no figure;
        one that still runs after that is said in the summary."""
        import sys

        modes = sys.modules.get("pytest_dnnbench.measure.modes")
        if modes is None or not modes.abandoned_running():
            return
        still = modes.wait_for_abandoned(self.settings.prepare_timeout_s)
        note = (
            f"the preparation of {', '.join(sorted(set(still)))} abandoned at --dnn-prepare-timeout was still "
            "running in the background during later tests: their figures may be disturbed"
        )
        if still and note not in self.notes:
            self.notes.append(note)

    def _measure(self, call: BenchCall, model: torch.nn.Module, spec: ModelSpec | None) -> Record:
        from .measure.bench import make_input, prepare_model

        settings = self.bench_settings()
        if call.mode != "eager":
            settings = dataclasses.replace(settings, mode=call.mode)
        input_size = call.input_size
        if input_size is None:
            if spec is None:
                raise TypeError(
                    "dnn_bench(model) needs input_size=(channels, height, width) for a model that is "
                    "not from the registry"
                )
            input_size = spec.input_size
        dims = tuple(int(v) for v in input_size)
        if len(dims) != 3 or min(dims) < 1:
            raise ValueError(f"input_size must be (channels, height, width), got {tuple(input_size)}")
        size = (dims[0], dims[1], dims[2])
        if call.forward is not None and call.mode != "eager":
            raise TypeError(
                f"dnn_bench(forward=...) runs your own call of the model, which mode {call.mode} cannot export "
                "or compile: benchmark that model in eager mode (mode='eager'), or wrap it in a module that takes "
                "one tensor"
            )
        if spec is None:
            model = prepare_model(model, settings)
        # the mode's preparation (export, compilation, conversion): timed apart, outside the budget, and its
        #    output checked against eager on the very input the timed calls use
        prepared, output = None, None
        if call.mode != "eager":
            example = make_input(call.batch, size, settings)
            prepared = self._prepared(call.mode, model, spec, example, settings)
            output = self._output_check(call.mode, model, prepared, example, settings)
        try:
            return self._timed(call, model, spec, size, settings, prepared, output)
        finally:
            if prepared is not None and not self._keeps(prepared):
                prepared.close()  # a user's own module: prepared for this test alone

    def _keeps(self, prepared: Prepared) -> bool:
        return self._current is not None and any(p is prepared for p in self._current.prepared.values())

    def _timed(
        self,
        call: BenchCall,
        model: torch.nn.Module,
        spec: ModelSpec | None,
        size: tuple[int, int, int],
        settings: BenchSettings,
        prepared: Prepared | None,
        output: Check | None,
    ) -> Record:
        """Time ``model`` (or its prepared form) within the budget, and assemble the record."""
        from .measure.bench import measure

        backend = self.backend()
        batch = call.batch
        forward = prepared.forward if prepared is not None else call.forward
        # The first test of a registry model is charged for building it (a huge model cannot stall a
        # run): its budget starts as long before the timed calls as the build took. Counting FLOPs,
        # once per model, is not charged: it is the plugin's work, not the model's.
        build_s = None
        if spec is not None and self._current is not None:
            build_s, self._current.build_s = self._current.build_s, None

        def run() -> tuple[Complexity, Measurement]:
            complexity = self._complexity_of(spec, model, size)
            backend.before_measure()
            start = time.monotonic() - build_s if build_s is not None else None
            return complexity, measure(model, batch, size, settings, backend, forward=forward, start=start)

        if self.settings.max_host_memory is not None and not self._counters_primed:
            from .measure.flops import prime_counters

            prime_counters()  # the counters' one-time set-up is not the model's memory
            self._counters_primed = True
        complexity, measurement = self._guarded(run, lambda oom: _oom_message(batch, settings.device, oom))
        record = timed_record(
            model=call.name or (spec.name if spec is not None else type(model).__name__),
            spec=spec,
            settings=settings,
            device_name=backend.device_name(),
            threads=_threads(),
            measurement=measurement,
            complexity=complexity,
            test=call.test,
            build_s=build_s,
        )
        if prepared is not None:
            record = dataclasses.replace(
                record,
                prepare_s=round(prepared.prepare_s, 3),
                runtime=prepared.runtime,
                checks=record.checks + ((output,) if output is not None else ()),
            )
        if settings.device == "cpu":
            record = self._deployed_memory(record, model, spec, prepared)
        elif prepared is not None and prepared.artifact is not None:
            record = runtime_memory_on_gpu(record)
        return record

    def _prepared(
        self, mode: str, model: torch.nn.Module, spec: ModelSpec | None, example: torch.Tensor, settings: BenchSettings
    ) -> Prepared:
        """``model`` prepared for ``mode``: once per (model, batch size) while the model is current (its
        artifacts are freed when the next model replaces it); a user's own module is prepared per test.
        An export, compilation or conversion that fails, or runs past ``--dnn-prepare-timeout``, skips the test."""
        from .measure.modes import PrepareFailed, prepare
        from .oom import is_out_of_memory

        current = (
            self._current if spec is not None and self._current is not None and self._current.module is model else None
        )
        key = (mode, tuple(example.shape))
        if current is not None and key in current.prepared:
            return current.prepared[key]
        failure = None
        try:
            prepared = self._guarded(
                lambda: prepare(
                    mode,
                    model,
                    example,
                    settings,
                    compile_mode=self.settings.compile_mode,
                    timeout_s=self.settings.prepare_timeout_s,
                    threads=_threads(),
                    is_out_of_memory=is_out_of_memory,
                ),
                lambda oom: _oom_message(int(example.shape[0]), settings.device, oom),
            )
        except PrepareFailed as exc:
            failure = str(exc)
        if failure is not None:
            raise Skip(f"{mode} could not be prepared: {failure}")
        if current is not None:
            current.prepared[key] = prepared
        return prepared

    def _output_check(
        self, mode: str, model: torch.nn.Module, prepared: Prepared, example: torch.Tensor, settings: BenchSettings
    ) -> Check:
        """The mode's output against eager's on the same input: every tensor of it, relative to the largest of
        eager's same tensor (``measure.modes.output_figures``).

        A model whose forward changes its buffers (a counter) is compared on a second call too, each side
        running from the state eager ran from: an export that froze such an output matches eager once only."""
        import torch

        from .measure.modes import copy_tensors, output_check, output_figures, worst_figures

        buffers = list(model.buffers())

        def state() -> list[torch.Tensor]:
            return [b.detach().to("cpu", copy=True) for b in buffers]

        def restore(saved: list[torch.Tensor]) -> None:
            for buffer, value in zip(buffers, saved, strict=True):
                buffer.copy_(value)

        rounds = []
        with torch.inference_mode():
            for _ in range(2):
                before = state() if buffers else []
                reference = model(example)
                after = state() if buffers else []
                changed = any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
                if changed:
                    reference = copy_tensors(reference)  # it may hold a buffer, which restoring changes
                    restore(before)  # the mode runs from the state eager ran from ...
                output = prepared.forward(example)
                rounds.append(output_figures(reference, output, mode=mode))
                if not changed:
                    break
                restore(after)  # ... and the state goes on as eager left it
        figures = worst_figures(*rounds)
        check = output_check(mode, settings.precision, figures)
        if figures["skipped"] is not None:
            note = f"{mode}: {check.message} ({type(model).__name__} at batch {example.shape[0]})"
            if note not in self.notes:
                self.notes.append(note)
        return check

    # -- memory of the deployed model (CPU) ----------------------------------------------------------
    def _deployed_memory(
        self, record: Record, module: torch.nn.Module, spec: ModelSpec | None, prepared: Prepared | None = None
    ) -> Record:
        """CPU memory of the deployed model.

        eager and compile: ``total`` = the runtime floor of the model's library (with torch's compiler for
        compile) + the model's own bytes + ``delta`` (the working set of the forward pass). onnxruntime and
        openvino: ``total`` measured directly, as the peak of a fresh process that loads the exported file into
        the runtime and runs it (no torch in it). The whole pytest process's peak is kept as ``process_total``
        and gates nothing.
        """
        from .measure.floor import compile_floor_library, library_of, model_bytes

        memory = dict(record.memory)
        process_total, delta = memory.get("total"), memory.get("delta")
        if prepared is not None and prepared.artifact is not None:
            return self._runtime_memory(record, prepared, process_total)
        library = library_of(*library_hint(spec, module))
        if record.mode == "compile":
            library = compile_floor_library(library)
        floor = self.runtime_floor(library)
        weights = model_bytes(module)
        if floor.bytes is None or delta is None:
            return record  # nothing better is known: the process figure stays, and the method says what it is
        memory = {
            "total": floor.bytes + weights + delta,
            "delta": delta,
            "runtime_floor": floor.bytes,
            "model": weights,
            "process_total": process_total,
        }
        imported = " and ".join(["torch", *(floor.library.split(",") if floor.library else [])])
        method = (
            f"runtime floor (RSS of a fresh interpreter with {imported}"
            f"{'; ' + floor.error if floor.error else ''}) + model parameters and buffers + delta "
            f"({record.memory_method})"
        )
        return dataclasses.replace(record, memory=memory, memory_method=method)

    def _runtime_memory(self, record: Record, prepared: Prepared, process_total: int | None) -> Record:
        """onnxruntime, openvino: the memory of a process that runs the exported file, measured directly."""
        from .measure.runtime_memory import RuntimeMemoryError, measure_runtime_memory

        assert prepared.artifact is not None
        try:
            memory, method = measure_runtime_memory(
                record.mode,
                prepared.artifact,
                input_shape=(record.batch_size, *record.input_size),
                precision=record.precision,
                threads=record.threads or 1,
            )
        except RuntimeMemoryError as exc:
            memory = {"total": None, "delta": None}
            method = f"not measured: {exc}"
        return dataclasses.replace(record, memory={**memory, "process_total": process_total}, memory_method=method)

    # -- the CPU runtime floors ------------------------------------------------------------------------
    def measure_floors(self, models: set[str]) -> None:
        """On the CPU, the runtime floor of each library the registry models ``models`` come from, measured now
        (subprocesses side by side), before any test's budget starts. Under ``--dnn-isolate=process`` the
        child measures its memory directly: no floor is needed."""
        if self._device() != "cpu" or self.settings.isolate == "process":
            return
        from .measure.floor import compile_floor_library, library_of

        libraries = set()
        for name in models:
            if name in self.registry:
                spec = self.registry.get(name)
                if self.settings.max_host_memory is not None and spec.factory is None:
                    continue  # measured in a child under the limit, which reads its memory directly
                libraries.add(library_of(*library_hint(spec, None)))
        if "compile" in self.settings.modes:
            libraries |= {compile_floor_library(library) for library in libraries}
        floors = self._floor_cache()
        for library in sorted(libraries, key=str):
            floors.start(library)
        for library in libraries:
            self.runtime_floor(library)

    def _floor_cache(self) -> FloorCache:
        if self._floors is None:
            from .measure.floor import FloorCache, process_floors

            self._floors = FloorCache(sys_path=self._sys_path(), known=process_floors())
        return self._floors

    def runtime_floor(self, library: str | None) -> Floor:
        from .measure.floor import keep_floor

        floor = self._floor_cache().get(library)
        keep_floor(floor)
        if self.environment is not None:
            self.environment["runtime_floor"] = self._floor_cache().as_json()
        return floor

    # -- in other processes -----------------------------------------------------------------------------
    def _measure_isolated(self, call: BenchCall, model: IsolatedModel) -> Record:
        """``--dnn-isolate=process``: the measurement runs in a fresh subprocess (see :mod:`.isolated`)."""
        from .isolated import IsolatedOutOfMemory, IsolationError, make_request, run_isolated, timeout_for

        settings = self.bench_settings()
        try:
            request = make_request(
                model.spec, settings, call.batch, call.test, max_host_memory=self.settings.max_host_memory
            )
            answer, environment = run_isolated(request, timeout_for(settings))
        except IsolatedOutOfMemory as exc:
            raise OutOfMemory(_oom_message(call.batch, settings.device, str(exc))) from None
        except IsolationError as exc:
            raise MeasurementFailed(str(exc)) from None
        record = Record.from_json(answer)
        if self.environment is None and environment is not None:
            self.environment = environment  # the parent has no backend: the child's environment
        return dataclasses.replace(record, model=call.name) if call.name else record

    def confirmation(
        self, call: BenchCall, spec: ModelSpec | None, checks: Sequence[Check], earlier: Confirmation | None = None
    ) -> Confirmation | None:
        """A suspicious latency (slower than the baseline beyond the tolerance and under the hard ceiling, or
        slower within it where one process cannot resolve the tolerance) is measured again in ``--dnn-confirm``
        fresh processes (the isolated child) before it is judged: one process may just have landed on a slow
        or a fast state of the machine. With ``earlier``, as many more, added to its medians. None where no
        check asks for it."""
        from .gate import Confirmation

        if self.settings.confirm <= 0 or not any(c.metric == "latency" and c.get("suspicious") for c in checks):
            return None
        if spec is None:
            return Confirmation(
                problem="a model of your own, not from the registry, is not measured in fresh processes"
            )
        if call.mode != "eager":
            return Confirmation(problem=f"fresh processes measure eager only, not mode {call.mode}")
        if spec.factory is not None:
            return Confirmation(
                problem=f"{spec.name} was registered with a Python callable, which a fresh process cannot import "
                "(register it by importable name)"
            )
        from .isolated import IsolatedOutOfMemory, IsolationError, make_request, run_isolated, timeout_for

        settings = self.bench_settings()
        request = make_request(spec, settings, call.batch, call.test, max_host_memory=self.settings.max_host_memory)
        start = time.monotonic()
        medians: list[float] = []
        relatives: list[float] = []  # each process's latency in units of the reference workload, where timed
        problems: list[str] = []
        for _ in range(self.settings.confirm):
            if problems and problems[-1] == BUSY_CONFIRMATION and self.settings.calm_wait_s > 0:
                from .measure.load import wait_for_calm

                wait_for_calm(self.settings.calm_wait_s)  # the last one was busy: let the machine calm down first
            try:
                answer, _ = run_isolated(request, timeout_for(settings))
            except (IsolatedOutOfMemory, IsolationError) as exc:
                problems.append(str(exc).splitlines()[0][:200])
                continue
            measured = Record.from_json(answer)
            if (measured.load or {}).get("busy"):
                problems.append(BUSY_CONFIRMATION)
            elif measured.latency.insufficient:
                problems.append("fewer samples than the minimum")
            else:
                medians.append(float(measured.latency.median))
                if measured.latency.reference is not None:
                    relatives.append(float(measured.latency.reference.relative))
        seconds = time.monotonic() - start
        if len(relatives) != len(medians):
            relatives = []  # not every process timed it: judged as measured
        if earlier is not None:
            relatives = [*earlier.relatives, *relatives] if len(earlier.relatives) == len(earlier.medians) else []
            medians = [*earlier.medians, *medians]
            problems = [*earlier.left_out, *problems]
            seconds += earlier.seconds
        problem = None
        if problems:
            problem = f"{len(problems)} of {len(problems) + len(medians)} fresh processes left out: {problems[0]}"
        if len(relatives) != len(medians):
            relatives = []
        return Confirmation(tuple(medians), problem, seconds, tuple(problems), tuple(relatives))

    # -- accuracy -------------------------------------------------------------------------------------------
    def accuracy(self, measured: Measured, progress: Callable[[str], Callable[[str], None]]) -> Accuracy:
        """The record's accuracy (``--dnn-imagenet``): evaluated on the module measured, or the paper's figure
        for a known model; ``progress(model)`` gives where the evaluation's progress lines go."""
        record, module, spec = measured.record, measured.module, measured.spec
        if self.accuracy_run is None:
            return record.accuracy
        run = self.accuracy_run
        known = self.registry.get(record.model) if record.model in self.registry else None
        evaluated = spec if spec is not None and module is not None and record.model == spec.name else None
        return self._guarded(
            lambda: Accuracy.from_json(
                run.for_record(module, evaluated, known, record.device, record.channels_last, progress(record.model))
            ),
            lambda oom: _oom_message(record.batch_size, record.device, oom),
        )


def runtime_memory_on_gpu(record: Record) -> Record:
    """A runtime mode's record on a GPU (``onnxruntime`` on CUDA): its memory is not measured (docs/modes.md).

    ``total`` and the allocator's figures become null, and ``memory_method`` says why: ONNX Runtime allocates
    its GPU memory itself, outside torch's caching allocator (whose peak then holds little more than the input
    batch), and the process's GPU figure (NVML) also holds torch's CUDA context and the eager model kept for
    the output check. That figure is kept as ``process_total`` and gates nothing: a ``--dnn-max-memory`` or
    ``--dnn-max-model-memory`` check says it cannot be verified, and no baseline compares the memory."""
    memory = record.memory
    process_total = memory.get("total")
    read = f"; {record.memory_method}" if record.memory_method and process_total is not None else ""
    method = (
        f"not measured: {record.mode} on CUDA allocates its GPU memory itself, outside torch's allocator, and "
        f"this process's GPU figure (process_total{read}) also holds torch's CUDA context and the eager model "
        "kept for the output check"
    )
    kept = {
        "total": None,
        "allocator_peak": None,
        "reserved_peak": None,
        "context": memory.get("context"),
        "process_total": process_total,
    }
    return dataclasses.replace(record, memory=kept, memory_method=method)


def library_hint(spec: ModelSpec | None, module: torch.nn.Module | None) -> tuple[str, str | None]:
    """(source, module name) from which :func:`.measure.floor.library_of` tells the library a model needs."""
    if spec is None:  # a model handed to dnn_bench: its class's package
        return "custom", type(module).__module__ if module is not None else None
    if spec.factory is not None:
        return spec.source, getattr(spec.factory, "__module__", None)
    return spec.source, spec.builder.partition(":")[0] if ":" in spec.builder else None


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _oom_message(batch_size: int | None, device: str, summary: str, model: str | None = None) -> str:
    from .oom import skip_message

    return skip_message(batch_size, device, summary, model=model)
