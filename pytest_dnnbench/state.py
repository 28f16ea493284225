"""Per-session state of the plugin, kept in ``config.stash`` (no torch at import)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from .options import DnnOptions
from .registry import ModelSpec, Registry
from .results import ResultsFile


@dataclass
class DnnState:
    options: DnnOptions
    registry: Registry
    #: Names chosen by --dnn-models / dnn_models (None: benchmark mode is off).
    selected: Optional[list[str]] = None
    device: Optional[str] = None
    worker_id: Optional[str] = None
    results: Optional[ResultsFile] = None
    records: list[dict] = field(default_factory=list)
    environment: Optional[dict] = None
    _backend: Any = None
    _settings: Any = None
    _complexity: dict = field(default_factory=dict)
    _foreign_complexity: Any = None
    _specs_by_model: Any = None
    env_sent: bool = False
    machine_info: Optional[dict] = None
    _restore: Any = None
    #: How long each registry model took to build (s), until its first test is charged for it.
    build_seconds: dict = field(default_factory=dict)
    #: The SIGTERM handler replaced while benchmarks run (restored at unconfigure).
    sigterm_previous: Any = None
    #: Under pytest-xdist, schedule benchmark tests by model (set at the controller).
    group_by_model: bool = False

    @property
    def benchmark_mode(self) -> bool:
        return self.selected is not None

    @property
    def is_worker(self) -> bool:
        return self.worker_id is not None

    def model_names(self) -> list[str]:
        return list(self.selected) if self.selected is not None else list(self.registry.default)

    def ensure_device(self) -> str:
        """Resolve and check the device where the tests run, before any model is built."""
        from .device import DeviceError, check_precision, resolve_device

        if self.device is None:
            try:
                device = resolve_device(self.options.device, worker_index=_worker_index(self.worker_id))
                check_precision(self.options.precision, device)
            except DeviceError as exc:
                raise pytest.UsageError(str(exc)) from None
            self.device = device
        return self.device

    # -- lazily created measurement objects (these import torch) ----------------------------
    def settings(self) -> Any:
        if self._settings is None:
            from .measure.bench import BenchSettings

            o = self.options
            self._settings = BenchSettings(
                device=self.device or "cpu", precision=o.precision, channels_last=o.channels_last,
                threads=o.threads, cudnn_benchmark=o.cudnn_benchmark, seed=o.seed, policy=o.policy,
            )
        return self._settings

    def backend(self) -> Any:
        if self._backend is None:
            from . import __version__
            from .measure.backends import make_backend
            from .measure.bench import apply_process_settings
            from .measure.environment import collect_environment

            if self.device is None:
                raise pytest.UsageError("pytest-dnnbench: the device was not resolved before use")
            settings = self.settings()
            self._restore = apply_process_settings(settings)
            self._backend = make_backend(self.device)
            self.environment = collect_environment(self._backend, settings, __version__)
        return self._backend

    def finish_environment(self) -> None:
        """Record the GPU state at the end of the run (clocks, throttling)."""
        if self._backend is not None and self.environment is not None and hasattr(self._backend, "snapshot"):
            self.environment["gpu_state_end"] = self._backend.snapshot()

    def close(self) -> None:
        """Undo the process-wide torch settings made for this session."""
        if self._restore is not None:
            self._restore()
            self._restore = None
        self._backend = None

    # -- which spec a module came from -------------------------------------------------------
    def remember(self, model: Any, spec: ModelSpec) -> None:
        if self._specs_by_model is None:
            self._specs_by_model = weakref.WeakKeyDictionary()
        self._specs_by_model[model] = spec

    def spec_for(self, model: Any) -> Optional[ModelSpec]:
        if self._specs_by_model is None:
            return None
        try:
            return self._specs_by_model.get(model)
        except TypeError:
            return None

    def complexity(self, key: Any, compute: Any) -> Any:
        """Complexity is per model and input size, not per batch: compute it once."""
        if isinstance(key, tuple) and isinstance(key[0], str):
            if key not in self._complexity:
                self._complexity[key] = compute()
            return self._complexity[key]
        # A user's own module: cache per object while it lives.
        if self._foreign_complexity is None:
            self._foreign_complexity = weakref.WeakKeyDictionary()
        module, size = key
        per_module = self._foreign_complexity.setdefault(module, {})
        if size not in per_module:
            per_module[size] = compute()
        return per_module[size]

    # -- results at the controller -----------------------------------------------------------
    def open_results(self, path: Optional[str]) -> None:
        if path:
            p = Path(path)
            if not p.is_absolute():
                p = Path.cwd() / p
            self.results = ResultsFile(p)

    def add_records(self, records: list[dict], environment: Optional[dict]) -> None:
        if environment and self.environment is None:
            self.environment = environment
        self.records.extend(records)
        if self.results is not None:
            self.results.set_environment(self.environment or {})
            for rec in records:
                self.results.records.append(rec)
            self.results.flush()


def _worker_index(worker_id: Optional[str]) -> Optional[int]:
    """pytest-xdist's ``gwN`` -> N (GPUs are pinned round robin over the workers)."""
    if worker_id and worker_id.startswith("gw") and worker_id[2:].isdigit():
        return int(worker_id[2:])
    return None


STATE_KEY = pytest.StashKey[DnnState]()
#: The records a test's ``dnn_bench`` produced (attached to its report by the plugin).
RECORDS_KEY = pytest.StashKey[list]()


def get_state(config: pytest.Config) -> DnnState:
    try:
        return config.stash[STATE_KEY]
    except KeyError:
        raise pytest.UsageError("pytest-dnnbench is not configured (was the plugin disabled with -p no:dnnbench?)")
