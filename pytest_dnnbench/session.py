"""The pytest side of the plugin: one :class:`DnnSession` per pytest config, each hook once.

The session owns what lives as long as a run: the settings, the registry, the device and its
measurement backend, the model currently built, caches, the records and the results file. The
features (accuracy, constraints, baselines, pytest-benchmark, reports) are plain code that it calls
in a visible order; one test's pipeline is :meth:`DnnSession.bench`, top to bottom.

Where the records go: a test's records are attached to its report (plain JSON), so that under
pytest-xdist they reach the controller; the controller (or the only process) keeps them, writes
the results file after each, and builds the end-of-run table, the baseline round and the report
from them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import re
import tempfile
import time
import weakref
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Protocol, TypeGuard, TypeVar

import pytest

from . import compat
from .baseline_store import BaselineError, LockTimeout, file_lock, load_baselines, lock_path, save_run
from .constraints import check_constraints
from .gate import BaselineSource, baseline_checks, failure_message, regressions, short_reason, summary_lines
from .isolated import IsolatedModel
from .jsontypes import JsonMapping, JsonObject
from .nodeids import strip_group, suite_cell
from .record import Accuracy, Record
from .registry import ModelSpec, Registry, SelectionError
from .report.progress import Progress, missing_entry
from .results import ResultsFile, lock_holder, not_a_regular_file, note_lock_holder, plain, probe_temporary
from .settings import MARKERS, Settings, check_writable, item_limits, usage_error

if TYPE_CHECKING:
    import torch

    from .accuracy.evaluate import AccuracyRun
    from .constraints import Constraints
    from .gate import Confirmation, Tolerances
    from .measure.backends import Backend
    from .measure.bench import BenchSettings, Measurement
    from .measure.floor import Floor, FloorCache
    from .measure.flops import Complexity
    from .measure.load import LoadSnapshot
    from .measure.modes import Prepared
    from .record import Check

SUITE_PATH = Path(__file__).parent / "suite" / "bench_models.py"
#: Node id of the shipped suite: the same wherever the package or the rootdir is, so that
#: pytest-benchmark's stored names compare test by test between machines.
SUITE_NODEID = "pytest_dnnbench/suite/bench_models.py"
DNN_FIXTURES = ("dnn_model", "dnn_bench", "dnn_device", "dnn_backend")

#: Why a fresh process's measurement is left out of a confirmation (``--dnn-confirm``).
BUSY_CONFIRMATION = "measured on a busy machine"
#: Seconds a run waits for another run's lock on the same ``--dnn-json`` file before it stops with a usage error.
RESULTS_LOCK_WAIT_S = 3.0
#: The names ``--dnn-report`` writes into its folder (``report.build.write_report``, ``report.figures``).
_REPORT_FILE = re.compile(r"results(-\d+)?\.(json|csv)|report\.(md|html)|fig\w*\.png")
#: The names of automatic baseline files (``baselines/<platform key>.json``, ``baseline_store.platform_key``).
_AUTO_BASELINE_FILE = re.compile(r"(cpu|cuda)-.*\.json")

SESSION_KEY = pytest.StashKey["DnnSession"]()
#: The records a test's ``dnn_bench`` produced (attached to its report).
RECORDS_KEY = pytest.StashKey[list[Record]]()
#: The text a test's failed checks failed it with (its report shows it as it is).
VERDICT_KEY = pytest.StashKey[str]()
#: A test's tolerances and constraints (options overridden by its markers).
LIMITS_KEY = pytest.StashKey[tuple["Tolerances", "Constraints"]]()


T = TypeVar("T")
#: Runtime floors measured in this process, by library: a floor depends on the interpreter and the installed
#: libraries, not on the session, so in-process pytest runs (pytester) measure each once.
_PROCESS_FLOORS: dict[str, Floor] = {}
#: A folder where the processes of one test run share the floors they measured (each library measured once
#: for all of them). Unset, every process measures its own. The plugin's own test suite sets it: it starts
#: many pytest processes (pytester, pytest-xdist workers), each of which would pay a few seconds per floor.
FLOOR_CACHE_ENV = "PYTEST_DNNBENCH_FLOOR_CACHE"
#: What ``signal.getsignal`` gives back: a handler, ``SIG_DFL``/``SIG_IGN`` (ints), or None.
_Handler = Callable[[int, FrameType | None], object] | int | None


class _XdistNode(Protocol):
    """What the session reads of a pytest-xdist worker controller (pytest-xdist ships no types)."""

    config: pytest.Config
    workerinput: JsonObject


def session_of(config: pytest.Config) -> DnnSession:
    try:
        return config.stash[SESSION_KEY]
    except KeyError:
        raise pytest.UsageError(
            "pytest-dnnbench is not configured (was the plugin disabled with -p no:dnnbench?)"
        ) from None


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
    """One ``dnn_bench`` call: what is measured, for which test."""

    item: pytest.Item
    model: torch.nn.Module | IsolatedModel
    input_size: Sequence[int] | None
    batch: int
    name: str | None
    forward: Callable[[torch.Tensor], object] | None
    mode: str


class DnnSession:
    """The plugin's state and hooks for one pytest config (registered in ``pytest_configure``)."""

    def __init__(self, config: pytest.Config, settings: Settings, registry: Registry):
        self.config = config
        self.settings = settings
        self.registry = registry
        workerinput = getattr(config, "workerinput", None)
        self.worker_id: str | None = workerinput.get("workerid") if workerinput is not None else None
        #: Names chosen by --dnn-models (None: benchmark mode is off).
        self.selected: list[str] | None = None
        self.device: str | None = None
        self.environment: JsonObject | None = None
        self.records: list[Record] = []
        self.missing: dict[tuple[str, int | None, str | None], JsonObject] = {}
        self.results: ResultsFile | None = None
        self.progress = Progress()
        self.group_by_model = False
        self.machine_info: JsonObject | None = None
        self.accuracy: AccuracyRun | None = None
        self.baselines = BaselineSource(settings.baseline, settings.rootpath, settings.require_baseline)
        self.notes: list[str] = []
        #: What the baseline save wrote, listed with the files written.
        self.saved_notes: list[str] = []
        self.report_written: list[Path] = []
        self.report_error: str | None = None
        #: Where the results file was written at the end (the file, a fallback file, or None: nowhere).
        self.results_at: Path | None = None
        #: The run's hold on the results file's inter-process lock (released at unconfigure).
        self._results_lock: contextlib.ExitStack | None = None
        self._backend: Backend | None = None
        self._bench_settings: BenchSettings | None = None
        self._restore: Callable[[], None] | None = None
        self._current: CurrentModel | None = None
        self._complexity: dict[tuple[str, tuple[int, ...]], Complexity] = {}
        self._foreign_complexity: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[int, ...], Complexity]] = (
            weakref.WeakKeyDictionary()
        )
        self._env_sent = False
        self._counters_primed = False
        #: CPU runtime floors (RSS of a fresh interpreter with torch and a model's library), per library.
        self._floors: FloorCache | None = None
        #: The registry models collected, whose floors the first test that builds one measures (None: done).
        self._floors_planned: set[str] | None = None
        #: The machine's load at the start of the benchmark run (for the run's load in the environment).
        self._load_start: LoadSnapshot | None = None
        self._sigterm_previous: _Handler = None

    # -- what the run is -------------------------------------------------------------------------
    @property
    def is_worker(self) -> bool:
        return self.worker_id is not None

    @property
    def benchmark_mode(self) -> bool:
        return self.selected is not None

    def model_names(self) -> list[str]:
        return list(self.selected) if self.selected is not None else list(self.registry.default)

    def start(self) -> None:
        """Configure time: select models, check the inputs, open the results file; no model is built."""
        config, s = self.config, self.settings
        for line in MARKERS:
            config.addinivalue_line("markers", line)
        if self.worker_id is not None and config.workerinput.get("dnn_loadgroup"):  # type: ignore[attr-defined]
            config.option.loadgroup = True  # what xdist's worker reads to suffix node ids with the group
        if s.models is not None:
            try:
                self.selected = self.registry.select(s.models)
            except SelectionError as exc:
                raise pytest.UsageError(f"--dnn-models={s.models}: {exc}") from None
            if config.args_source != pytest.Config.ArgsSource.ARGS:
                config.args = [str(SUITE_PATH)]  # the shipped suite, unless paths were given
            if not self.is_worker:
                self._configure_xdist()
            if not self.is_worker and s.device != "auto" and not self._workers_elsewhere():
                # An explicit device that is not here (cuda without a GPU), or a precision it cannot run: a usage
                # error now, before anything is collected. torch is imported for cuda only (benchmark mode).
                self.ensure_device()
            self._catch_sigterm()  # also at a pytest-xdist controller, which never collects
        if not self.is_worker:
            self._check_outputs()
        self._check_baseline_files()
        if not self.is_worker:
            self._check_weights_file()
        self._open_accuracy()
        if self.settings.report_dir is not None and not self.is_worker:
            import importlib.util

            if importlib.util.find_spec("matplotlib") is None:
                raise pytest.UsageError(
                    f"--dnn-report={self.settings.report_dir}: the report's figures need "
                    "matplotlib, which is not installed. pip install matplotlib"
                )
        if not self.is_worker and s.json_path is not None:
            self.results = ResultsFile(s.json_path, target=Path(os.path.realpath(s.json_path)))
            self._lock_results(self.results)

    def _check_outputs(self) -> None:
        """Every file the run will write can be written: a usage error now, not a lost measurement later."""
        s = self.settings
        if s.json_path is not None:
            check_writable(s.json_path, "--dnn-json")
            self._check_results_file(s.json_path)
        if s.report_dir is not None:
            check_writable(s.report_dir, "--dnn-report", directory=True)
        if s.save_baseline == "auto":
            check_writable(s.rootpath / "baselines", "--dnn-save-baseline", directory=True)
        elif s.save_baseline is not None:
            check_writable(Path(s.save_baseline), "--dnn-save-baseline")

    def _check_results_file(self, path: Path) -> None:
        """``--dnn-json``: a regular file or a path where one can be made, written through its symlinks, not a
        file this run reads or writes otherwise, in a folder that takes the temporary file of an atomic write."""
        s = self.settings
        target = Path(os.path.realpath(path))
        shown = f"{path}{_link_note(path, target)}"
        what = not_a_regular_file(path)
        if what is not None:
            raise usage_error(
                "--dnn-json",
                path,
                f"{shown} is {what}, not a regular file, and the results file would replace it",
                "Give the path of a regular file (it is made if missing), e.g. --dnn-json=results.json",
            )
        others: list[tuple[str, Path]] = []
        for option, value in (("--dnn-save-baseline", s.save_baseline), ("--dnn-baseline", s.baseline)):
            if value not in (None, "auto", "none"):
                assert value is not None
                label = option if option == "--dnn-save-baseline" or s.baseline_given else "the ini's dnn_baseline"
                others.append((f"the baseline file of {label}", Path(value)))
        for label, other in others:
            if _same_file(target, other):
                raise usage_error(
                    "--dnn-json",
                    path,
                    f"{shown} is {label} ({other}), which this run reads or saves; the results would replace it",
                    "Give the results file a path of its own, e.g. --dnn-json=results.json",
                )
        auto = s.rootpath / "baselines"
        if (
            "auto" in (s.baseline, s.save_baseline)
            and _same_file(target.parent, auto)
            and _AUTO_BASELINE_FILE.fullmatch(target.name)
        ):
            raise usage_error(
                "--dnn-json",
                path,
                f"{shown} is named as an automatic baseline file of {auto} (baselines/<platform key>.json), "
                "which this run reads or saves; the results would replace it",
                "Give the results file a path of its own, e.g. --dnn-json=results.json",
            )
        if s.report_dir is not None and _same_file(target.parent, s.report_dir) and _REPORT_FILE.fullmatch(target.name):
            raise usage_error(
                "--dnn-json",
                path,
                f"{shown} is a file the report of --dnn-report={s.report_dir} writes; the report would replace it",
                "Give the results file a path outside the report's files, e.g. --dnn-json=results.json "
                f"(the report holds its own copy, {s.report_dir / 'results.json'})",
            )
        try:
            probe_temporary(target)
        except OSError as exc:
            raise usage_error(
                "--dnn-json",
                path,
                f"no temporary file can be made beside {target} ({_os_error(exc)}); the results file is written "
                "as a temporary file in its folder, then renamed",
                "Give a path in a folder this user may write",
            ) from None

    def _lock_results(self, results: ResultsFile) -> None:
        """Hold the results file's inter-process lock for the whole run: a second run on the same file stops
        now, with a usage error, instead of replacing the first one's records."""
        stack = contextlib.ExitStack()
        lock = lock_path(results.target)
        try:
            stack.enter_context(file_lock(results.target, RESULTS_LOCK_WAIT_S))
        except LockTimeout:
            pid = lock_holder(lock)
            who = f"another pytest run (pid {pid})" if pid is not None else "another pytest run"
            raise usage_error(
                "--dnn-json",
                results.path,
                f"{who} is writing its results to {results.target} (it holds the lock {lock}; waited "
                f"{RESULTS_LOCK_WAIT_S:g} s), and one of the two runs would lose its records",
                "Use a different --dnn-json for this run, or run it after the other one",
            ) from None
        except OSError as exc:
            raise usage_error(
                "--dnn-json",
                results.path,
                f"cannot make the lock file {lock} ({_os_error(exc)})",
                "Give a path this user may write",
            ) from None
        note_lock_holder(lock, os.getpid())
        self._results_lock = stack

    def _unlock_results(self) -> None:
        if self._results_lock is not None and self.results is not None:
            note_lock_holder(lock_path(self.results.target), None)
            self._results_lock.close()
            self._results_lock = None

    def _check_baseline_files(self) -> None:
        """An explicit baseline file is checked now, before any model is built; it is never modified on error."""
        s = self.settings
        for path in sorted({p for p in (s.baseline, s.save_baseline) if p not in (None, "auto", "none")}):
            assert path is not None
            p = Path(path)
            if p.exists() or p.is_symlink():  # a broken or looping link is read, and named as such
                try:
                    load_baselines(p)
                except BaselineError as exc:
                    if path == s.baseline and s.baseline_given:
                        option = "--dnn-baseline"
                    elif path == s.baseline and path != s.save_baseline:
                        option = "the ini's dnn_baseline"
                    else:
                        option = "--dnn-save-baseline"
                    raise pytest.UsageError(
                        f"{option}: {exc}. Fix or remove the file (it was left untouched)"
                    ) from None
            elif path == s.baseline and path != s.save_baseline and s.baseline_given:
                # (named in the ini file instead, a missing file is "no baseline applies", said in the summary)
                raise pytest.UsageError(
                    f"--dnn-baseline={path}: the file does not exist. Create it with --dnn-save-baseline={path} "
                    "(one round per run, at least 5 recommended), or use --dnn-baseline=auto"
                )

    def _check_weights_file(self) -> None:
        """A checkpoint file named by --dnn-weights is read now: one that cannot be loaded is a usage error,
        not a silent fall-back to random weights. (A folder of checkpoints is searched per model.)"""
        path = Path(self.settings.weights)
        if self.settings.weights in ("random", "pretrained") or not path.is_file():
            return
        from .accuracy.weights import WeightsUnavailable, read_state_dict

        try:
            read_state_dict(path)
        except (WeightsUnavailable, OSError) as exc:
            raise pytest.UsageError(
                f"--dnn-weights={path}: {exc}. Give a checkpoint that torch.load (weights_only) or safetensors reads, "
                "or --dnn-weights=random"
            ) from None

    def _open_accuracy(self) -> None:
        from .accuracy.data import DatasetError
        from .accuracy.evaluate import open_run

        s = self.settings
        try:
            self.accuracy = open_run(s.imagenet, s.accuracy_limit, s.weights)
        except DatasetError as exc:
            raise pytest.UsageError(f"--dnn-imagenet={s.imagenet}: {exc}") from None

    # -- pytest-xdist ------------------------------------------------------------------------------
    def _configure_xdist(self) -> None:
        """Benchmark mode under pytest-xdist: one worker per model, and no parallel CPU timings unasked.

        Runs at the controller in ``pytest_configure``, after pytest-xdist's ``pytest_cmdline_main``
        has set ``dist`` and before its ``pytest_sessionstart`` starts the workers, which receive
        the controller's options (so they see ``loadgroup`` too).
        """
        config = self.config
        dist = getattr(config.option, "dist", "no")
        tx = [str(t) for t in (getattr(config.option, "tx", None) or [])]
        if not (dist and dist != "no" and tx):
            return
        local_only = all(t.startswith("popen") or t.split("*", 1)[-1].startswith("popen") for t in tx)
        device = self.settings.device
        on_cpu = device == "cpu"
        if device == "auto" and local_only:
            on_cpu = self.ensure_device() == "cpu"  # workers on this machine see the same devices
        if on_cpu and not self.settings.allow_parallel_cpu:
            raise pytest.UsageError(
                f"pytest-dnnbench: {len(tx)} pytest-xdist workers would benchmark on the CPU at the same time "
                "(--dnn-device=" + device + "), and parallel workers disturb each other's timings and memory "
                "figures. Run without -n/--tx, use GPUs (--dnn-device=cuda pins one GPU per worker), or pass "
                "--dnn-allow-parallel-cpu to accept the interference (and consider --dnn-threads to share the cores)"
            )
        if not on_cpu and not self.settings.allow_shared_gpu:
            problem = self._gpu_sharing(len(tx), local_only)
            if problem is not None:
                raise pytest.UsageError(f"pytest-dnnbench: {problem}")
        if dist == "load" and not _user_chose_dist(config):
            # All tests of a model on one worker: it is built, profiled and evaluated once.
            config.option.dist = "loadgroup"
            self.group_by_model = True

    def _workers_elsewhere(self) -> bool:
        """Whether pytest-xdist runs the tests on other machines (``--tx ssh=...``): their devices are not
        this one's, so nothing about the device is resolved here."""
        config = self.config
        dist = getattr(config.option, "dist", "no")
        tx = [str(t) for t in (getattr(config.option, "tx", None) or [])]
        if not (dist and dist != "no" and tx):
            return False
        return not all(t.startswith("popen") or t.split("*", 1)[-1].startswith("popen") for t in tx)

    def _gpu_sharing(self, n_workers: int, local_only: bool) -> str | None:
        """Why these workers would share a GPU, or None (GPUs are counted where the workers run: here)."""
        from .device import TorchProbe, gpu_sharing_problem

        device = self.settings.device
        if device in ("auto", "cuda") and not local_only:
            return None  # remote workers: their GPUs cannot be counted from here
        count = TorchProbe.default().device_count() if device in ("auto", "cuda") else 0
        return gpu_sharing_problem(n_workers, device, count)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: compat.XdistLog) -> object:
        """At the controller: schedule the benchmark tests by model."""
        return compat.model_scheduler(config, log, self.model_names()) if self.group_by_model else None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: _XdistNode) -> None:
        """Tell each worker to group by model: workers re-parse the command line, which does not carry
        the ``loadgroup`` the controller chose."""
        if getattr(node.config.option, "dist", None) == "loadgroup":
            node.workerinput["dnn_loadgroup"] = True

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        """The controller does not collect: the workers tell it the ids (for the progress lines)."""
        if self.progress.plan:
            return
        for nodeid in ids:
            cell = suite_cell(nodeid)
            if cell is not None:
                self.progress.plan[nodeid] = cell
        self.progress.begin()

    # -- collection ---------------------------------------------------------------------------------
    def pytest_report_header(self, config: pytest.Config) -> list[str] | None:
        lines = []
        if self.benchmark_mode:
            s = self.settings
            device = self.device or (s.device if self._workers_elsewhere() else self.ensure_device())
            cuda = (
                f", cudnn.benchmark {'on' if s.cudnn_benchmark else 'off'}, TF32 {'on' if s.tf32 else 'off'}"
                if device != "cpu"
                else ""
            )
            lines.append(
                f"dnnbench: {len(self.selected or [])} models x {len(s.batch_sizes)} batch sizes, "
                f"device {device}, {s.precision}{cuda}, seed {s.seed}, budget {s.policy.max_time_s:g} s/test"
            )
        header = self.accuracy.header() if self.accuracy is not None else None
        if header:
            lines.append(header)
        return lines or None

    def pytest_report_collectionfinish(self, config: pytest.Config, items: Sequence[pytest.Item]) -> str | None:
        """Without --dnn-models, a project's own tests that use ``dnn_model`` still get models: say which, and why."""
        if self.benchmark_mode or self.is_worker:
            return None
        uses = [set(getattr(item, "fixturenames", ())) for item in items]
        if not any("dnn_model" in names for names in uses):
            return None
        line = f"dnnbench: dnn_model runs the default models ({', '.join(self.model_names())})"
        if any("dnn_batch_size" in names for names in uses):
            line += f" at batch sizes {','.join(str(b) for b in self.settings.batch_sizes)}"
        return (
            line + ": no --dnn-models was given. Choose with --dnn-models=NAMES and --dnn-batch-sizes=N,M "
            "(or the dnn_models and dnn_batch_sizes ini settings)"
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makemodule(self, module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
        if module_path == SUITE_PATH:
            return pytest.Module.from_parent(parent, path=module_path, nodeid=SUITE_NODEID)
        return None

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        taken = {name for m in metafunc.definition.iter_markers("parametrize") for name in _argnames(m)}
        if "dnn_model" in metafunc.fixturenames and "dnn_model" not in taken:
            names = self.model_names()
            metafunc.parametrize("dnn_model", names, indirect=True, ids=names, scope="session")
        modes = list(self.settings.modes)
        by_mode = len(modes) > 1 or modes != ["eager"]
        mode_axis = by_mode and "dnn_mode" in metafunc.fixturenames and "dnn_mode" not in taken
        if "dnn_batch_size" in metafunc.fixturenames and "dnn_batch_size" not in taken:
            sizes = list(self.settings.batch_sizes)
            if mode_axis:
                # One axis of (batch size, mode): ids stay <model>-bs<N> for eager, <model>-bs<N>-<mode> otherwise.
                cells = [(n, m) for n in sizes for m in modes]
                ids = [f"bs{n}" if m == "eager" else f"bs{n}-{m}" for n, m in cells]
                metafunc.parametrize(("dnn_batch_size", "dnn_mode"), cells, indirect=True, ids=ids)
                return
            metafunc.parametrize("dnn_batch_size", sizes, indirect=True, ids=[f"bs{n}" for n in sizes])
        if mode_axis:
            metafunc.parametrize("dnn_mode", modes, indirect=True, ids=modes)

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> Generator[None, None, None]:
        """Bad marker values stop the run here, before any model is built; under pytest-xdist, benchmark
        tests are marked with their model's group (before xdist reads the marks: a wrapper, first); the
        tests that call ``dnn_bench`` are benchmarks to pytest-benchmark (``--benchmark-only`` runs them,
        ``--benchmark-skip`` skips them), while the other implementations run."""
        xdist = config.pluginmanager.hasplugin("xdist")
        for item in items:
            if item.get_closest_marker("dnn_tolerance") or item.get_closest_marker("dnn_constraints"):
                self.limits(item)
            if xdist:
                params = _params(item)
                if "dnn_model" in params and item.get_closest_marker("xdist_group") is None:
                    item.add_marker(pytest.mark.xdist_group(str(params["dnn_model"])))
        ours = [item for item in items if "dnn_bench" in getattr(item, "fixturenames", ())]
        with compat.seen_as_benchmarks(config, ours):
            yield

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Resolve and check the device where tests run, before any model is built; plan the progress."""
        for item in session.items:
            params = _params(item)
            if "dnn_model" in params:
                bs = params.get("dnn_batch_size")
                self.progress.plan[item.nodeid] = (str(params["dnn_model"]), int(str(bs)) if bs is not None else None)
        if any(set(DNN_FIXTURES) & set(getattr(item, "fixturenames", ())) for item in session.items):
            from .measure.load import take_snapshot

            self._load_start = take_snapshot()
            self.ensure_device()
            self._catch_sigterm()
            self._check_automatic_baseline()
            # Measured by the first test that builds a model, not now: collecting, listing and skipped runs never
            # pay for them.
            self._floors_planned = {name for name, _ in self.progress.plan.values()}

    def _measure_planned_floors(self) -> None:
        """The floors of the collected registry models, once, when the first test builds its model (before its
        budget starts)."""
        planned, self._floors_planned = self._floors_planned, None
        if planned:
            self._measure_floors(planned)

    def _measure_floors(self, models: set[str]) -> None:
        """On the CPU, the runtime floor of each library the planned registry models come from, measured now
        (subprocesses side by side), before any test's budget starts. Under ``--dnn-isolate=process`` the
        child measures its memory directly: no floor is needed."""
        if self.device != "cpu" or self.settings.isolate == "process":
            return
        from .measure.floor import library_of

        libraries = set()
        for name in models:
            if name in self.registry:
                spec = self.registry.get(name)
                if self.settings.max_host_memory is not None and spec.factory is None:
                    continue  # measured in a child under the limit, which reads its memory directly
                source, module_name = _library_hint(spec, None)
                libraries.add(library_of(source, module_name))
        if "compile" in self.settings.modes:
            libraries |= {compile_floor_library(library) for library in libraries}
        floors = self._floor_cache()
        for library in sorted(libraries, key=str):
            floors.start(library)
        for library in libraries:
            self._runtime_floor(library)

    def _floor_cache(self) -> FloorCache:
        if self._floors is None:
            from .measure.floor import FloorCache

            _PROCESS_FLOORS.update(_shared_floors())
            self._floors = FloorCache(
                sys_path=[str(self.settings.rootpath), *self._conftest_dirs()], known=_PROCESS_FLOORS
            )
        return self._floors

    def _conftest_dirs(self) -> list[str]:
        """Folders of the project's conftest files: where a fresh interpreter finds the user's own models."""
        dirs = {str(Path(str(getattr(m, "__file__", ""))).parent) for m in self.config.pluginmanager.get_plugins()}
        return sorted(d for d in dirs if d and Path(d, "conftest.py").exists())

    def _runtime_floor(self, library: str | None) -> Floor:
        floor = self._floor_cache().get(library)
        if floor.error is None and floor.bytes is not None and (library or "torch") not in _PROCESS_FLOORS:
            _PROCESS_FLOORS[library or "torch"] = floor
            _share_floor(floor)
        if self.environment is not None:
            self.environment["runtime_floor"] = self._floor_cache().as_json()
        return floor

    def _check_automatic_baseline(self) -> None:
        """On the CPU, this run's automatic baseline file is known before any model is built: a corrupt one
        is a usage error naming it. (On a GPU its name needs the device, which is not touched here: a
        corrupt file is reported with the first test, as an unusable baseline, not a regression.)"""
        s = self.settings
        if s.baseline != "auto" or self.device != "cpu" or self.is_worker:
            return
        if not any((s.rootpath / "baselines").glob("cpu-*.json")):
            return  # no CPU baseline file at all: nothing to check (and no torch to import for its name)
        import torch

        from .baseline_store import platform_key
        from .measure.backends import cpu_model_name
        from .measure.bench import default_threads

        threads = s.threads or default_threads(torch.get_num_threads())
        for mode in s.modes:
            key = platform_key("cpu", cpu_model_name(), threads, s.precision, mode, s.channels_last)
            path = self.baselines.path_for(key)
            loaded = self.baselines.load(path) if path is not None else None
            if isinstance(loaded, BaselineError):
                raise pytest.UsageError(
                    f"the automatic baseline of this platform is unusable: {loaded}. Fix or remove the file "
                    "(it was left untouched), or run with --dnn-baseline=none"
                )

    def limits(self, item: pytest.Item) -> tuple[Tolerances, Constraints]:
        """This test's tolerances and constraints: the options, overridden by its markers."""
        cached = item.stash.get(LIMITS_KEY, None)
        if cached is None:
            cached = item_limits(
                self.settings,
                item.nodeid,
                item.get_closest_marker("dnn_tolerance"),
                item.get_closest_marker("dnn_constraints"),
            )
            item.stash[LIMITS_KEY] = cached
        return cached

    # -- device, backend, models ---------------------------------------------------------------------
    def ensure_device(self) -> str:
        """Resolve and check the device where the tests run, before any model is built."""
        from .device import DeviceError, check_precision, resolve_device

        if self.device is None:
            try:
                device = resolve_device(self.settings.device, worker_index=_worker_index(self.worker_id))
                check_precision(self.settings.precision, device)
            except DeviceError as exc:
                raise pytest.UsageError(str(exc)) from None
            self._check_modes(device)
            self.device = device
        return self.device

    def _check_modes(self, device: str) -> None:
        """Every mode asked for can run on ``device`` (a GPU-only mode on the CPU is a usage error)."""
        if self.settings.modes == ("eager",):
            return
        from .measure.modes import mode_problem

        for mode in self.settings.modes:
            problem = mode_problem(mode, device)
            if problem is not None:
                raise pytest.UsageError(f"--dnn-modes={','.join(self.settings.modes)}: {problem}")

    def bench_settings(self) -> BenchSettings:
        if self._bench_settings is None:
            from .measure.bench import BenchSettings

            s = self.settings
            self._bench_settings = BenchSettings(
                device=self.device or "cpu",
                precision=s.precision,
                channels_last=s.channels_last,
                threads=s.threads,
                cudnn_benchmark=s.cudnn_benchmark,
                tf32=s.tf32,
                seed=s.seed,
                policy=s.policy,
            )
        return self._bench_settings

    def backend(self) -> Backend:
        """The measurement backend of the device (made once; applies the process-wide torch settings)."""
        if self._backend is None:
            from . import __version__
            from .measure.backends import make_backend
            from .measure.bench import apply_process_settings
            from .measure.environment import collect_environment

            device = self.ensure_device()
            settings = self.bench_settings()
            self._restore = apply_process_settings(settings)
            self._backend = make_backend(device)
            self.environment = collect_environment(self._backend, settings, __version__)
            # the run's modes (each record says its own): one name, or a comma list of them
            self.environment["mode"] = ",".join(self.settings.modes)
            self.environment["modes"] = list(self.settings.modes)
            if self._floors is not None:
                self.environment["runtime_floor"] = self._floors.as_json()
        return self._backend

    def model(self, name: str | None) -> Iterator[torch.nn.Module | IsolatedModel]:
        """The ``dnn_model`` fixture: the registry model ``name``, built with random weights, on the device."""
        if name is None:
            raise pytest.UsageError("dnn_model is parametrized by pytest-dnnbench; do not request it indirectly")
        spec = self.registry.get(name)
        if self.settings.isolate == "process" or (self.settings.max_host_memory is not None and spec.factory is None):
            # Each test builds the model in its own process: this one never does. Under the host-memory
            # guard that process holds the limit, so that a breach (even one that crashes native code)
            # skips that test alone; a model registered with a Python callable is guarded in process.
            yield IsolatedModel(spec)
            return
        from .registry import ModelUnavailable, import_source

        backend = self.backend()
        backend.release()  # the previous model's fixture has been finished by now: return its memory first
        self._measure_planned_floors()  # the first model of the run: before its test's budget starts
        import_source(spec)  # importing the library is not the model's time: before the budget starts
        start = time.monotonic()
        try:
            module = self._guarded(
                lambda: self._build(spec), lambda oom: _oom_message(None, self.bench_settings().device, oom, spec.name)
            )
        except ModelUnavailable as exc:
            pytest.skip(str(exc))
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

    def _build(self, spec: ModelSpec) -> torch.nn.Module:
        import torch

        from .measure.bench import prepare_model
        from .registry import build_model

        torch.manual_seed(self.settings.seed)
        built = build_model(spec)
        if self.accuracy is not None:
            self.accuracy.load_weights(built, spec)  # --dnn-weights; local files only
        return prepare_model(built, self.bench_settings())

    def _guarded(self, work: Callable[[], T], message: Callable[[str], str]) -> T:
        """Run ``work`` under the host-memory guard; out of memory skips the test, anything else propagates.

        The skip happens outside the ``except`` block, so that the error and its frames (holding the
        input, the activations, a half-built model) are gone before the memory is released.
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
        pytest.skip(
            message(
                oom
                + (
                    f"; under the host-memory limit of {limit:,} bytes (--dnn-max-host-memory)"
                    if limit is not None
                    else ""
                )
            )
        )

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

    # -- one test's pipeline -----------------------------------------------------------------------
    def bench(
        self,
        item: pytest.Item,
        request: pytest.FixtureRequest,
        model: torch.nn.Module | IsolatedModel | None,
        *,
        input_size: Sequence[int] | None,
        batch_size: int | None,
        name: str | None,
        forward: Callable[[torch.Tensor], object] | None,
        mode: str | None = None,
    ) -> JsonObject:
        """Benchmark ``model`` for test ``item``: measure -> accuracy -> checks -> pytest-benchmark ->
        ``pytest_dnnbench_record`` -> verdict. Returns the record as plain JSON data."""
        if model is None:
            if "dnn_model" not in request.fixturenames:
                raise TypeError("dnn_bench() needs a model: pass an nn.Module or use the dnn_model fixture")
            model = request.getfixturevalue("dnn_model")
        if not isinstance(model, IsolatedModel) and not _is_module(model):
            raise TypeError(f"dnn_bench() benchmarks a torch.nn.Module, not {type(model).__name__}")
        if batch_size is None:
            batch_size = request.getfixturevalue("dnn_batch_size") if "dnn_batch_size" in request.fixturenames else 1
        call = BenchCall(item, model, input_size, int(batch_size), name, forward, self._mode_of(request, mode))
        # 1. measure (a mode other than eager: prepared first, outside the budget, and its output checked against
        #    eager); on a busy machine, when a baseline will judge the latency, wait for calm and measure again
        record, module, spec = self._measure_any(call)
        tolerances, constraints = self.limits(item)
        if (record.load or {}).get("busy") and self._compared(record, tolerances):
            record, module, spec = self._measure_again(record, call)
        # 2. accuracy
        accuracy = self._guarded(
            lambda: self._accuracy(record, module, spec), lambda oom: _oom_message(call.batch, record.device, oom)
        )
        record = dataclasses.replace(record, accuracy=accuracy)
        # 3. deployment constraints and the baseline
        plain_record = record.to_json()
        constraint_checks = check_constraints(plain_record, constraints)
        base_checks, info = baseline_checks(self.baselines, plain_record, tolerances, self.settings.strict)
        confirmation = self._confirmation(call, spec, base_checks)
        if confirmation is not None:  # a suspicious latency, measured again in fresh processes: judged again
            base_checks, info = baseline_checks(
                self.baselines, plain_record, tolerances, self.settings.strict, confirmation
            )
            if _unsettled(base_checks):  # the first set could not settle it: as many again, judged together
                confirmation = self._confirmation(call, spec, base_checks, confirmation) or confirmation
                base_checks, info = baseline_checks(
                    self.baselines, plain_record, tolerances, self.settings.strict, confirmation
                )
        record = dataclasses.replace(
            record,
            checks=record.checks + tuple(constraint_checks) + tuple(base_checks),
            baseline=info,
            tolerances=dataclasses.asdict(tolerances),
        )
        # Kept now: a check or a hook that fails the test below must not lose the measurement.
        records = item.stash.setdefault(RECORDS_KEY, [])
        records.append(record)
        # 4. pytest-benchmark (a copy of the record)
        compat.add_to_benchmark_session(
            self.config, item, record.to_json(), self.settings.policy.min_samples, self.settings.policy.max_time_s
        )
        # 5. other plugins: once, with the finished record; their additions go under record["extra"]
        payload = record.to_json()
        try:
            self.config.hook.pytest_dnnbench_record(record=payload, item=item)
        finally:  # what a hook put under "extra" is kept, also when a hook fails the test
            extra = payload.get("extra")
            if isinstance(extra, dict) and extra:
                record = dataclasses.replace(record, extra=plain(extra))
                records[-1] = record
        # 6. the verdict: a mode whose output differs from eager's, then constraints and regressions
        bad_output = [c for c in record.checks if c.metric == "output" and not c.passed]
        bad_constraints = [c for c in constraint_checks if not c.passed]
        bad_baseline = [c for c in base_checks if not c.passed]
        if bad_output or bad_constraints or bad_baseline:
            lines = ["; ".join(short_reason(c) for c in (*bad_output, *bad_constraints, *bad_baseline))]
            lines += [f"output check failed: {c.message}" for c in bad_output]
            if bad_constraints or bad_baseline:
                lines += failure_message(plain_record, bad_constraints, bad_baseline, info).splitlines()[1:]
            item.stash[VERDICT_KEY] = "\n".join(lines)
            pytest.fail(item.stash[VERDICT_KEY], pytrace=False)
        return record.to_json()

    def _mode_of(self, request: pytest.FixtureRequest, mode: str | None) -> str:
        """The mode of this call: ``dnn_bench(mode=...)``, else the test's ``dnn_mode``."""
        from .measure.modes import MODES

        if mode is None:
            return str(request.getfixturevalue("dnn_mode")) if "dnn_mode" in request.fixturenames else "eager"
        if mode not in MODES:
            raise ValueError(f"dnn_bench(mode={mode!r}): unknown mode; use one of {', '.join(MODES)}")
        if mode != "eager":
            self._check_mode(mode)
        return mode

    def _check_mode(self, mode: str) -> None:
        from .measure.modes import mode_problem

        problem = mode_problem(mode, self.ensure_device())
        if problem is not None:
            raise pytest.UsageError(f"dnn_bench(mode={mode!r}): {problem}")

    def _measure_any(self, call: BenchCall) -> tuple[Record, torch.nn.Module | None, ModelSpec | None]:
        """One measurement, in this process or in an isolated child: (record, module measured, registry spec)."""
        self._settle_preparations()
        model = call.model
        if isinstance(model, IsolatedModel):
            return self._measure_isolated(call.item, model, call.batch, call.name), None, model.spec
        spec = self._current.spec if self._current is not None and self._current.module is model else None
        record, module = self._measure(call, model, spec)
        return record, module, spec

    def _confirmation(
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
        request = make_request(
            spec, settings, call.batch, _test_id(call.item), max_host_memory=self.settings.max_host_memory
        )
        start = time.monotonic()
        medians: list[float] = []
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
        seconds = time.monotonic() - start
        if earlier is not None:
            medians = [*earlier.medians, *medians]
            problems = [*earlier.left_out, *problems]
            seconds += earlier.seconds
        problem = None
        if problems:
            problem = f"{len(problems)} of {len(problems) + len(medians)} fresh processes left out: {problems[0]}"
        return Confirmation(tuple(medians), problem, seconds, tuple(problems))

    def _settle_preparations(self) -> None:
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

    def _compared(self, record: Record, tolerances: Tolerances) -> bool:
        """Whether a baseline entry will judge this record's latency."""
        _, info = baseline_checks(self.baselines, record.to_json(), tolerances)
        return info.get("status") == "compared"

    def _measure_again(self, first: Record, call: BenchCall) -> tuple[Record, torch.nn.Module | None, ModelSpec | None]:
        """The machine was busy: wait (at most ``--dnn-calm-wait``) for it to calm down, then measure once more.
        The record says so under ``load.retry``; if the machine is still busy, the latency verdict is
        inconclusive."""
        from .measure.load import wait_for_calm

        wait = self.settings.calm_wait_s
        calm, waited = wait_for_calm(wait) if wait > 0 else (False, 0.0)  # 0: measure again at once
        record, module, spec = self._measure_any(call)
        first_load = first.load or {}
        retry = {
            "waited_s": round(waited, 3),
            "calm": calm,
            "first_median_ms": first.latency.median,
            "first_reasons": list(first_load.get("reasons") or []),
        }
        return dataclasses.replace(record, load={**(record.load or {}), "retry": retry}), module, spec

    def _measure(
        self, call: BenchCall, model: torch.nn.Module, spec: ModelSpec | None
    ) -> tuple[Record, torch.nn.Module]:
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
        batch = call.batch
        # the mode's preparation (export, compilation, conversion): timed apart, outside the budget, and its
        #    output checked against eager on the very input the timed calls use
        prepared, output = None, None
        if call.mode != "eager":
            example = make_input(batch, size, settings)
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
    ) -> tuple[Record, torch.nn.Module]:
        """Time ``model`` (or its prepared form) within the budget, and assemble the record."""
        from .measure.bench import measure
        from .record import make_record

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
        record = make_record(
            model=call.name or (spec.name if spec is not None else type(model).__name__),
            paper_name=spec.paper_name if spec is not None else None,
            source=spec.source if spec is not None else "custom",
            settings=settings,
            device_name=backend.device_name(),
            threads=_threads(),
            measurement=measurement,
            complexity=complexity,
            test=_test_id(call.item),
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
        return record, model

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
            pytest.skip(f"{mode} could not be prepared: {failure}")
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
        from .measure.floor import library_of, model_bytes

        memory = dict(record.memory)
        process_total, delta = memory.get("total"), memory.get("delta")
        if prepared is not None and prepared.artifact is not None:
            return self._runtime_memory(record, prepared, process_total)
        library = library_of(*_library_hint(spec, module))
        if record.mode == "compile":
            library = compile_floor_library(library)
        floor = self._runtime_floor(library)
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

    def _measure_isolated(self, item: pytest.Item, model: IsolatedModel, batch: int, name: str | None) -> Record:
        """``--dnn-isolate=process``: the measurement runs in a fresh subprocess (see :mod:`.isolated`)."""
        from .isolated import IsolatedOutOfMemory, IsolationError, make_request, run_isolated, timeout_for

        settings = self.bench_settings()
        oom = failure = None
        try:
            req = make_request(
                model.spec, settings, batch, _test_id(item), max_host_memory=self.settings.max_host_memory
            )
            answer, environment = run_isolated(req, timeout_for(settings))
            record = Record.from_json(answer)
            if self.environment is None and environment is not None:
                self.environment = environment  # the parent has no backend: the child's environment
        except IsolatedOutOfMemory as exc:
            oom = str(exc)
        except IsolationError as exc:
            failure = str(exc)
        if oom is not None:
            pytest.skip(_oom_message(batch, settings.device, oom))
        if failure is not None:
            pytest.fail(failure, pytrace=False)
        return dataclasses.replace(record, model=name) if name else record

    def _accuracy(self, record: Record, module: torch.nn.Module | None, spec: ModelSpec | None) -> Accuracy:
        if self.accuracy is None:
            return record.accuracy
        known = self.registry.get(record.model) if record.model in self.registry else None
        evaluated = spec if spec is not None and module is not None and record.model == spec.name else None
        return Accuracy.from_json(
            self.accuracy.for_record(
                module, evaluated, known, record.device, record.channels_last, self._accuracy_progress(record.model)
            )
        )

    def _accuracy_progress(self, name: str) -> Callable[[str], None]:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")

        def write(line: str) -> None:
            if reporter is not None:
                reporter.write_line(f"dnnbench accuracy: {name}: {line}")

        return write

    # -- reports: records travel with the test's report ---------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        records = item.stash.get(RECORDS_KEY, None)
        verdict = item.stash.get(VERDICT_KEY, None)
        if call.when == "call" and report.failed and verdict is not None and call.excinfo is not None:
            if str(call.excinfo.value) == verdict:
                # The checks' own text, without "Failed: ": pytest's short summary shows its first line, the
                # reasons in a few words.
                report.longrepr = verdict
        if call.when == "call" and records:
            reason = call.excinfo.exconly()[:2000] if report.outcome != "passed" and call.excinfo else None
            done = [dataclasses.replace(r, outcome=report.outcome, reason=reason) for r in records]
            item.stash[RECORDS_KEY] = done
            report.dnn_records = [plain(r.to_json()) for r in done]  # type: ignore[attr-defined]
            if not self._env_sent and self.environment is not None:
                report.dnn_environment = plain(self.environment)  # type: ignore[attr-defined]
                self._env_sent = True
        elif call.when in ("setup", "call") and report.outcome != "passed" and not records:
            params = _params(item)
            if "dnn_model" in params:
                report.dnn_missing = self._missing(item, call, report, params)  # type: ignore[attr-defined]
        return report

    def _missing(
        self, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport, params: dict[str, object]
    ) -> JsonObject:
        model = str(params["dnn_model"])
        if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
            reason = str(report.longrepr[2])
        elif call.excinfo is not None:
            reason = call.excinfo.exconly()
        else:
            reason = str(report.longrepr or "")
        bs = params.get("dnn_batch_size")
        return missing_entry(
            model=model,
            paper_name=self.registry.get(model).paper_name if model in self.registry else None,
            batch_size=int(str(bs)) if bs is not None else None,
            skipped=report.skipped,
            when=call.when,
            reason=reason,
            test=item.nodeid,
            mode=str(params["dnn_mode"]) if "dnn_mode" in params else None,
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:  # a worker's reports reach the controller too
            return
        records = getattr(report, "dnn_records", None)
        if records:
            self._keep(records, getattr(report, "dnn_environment", None))
        entry = getattr(report, "dnn_missing", None)
        if entry:
            self.missing[(entry["model"], entry["batch_size"], entry.get("mode"))] = entry
        if report.when == "teardown" and self._xdist_controller() and self.benchmark_mode:
            self._progress_line(self.progress.finished_line(report.nodeid))

    def _keep(self, records: list[JsonObject], environment: JsonObject | None) -> None:
        if environment and self.environment is None:
            self.environment = environment
        self.records.extend(Record.from_json(r) for r in records)
        if self.results is not None:
            self.results.set_environment(self.environment or {})
            self.results.records.extend(records)
            self._save_results()

    def _save_results(self) -> None:
        """Rewrite the results file; the first write that fails is said at once, and the run goes on (the
        records stay in memory: each later record tries again, and the end of the run writes them all)."""
        results = self.results
        assert results is not None
        first = results.error is None
        if results.save() or not first or results.error is None:
            return
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.ensure_newline()
            tr.write_line(
                f"dnnbench: cannot write the results file {results.path} ({_os_error(results.error)}); the run goes "
                "on, its records are kept and written at the end (the summary says where)",
                red=True,
            )

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        if self.is_worker or not self.benchmark_mode or self._xdist_controller():
            return
        self._progress_line(self.progress.started_line(nodeid))

    def _progress_line(self, line: str | None) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if line is None or tr is None or self.config.get_verbosity() < 0:
            return
        tr.ensure_newline()
        tr.write_line(line)

    def _xdist_controller(self) -> bool:
        return self.config.pluginmanager.has_plugin("dsession")

    # -- the end of the run ----------------------------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._settle_preparations()  # nothing of this run goes on running after it
        if self.is_worker:
            return
        self._finish_environment()
        if self.results is not None:  # written when asked, also with no record (the reasons in "missing")
            self.results.set_environment(self.environment or {})
            self.results.missing = list(self.missing.values())
            self.results_at = self.results.save_final(self._fallback_folders())
            if self.results_at is None and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.settings.save_baseline is not None:
            self._save_baseline(session, exitstatus)
        if self.settings.report_dir is not None:
            self._write_report(session)

    def _fallback_folders(self) -> list[Path]:
        """Where the records go when the results file cannot be written at the end: the system's temporary
        folder (writable by design, and often another file system than the project's), then the rootdir."""
        assert self.results is not None
        folders = [Path(tempfile.gettempdir()), self.settings.rootpath]
        return [f for f in folders if not _same_file(f, self.results.target.parent)]

    def _finish_environment(self) -> None:
        """Record the machine's load over the run and the GPU state at its end (clocks, throttling)."""
        if self.environment is not None and self._load_start is not None:
            from .measure.load import available_cpus, load_between, take_snapshot

            self.environment["load"] = load_between(self._load_start, take_snapshot(), available_cpus()).to_json()
        if self._backend is not None and self.environment is not None:
            snapshot = self._backend.snapshot()
            if snapshot:  # empty on the CPU
                self.environment["gpu_state_end"] = snapshot

    def _save_baseline(self, session: pytest.Session, exitstatus: int) -> None:
        s = self.settings
        assert s.save_baseline is not None
        plain_records = [r.to_json() for r in self.records]
        outcome = save_run(
            plain_records,
            self.environment,
            choice=s.save_baseline,
            root=s.rootpath,
            max_rounds=s.baseline_rounds,
            force=s.baseline_force,
            regressions=len(regressions(plain_records)),
            interrupted=exitstatus == pytest.ExitCode.INTERRUPTED,
        )
        self.notes += [n for n in outcome.notes if n not in outcome.saved_notes]
        self.saved_notes += outcome.saved_notes
        if outcome.failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _write_report(self, session: pytest.Session) -> None:
        out = self.settings.report_dir
        assert out is not None
        if not self.records and not self.missing:
            self.report_error = "no benchmark ran: nothing to report"
            return
        try:
            from .report.build import write_report
            from .report.tables import Platform, platform_label

            env = dict(self.environment or {})
            records = [r.to_json() for r in self.records]
            platform = Platform(
                platform_label(env, records, "this run"),
                records,
                env,
                list(self.missing.values()),
                "this run",
                "results",
            )
            self.report_written = write_report([platform], out, command=_command(self.config))
        except Exception as exc:  # a broken report must not hide the test results, but must show
            self.report_error = f"{type(exc).__name__}: {exc}"
            if session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """One summary, in this order: the results table (with the legend of its notes), the paper's tables,
        baselines, regressions and constraints, and last the paths of the files written."""
        if self.is_worker:
            return
        tr = terminalreporter
        records = [r.to_json() for r in self.records]
        env = self.environment or {}
        trust = trust_line(records, self.settings.policy.max_time_s)
        if trust is not None:  # first: the table below is not to be read as if it could be trusted
            tr.write_line(trust, red=True, bold=True)
        if records:
            from .report.terminal import format_table

            tf32 = ", TF32 on" if env.get("tf32_requested") and str(env.get("device", "")).startswith("cuda") else ""
            tr.write_sep(
                "=",
                f"dnnbench: {env.get('device', '?')} ({env.get('device_name', '?')}), "
                f"{env.get('precision', '?')}{tf32}",
            )
            for line in format_table(records):
                tr.write_line(line)
            tr.write_line("memory: " + _memory_note(env, records))
        if (
            records
            and (self.benchmark_mode or self.settings.report_dir is not None)
            and self.config.get_verbosity() > -2
        ):
            from .report.build import memory_note
            from .report.terminal import format_paper_tables

            width = self.config.get_terminal_writer().fullwidth
            tr.write_sep("-", "dnnbench: the paper's tables for this run")
            for line in format_paper_tables(records, list(self.missing.values()), width, memory_note(env, records)):
                tr.write_line(line)
        gated = [r for r in records if r.get("baseline") is not None]
        notes = self.notes
        if gated or notes:
            tr.write_sep("-", "dnnbench: baselines and deployment constraints")
            shown = self.config.getoption("tbstyle", "auto") not in ("no", "line")  # the failures, in full
            for line in summary_lines(gated, notes, self.settings.save_baseline is not None, shown):
                tr.write_line(line)
        written = self._files_written()
        if written:
            tr.write_sep("-", "dnnbench: files written")
            for line in written:
                tr.write_line(line, red=line.startswith(("no report", "results NOT")))

    def _files_written(self) -> list[str]:
        """The last lines of the summary: where this run's results, baselines and report are."""
        lines = []
        if self.results is not None and (self.records or self.missing or self.results.error is not None):
            lines += self._results_lines(self.results)
        lines += self.saved_notes
        out = self.settings.report_dir
        if out is not None:
            if self.report_error:
                lines.append(f"no report written to {out}: {self.report_error}")
            elif self.report_written:
                lines.append(f"report: {out} ({len(self.report_written)} files; open {out / 'report.html'})")
        return lines

    def _results_lines(self, results: ResultsFile) -> list[str]:
        """Where the results file is: the summary's line, and what went wrong writing it, if anything."""
        link = _link_note(results.path, results.target)
        if results.error is None:
            return [f"results: {results.path}{link}"]
        failed = f"{results.failures} write{'s' if results.failures != 1 else ''} of {results.path}{link} failed"
        error = _os_error(results.error)
        if self.results_at == results.target:
            return [f"results: {results.path}{link} ({failed}, the first with {error}; it now holds every record)"]
        partial = (
            f"; {results.path} holds {results.written_records} of the {len(results.records)} records"
            if results.written_records is not None
            else ""
        )
        if self.results_at is not None:
            return [
                f"results NOT written to {results.path}{link} ({error}): every record is in {self.results_at}{partial}"
            ]
        tried = ", ".join(str(f) for f in self._fallback_folders())
        return [
            f"results NOT written to {results.path}{link} ({error}), nor to a fallback file in {tried}: "
            f"the records are lost{partial}"
        ]

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Undo what the session changed in the process: SIGTERM's handler, torch's settings; release the
        results file's lock."""
        self._unlock_results()
        if self._sigterm_previous is not None:
            import signal

            signal.signal(signal.SIGTERM, self._sigterm_previous)
            self._sigterm_previous = None
        if self._restore is not None:
            self._restore()
            self._restore = None
        if self._floors is not None:
            self._floors.close()
        self._backend = None

    def _catch_sigterm(self) -> None:
        """While benchmarks run, SIGTERM ends the run as Ctrl-C does: the results so far are kept.

        pytest handles KeyboardInterrupt (summary, session finish, the last flush of the results
        file); the default SIGTERM action would kill the process without any of that. A handler the
        project installed itself is left alone; ours is removed at unconfigure.
        """
        import signal
        import threading

        if self._sigterm_previous is not None or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
            return
        self._sigterm_previous = signal.signal(signal.SIGTERM, _on_sigterm)

    # -- pytest-benchmark ---------------------------------------------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """pytest-benchmark's own end-of-run tables: in benchmark mode, printed only with
        ``--dnn-benchmark-tables`` or ``--benchmark-compare`` (whose table is the point; then without
        ``inf``); outside benchmark mode, as pytest-benchmark prints them."""
        if self.benchmark_mode:
            comparing = bool(self.config.getoption("benchmark_compare", default=None))  # [] when not given
            compat.benchmark_tables(self.config, show=self.settings.benchmark_tables or comparing)

    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_machine_info(self, config: pytest.Config, machine_info: JsonObject) -> None:
        """GPU names, driver, torch/CUDA/cuDNN versions: in benchmark mode only.

        pytest-benchmark asks for this both when it loads a run to compare (at configure time,
        before anything ran) and when it saves one, so the block is built from facts that do not
        need a measurement, and is the same both times.
        """
        if not self.benchmark_mode:
            return
        if self.machine_info is None:
            from .measure.environment import machine_info as collect_machine_info

            self.machine_info = collect_machine_info(self.settings)
        machine_info["dnnbench"] = dict(self.machine_info)

    @pytest.hookimpl(wrapper=True, optionalhook=True)
    def pytest_benchmark_compare_machine_info(
        self,
        config: pytest.Config,
        benchmarksession: object,
        machine_info: JsonObject,
        compared_benchmark: JsonMapping,
    ) -> Generator[None, object, object]:
        """The paper's runs (baselines/paper) differ from every machine by design: no warning for that.

        pytest-benchmark warns (a Python warning) when the compared run's ``machine_info`` differs
        from this machine's; under ``-W error`` or ``filterwarnings = error`` that warning would stop
        the run before any test. For the paper's files, whose machine is a 2018 Titan Xp or Jetson
        TX1, it says nothing new, so it is silenced for them alone (other files still warn).
        """
        info = (compared_benchmark or {}).get("machine_info") or {}
        if (info.get("dnnbench") or {}).get("source") != "paper":
            return (yield)
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Benchmark machine_info is different")
            return (yield)


# -- small helpers ----------------------------------------------------------------------------------


def _params(item: pytest.Item) -> dict[str, object]:
    return dict(getattr(getattr(item, "callspec", None), "params", {}) or {})


def _argnames(marker: pytest.Mark) -> list[str]:
    names = marker.args[0] if marker.args else marker.kwargs.get("argnames", ())
    if isinstance(names, str):
        return [n.strip() for n in names.split(",")]
    return list(names)


def _unsettled(checks: Sequence[Check]) -> bool:
    """The latency check's fresh processes left it inconclusive: more of them may settle it."""
    for c in checks:
        confirmation = c.get("confirmation") if c.metric == "latency" else None
        if isinstance(confirmation, dict) and confirmation.get("verdict") == "inconclusive":
            return True
    return False


def _test_id(item: pytest.Item) -> str:
    """The test's node id, without the ``@group`` suffix pytest-xdist's loadgroup adds to it."""
    groups = [str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")]
    return strip_group(item.nodeid, groups)


def _shared_floors() -> dict[str, Floor]:
    """The floors other processes of this test run measured (:data:`FLOOR_CACHE_ENV`), by key."""
    import os

    from .jsonfile import load_json
    from .measure.floor import floor_from_json

    folder = os.environ.get(FLOOR_CACHE_ENV)
    found: dict[str, Floor] = {}
    if folder:
        try:
            paths = sorted(Path(folder).glob("*.json"))
        except OSError:
            return found
        for path in paths:
            try:
                floor = floor_from_json(load_json(path, "runtime floor cache file", max_bytes=2**16, regular_only=True))
            except ValueError:
                continue  # being written, not a floor, or an implausible figure: never trusted, measured here
            if path.stem != floor.key:
                continue  # a file named for another library: not trusted either
            found[floor.key] = floor
    return found


def _share_floor(floor: Floor) -> None:
    """Leave ``floor`` for the other processes of this test run (atomically: a reader sees all or nothing)."""
    import json
    import os

    folder = os.environ.get(FLOOR_CACHE_ENV)
    if not folder:
        return
    target = Path(folder) / f"{floor.key}.json"
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(json.dumps(floor.to_json()), encoding="utf-8")
        os.replace(temp, target)
    except OSError:
        pass  # sharing is an optimisation only


def compile_floor_library(library: str | None) -> str:
    """The floor of a compiled model's process: the model's library and torch's compiler (inductor)."""
    return ",".join([*([library] if library else []), "torch._inductor.compile_fx"])


def _library_hint(spec: ModelSpec | None, module: torch.nn.Module | None) -> tuple[str, str | None]:
    """(source, module name) from which :func:`.measure.floor.library_of` tells the library a model needs."""
    if spec is None:  # a model handed to dnn_bench: its class's package
        return "custom", type(module).__module__ if module is not None else None
    if spec.factory is not None:
        return spec.source, getattr(spec.factory, "__module__", None)
    return spec.source, spec.builder.partition(":")[0] if ":" in spec.builder else None


def _is_module(obj: object) -> TypeGuard[torch.nn.Module]:
    import torch

    return isinstance(obj, torch.nn.Module)


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _oom_message(batch_size: int | None, device: str, summary: str, model: str | None = None) -> str:
    from .oom import skip_message

    return skip_message(batch_size, device, summary, model=model)


def _worker_index(worker_id: str | None) -> int | None:
    """pytest-xdist's ``gwN`` -> N (GPUs are pinned round robin over the workers)."""
    if worker_id and worker_id.startswith("gw") and worker_id[2:].isdigit():
        return int(worker_id[2:])
    return None


def _user_chose_dist(config: pytest.Config) -> bool:
    """Whether ``--dist``/``-d`` was given (command line, PYTEST_ADDOPTS or the ini's addopts).

    pytest-xdist turns ``-n N`` into ``--dist load`` when no mode was given, so the value alone
    cannot tell a choice from the default.
    """
    import os
    import shlex

    args = [str(a) for a in config.invocation_params.args]
    try:
        args += shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    except ValueError:
        pass
    try:
        args += [str(a) for a in config.getini("addopts")]
    except (ValueError, KeyError):
        pass
    return any(a in ("--dist", "-d") or a.startswith("--dist=") for a in args)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")


def trust_line(records: Sequence[JsonMapping], max_time_s: float) -> str | None:
    """The run's figures cannot be trusted when most of its rows (more than half) were measured on a busy
    machine, capped by the time budget or left with fewer samples than the minimum: the line that says so,
    with the counts and the fix; None otherwise."""
    rows = [
        (bool((r.get("load") or {}).get("busy")), bool(lat.get("capped")), bool(lat.get("insufficient")))
        for r in records
        for lat in [r.get("latency_ms") or {}]
    ]
    if not rows or 2 * sum(any(row) for row in rows) <= len(rows):
        return None
    busy, capped, insufficient = (sum(row[k] for row in rows) for k in range(3))
    counts = [
        (busy, "measured on a busy machine"),
        (capped, "capped by the time budget"),
        (insufficient, "with fewer samples than the minimum"),
    ]
    parts = [f"{n} {what}" for n, what in counts if n]
    parts[0] = parts[0].replace(" ", f" of {len(records)} ", 1)
    fixes = (["run on a quiet machine"] if busy else []) + (
        [f"raise --dnn-max-time (now {max_time_s:g} s)"] if capped or insufficient else []
    )
    return f"dnnbench: these figures cannot be trusted: {', '.join(parts)}; {', '.join(fixes)}"


def _memory_note(env: JsonMapping, records: Sequence[JsonMapping]) -> str:
    if str(env.get("device", "")).startswith("cuda"):
        return "process GPU memory (NVML, CUDA context included) at steady state, MiB = 2^20 bytes"
    from .measure.floor import cpu_total_meaning

    method = next((r.get("memory_method") for r in records if r.get("memory_method")), None)
    return f"{cpu_total_meaning(method)}; the whole pytest process's peak is process_total; MiB = 2^20 bytes"


def _command(config: pytest.Config) -> str:
    import shlex

    return "pytest " + " ".join(shlex.quote(str(a)) for a in config.invocation_params.args)


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file: the same path through symlinks, or (hard links) the same inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _link_note(path: Path, target: Path) -> str:
    """`` (a link to TARGET)`` where ``path`` itself is a symlink (not where a folder above it is one)."""
    return f" (a link to {target})" if os.path.islink(path) else ""


def _os_error(exc: OSError) -> str:
    """``No space left on device (ENOSPC)``: what the system said, and its name."""
    name = errno.errorcode.get(exc.errno) if exc.errno is not None else None
    text = exc.strerror or str(exc)
    return f"{text} ({name})" if name else text


__all__ = ["DnnSession", "RECORDS_KEY", "SESSION_KEY", "session_of"]
