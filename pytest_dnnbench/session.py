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
import os
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from . import compat, shards
from .interrupt import SigtermAsInterrupt
from .jsontypes import JsonMapping, JsonObject
from .nodeids import argnames_of, params_of, strip_group, suite_cell
from .outputs import (
    check_automatic_baseline,
    check_baseline_files,
    check_outputs,
    check_weights_file,
)
from .parallel import Workers, worker_index
from .problems import UsageProblem
from .record import Record
from .registry import Registry, SelectionError
from .report.progress import Progress, missing_entry
from .results import plain
from .run_results import RunResults
from .runner import BenchCall, IsolatedModel, MeasurementFailed, Runner, Skip
from .settings import MARKERS, Settings, item_limits
from .store_baseline import baseline_source
from .verdict import judge, judged_by_baseline, verdict_text

if TYPE_CHECKING:
    import torch

    from .accuracy.evaluate import AccuracyRun
    from .constraints import Constraints
    from .gate import Tolerances

SUITE_PATH = Path(__file__).parent / "suite" / "bench_models.py"
#: Node id of the shipped suite: the same wherever the package or the rootdir is, so that
#: pytest-benchmark's stored names compare test by test between machines.
SUITE_NODEID = "pytest_dnnbench/suite/bench_models.py"
DNN_FIXTURES = ("dnn_model", "dnn_bench", "dnn_device", "dnn_backend")

SESSION_KEY = pytest.StashKey["DnnSession"]()
#: The records a test's ``dnn_bench`` produced (attached to its report).
RECORDS_KEY = pytest.StashKey[list[Record]]()
#: The text a test's failed checks failed it with (its report shows it as it is).
VERDICT_KEY = pytest.StashKey[str]()
#: A test's tolerances and constraints (options overridden by its markers).
LIMITS_KEY = pytest.StashKey[tuple["Tolerances", "Constraints"]]()


def session_of(config: pytest.Config) -> DnnSession:
    try:
        return config.stash[SESSION_KEY]
    except KeyError:
        raise pytest.UsageError(
            "pytest-dnnbench is not configured (was the plugin disabled with -p no:dnnbench?)"
        ) from None


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
        #: The records, the tests that left none, the results file (at the controller or the only process).
        self.kept = RunResults(None, settings.rootpath)
        self.progress = Progress()
        self.group_by_model = False
        self.machine_info: JsonObject | None = None
        self.accuracy: AccuracyRun | None = None
        self.baselines = baseline_source(settings)
        self.notes: list[str] = []
        #: The measurements (no pytest in them): this session turns what they raise into pytest outcomes.
        self.runner = Runner(settings, registry, self.ensure_device, self.notes, self._floor_path)
        #: What the baseline save wrote, listed with the files written.
        self.saved_notes: list[str] = []
        self.report_written: list[Path] = []
        self.report_error: str | None = None
        self._env_sent = False
        #: The registry models collected, whose floors the first test that builds one measures (None: done).
        self._floors_planned: set[str] | None = None
        #: While benchmarks run, SIGTERM ends the run as Ctrl-C does: the results so far are kept.
        self._sigterm = SigtermAsInterrupt()

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
            if not self.is_worker and s.device != "auto" and not self._workers().elsewhere:
                # An explicit device that is not here (cuda without a GPU), or a precision it cannot run: a usage
                # error now, before anything is collected. torch is imported for cuda only (benchmark mode).
                self.ensure_device()
            self._sigterm.install()  # also at a pytest-xdist controller, which never collects
        with _usage_errors():
            if not self.is_worker:
                check_outputs(s)
            check_baseline_files(s)
            if not self.is_worker:
                check_weights_file(s)
        self._open_accuracy()
        if self.settings.report_dir is not None and not self.is_worker:
            import importlib.util

            if importlib.util.find_spec("matplotlib") is None:
                raise pytest.UsageError(
                    f"--dnn-report={self.settings.report_dir}: the report's figures need "
                    "matplotlib, which is not installed. pip install matplotlib"
                )
        if not self.is_worker and (s.json_path is not None or s.store is not None):
            with _usage_errors():
                self.kept = RunResults(s.json_path, s.rootpath, s.store)

    def _open_accuracy(self) -> None:
        from .accuracy.data import DatasetError
        from .accuracy.evaluate import open_run

        s = self.settings
        try:
            self.accuracy = self.runner.accuracy_run = open_run(s.imagenet, s.accuracy_limit, s.weights)
        except DatasetError as exc:
            raise pytest.UsageError(f"--dnn-imagenet={s.imagenet}: {exc}") from None

    # -- pytest-xdist ------------------------------------------------------------------------------
    def _workers(self) -> Workers:
        option = self.config.option
        return Workers(str(getattr(option, "dist", "no")), tuple(str(t) for t in (getattr(option, "tx", None) or [])))

    def _configure_xdist(self) -> None:
        """At the controller: check the workers against the device, and group the tests by model unless the
        user chose a --dist mode (the workers receive the controller's options: they see ``loadgroup`` too)."""
        from .device import TorchProbe
        from .parallel import plan_workers, user_chose_dist

        config, s = self.config, self.settings
        try:
            ini = [str(a) for a in config.getini("addopts")]
        except (ValueError, KeyError):
            ini = []
        args = [str(a) for a in config.invocation_params.args]
        with _usage_errors():
            self.group_by_model = plan_workers(
                self._workers(),
                s.device,
                self.ensure_device,
                lambda: TorchProbe.default().device_count(),
                allow_parallel_cpu=s.allow_parallel_cpu,
                allow_shared_gpu=s.allow_shared_gpu,
                chose_dist=user_chose_dist(args, os.environ.get("PYTEST_ADDOPTS", ""), ini),
            )
        if self.group_by_model:
            config.option.dist = "loadgroup"

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: compat.XdistLog) -> object:
        """At the controller: schedule the benchmark tests by model."""
        return compat.model_scheduler(config, log, self.model_names()) if self.group_by_model else None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: compat.XdistNode) -> None:
        """Tell each worker to group by model: workers re-parse the command line, which does not carry
        the ``loadgroup`` the controller chose."""
        if getattr(node.config.option, "dist", None) == "loadgroup":
            node.workerinput["dnn_loadgroup"] = True
        node.workerinput["dnn_shard"] = self.settings.shard and str(self.settings.shard)  # `auto` read here only

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        """The controller does not collect: the workers tell it the ids (for the progress lines)."""
        if self.progress.plan:
            return
        for nodeid in ids:
            cell = suite_cell(nodeid)
            if cell is not None:
                self.progress.plan[nodeid] = cell
        self._write(shards.collected_line(self.settings.shard, ids, self.model_names()))
        self.progress.begin()

    # -- collection ---------------------------------------------------------------------------------
    def pytest_report_header(self, config: pytest.Config) -> list[str] | None:
        from .report.summary import header_line

        lines = []
        if self.benchmark_mode:
            s = self.settings
            device = self.device or (s.device if self._workers().elsewhere else self.ensure_device())
            lines.append(header_line(s, len(self.selected or []), device))
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
        from .report.summary import default_models_line

        batches = self.settings.batch_sizes if any("dnn_batch_size" in names for names in uses) else None
        return default_models_line(self.model_names(), batches)

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makemodule(self, module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
        if module_path == SUITE_PATH:
            return pytest.Module.from_parent(parent, path=module_path, nodeid=SUITE_NODEID)
        return None

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        taken = {name for m in metafunc.definition.iter_markers("parametrize") for name in argnames_of(m)}
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
        if self.settings.shard is not None:  # this shard's models only (every process makes the same choice)
            items[:], line = shards.take(items, self.settings.shard, self.registry, config.hook.pytest_deselected)
            self._write(None if self.is_worker else line)
        xdist = config.pluginmanager.hasplugin("xdist")
        for item in items:
            if item.get_closest_marker("dnn_tolerance") or item.get_closest_marker("dnn_constraints"):
                self.limits(item)
            if xdist:
                params = params_of(item)
                if "dnn_model" in params and item.get_closest_marker("xdist_group") is None:
                    item.add_marker(pytest.mark.xdist_group(str(params["dnn_model"])))
        ours = [item for item in items if "dnn_bench" in getattr(item, "fixturenames", ())]
        with compat.seen_as_benchmarks(config, ours):
            yield

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Resolve and check the device where tests run, before any model is built; plan the progress."""
        for item in session.items:
            params = params_of(item)
            if "dnn_model" in params:
                bs = params.get("dnn_batch_size")
                self.progress.plan[item.nodeid] = (str(params["dnn_model"]), int(str(bs)) if bs is not None else None)
        if any(set(DNN_FIXTURES) & set(getattr(item, "fixturenames", ())) for item in session.items):
            self.runner.note_start()
            self.ensure_device()
            if not session.config.option.collectonly:
                self._prove_modes()
            self._sigterm.install()
            if self.settings.baseline == "auto" and self.device == "cpu" and not self.is_worker:
                with _usage_errors():  # (on a GPU the file's name needs the device: read with the first test)
                    check_automatic_baseline(self.settings, self.baselines)
            # Measured by the first test that builds a model, not now: collecting, listing and skipped runs never
            # pay for them.
            self._floors_planned = {name for name, _ in self.progress.plan.values()}

    def _floor_path(self) -> list[str]:
        """Where a fresh interpreter measuring a floor finds the user's own models: the rootdir and the folders
        of the project's conftest files."""
        plugins = self.config.pluginmanager.get_plugins()
        dirs = {str(Path(str(getattr(m, "__file__", ""))).parent) for m in plugins}
        return [str(self.settings.rootpath), *sorted(d for d in dirs if d and Path(d, "conftest.py").exists())]

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
                device = resolve_device(self.settings.device, worker_index=worker_index(self.worker_id))
                check_precision(self.settings.precision, device)
            except DeviceError as exc:
                raise pytest.UsageError(str(exc)) from None
            self._check_modes(device)
            self.device = device
        return self.device

    def _check_modes(self, device: str) -> None:
        """Every mode asked for can run on ``device`` (a GPU-only mode on the CPU is a usage error)."""
        for mode in self.settings.modes:
            problem = self.runner.mode_problem(mode, device)
            if problem is not None:
                raise pytest.UsageError(f"--dnn-modes={','.join(self.settings.modes)}: {problem}")

    def _prove_modes(self) -> None:
        """Each mode that must be tried to be known to run here (ONNX Runtime's CUDA provider) is tried once, in
        this process, before any test exports a model: one that cannot run is a usage error, not a skip per test."""
        for mode in self.settings.modes:
            problem = self.runner.mode_proof(mode)
            if problem is not None:
                raise pytest.UsageError(f"--dnn-modes={','.join(self.settings.modes)}: {problem}")

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
        # The first model of the run measures the planned floors, before its test's budget starts.
        planned, self._floors_planned = self._floors_planned, None
        skipped = None
        try:
            with self.runner.built(spec, planned) as module:
                yield module
        except Skip as exc:
            skipped = str(exc)
        if skipped is not None:
            pytest.skip(skipped)

    # -- one test's pipeline -----------------------------------------------------------------------
    def bench(
        self,
        item: pytest.Item,
        model: torch.nn.Module | IsolatedModel,
        *,
        input_size: Sequence[int] | None,
        batch_size: int,
        name: str | None,
        forward: Callable[[torch.Tensor], object] | None,
        mode: str,
    ) -> JsonObject:
        """Benchmark ``model`` for test ``item``: measure -> accuracy -> checks -> pytest-benchmark ->
        ``pytest_dnnbench_record`` -> verdict. Returns the record as plain JSON data."""
        call = BenchCall(_test_id(item), model, input_size, batch_size, name, forward, mode)
        tolerances, constraints = self.limits(item)
        skipped = failed = None
        try:
            # 1. measure (a mode other than eager: prepared first, outside the budget, and its output checked
            #    against eager); on a busy machine, when a baseline will judge the latency, calm down and again
            measured = self.runner.measure(call)
            if (measured.record.load or {}).get("busy") and judged_by_baseline(self.baselines, measured.record):
                measured = self.runner.measure_again(measured.record, call)
            # 2. accuracy
            accuracy = self.runner.accuracy(measured, self._accuracy_progress)
            # 3. deployment constraints and the baseline (a suspicious latency confirmed in fresh processes)
            judged = judge(
                dataclasses.replace(measured.record, accuracy=accuracy),
                self.baselines,
                tolerances,
                constraints,
                strict=self.settings.strict,
                confirm=lambda checks, earlier: self.runner.confirmation(call, measured.spec, checks, earlier),
            )
        except Skip as exc:
            skipped = str(exc)
        except MeasurementFailed as exc:
            failed = str(exc)
        if skipped is not None:  # (raised outside the except block: its frames and their memory are gone)
            pytest.skip(skipped)
        if failed is not None:
            pytest.fail(failed, pytrace=False)
        record = judged.record
        # Kept now: a check or a hook that fails the test below must not lose the measurement.
        records = item.stash.setdefault(RECORDS_KEY, [])
        records.append(record)
        # 4. pytest-benchmark (a copy of the record)
        compat.add_to_benchmark_session(
            self.config, item, record, self.settings.policy.min_samples, self.settings.policy.max_time_s
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
        verdict = verdict_text(dataclasses.replace(judged, record=record))
        if verdict is not None:
            item.stash[VERDICT_KEY] = verdict
            pytest.fail(verdict, pytrace=False)
        return record.to_json()

    def check_call_mode(self, mode: str) -> None:
        """``dnn_bench(mode=...)``: a mode the runner knows, and one that can run on this device."""
        known = self.runner.modes()
        if mode not in known:
            raise ValueError(f"dnn_bench(mode={mode!r}): unknown mode; use one of {', '.join(known)}")
        problem = self.runner.mode_problem(mode, self.ensure_device()) or self.runner.mode_proof(mode)
        if problem is not None:
            raise pytest.UsageError(f"dnn_bench(mode={mode!r}): {problem}")

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
            if not self._env_sent and self.runner.environment is not None:
                report.dnn_environment = plain(self.runner.environment)  # type: ignore[attr-defined]
                self._env_sent = True
        elif call.when in ("setup", "call") and report.outcome != "passed" and not records:
            params = params_of(item)
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
            environment = getattr(report, "dnn_environment", None)
            if environment and self.runner.environment is None:
                self.runner.environment = environment
            self._write(self.kept.keep(records, self.runner.environment or {}), red=True)
        entry = getattr(report, "dnn_missing", None)
        if entry:
            self.kept.add_missing(entry)
        if report.when == "teardown" and self._xdist_controller() and self.benchmark_mode:
            self._write(self.progress.finished_line(report.nodeid))

    def _write(self, line: str | None, *, red: bool = False) -> None:
        """A line between the tests' progress (red: the results file could not be written; -q hides the rest)."""
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if line is None or tr is None or (not red and self.config.get_verbosity() < 0):
            return
        tr.ensure_newline()
        tr.write_line(line, red=red)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        if self.is_worker or not self.benchmark_mode or self._xdist_controller():
            return
        self._write(self.progress.started_line(nodeid))

    def _xdist_controller(self) -> bool:
        return self.config.pluginmanager.has_plugin("dsession")

    # -- the end of the run ----------------------------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.runner.settle_preparations()  # nothing of this run goes on running after it
        if self.is_worker:
            return
        self.runner.finish_environment()
        self.runner.environment = shards.stamp(self.runner.environment, self.settings.shard, self.settings.run_group)
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        done = self.kept.finish(self.runner.environment or {}, interrupted=interrupted)
        if not done and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.settings.save_baseline is not None:
            self._save_baseline(session, exitstatus)
        if self.settings.report_dir is not None:
            self._write_report(session)

    def _save_baseline(self, session: pytest.Session, exitstatus: int) -> None:
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        outcome = self.kept.save_baseline(self.settings, self.runner.environment, interrupted=interrupted)
        self.notes += [n for n in outcome.notes if n not in outcome.saved_notes]
        self.saved_notes += outcome.saved_notes
        if outcome.failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _write_report(self, session: pytest.Session) -> None:
        out = self.settings.report_dir
        assert out is not None
        if not self.kept.records and not self.kept.missing:
            self.report_error = "no benchmark ran: nothing to report"
            return
        try:
            self.report_written = self.kept.write_report(out, self.runner.environment, _command(self.config))
        except Exception as exc:  # a broken report must not hide the test results, but must show
            self.report_error = f"{type(exc).__name__}: {exc}"
            if session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """One summary, in this order: the results table (with the legend of its notes), the paper's tables,
        baselines, regressions and constraints, and last the paths of the files written."""
        if self.is_worker:
            return
        from .report.summary import files_lines, run_summary

        records = self.kept.plain
        written = files_lines(
            self.kept.lines(),
            self.saved_notes,
            self.settings.report_dir,
            self.report_error,
            len(self.report_written),
        )
        lines = run_summary(
            self.kept.records,
            records,
            self.runner.environment or {},
            list(self.kept.missing.values()),
            self.notes,
            written,
            max_time_s=self.settings.policy.max_time_s,
            paper_tables=(self.benchmark_mode or self.settings.report_dir is not None)
            and self.config.get_verbosity() > -2,
            width=self.config.get_terminal_writer().fullwidth,
            saving_baseline=self.settings.save_baseline is not None,
            failures_shown=self.config.getoption("tbstyle", "auto") not in ("no", "line"),
        )
        for line in lines:
            if line.sep is not None:
                terminalreporter.write_sep(line.sep, line.text)
            else:
                terminalreporter.write_line(line.text, red=line.red, bold=line.bold)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Undo what the session changed in the process: SIGTERM's handler, torch's settings; release the
        results file's lock."""
        self.kept.release()
        self._sigterm.restore()
        self.runner.close()

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
            self.machine_info = self.runner.machine_info()
        machine_info["dnnbench"] = dict(self.machine_info)

    @pytest.hookimpl(wrapper=True, optionalhook=True)
    def pytest_benchmark_compare_machine_info(
        self,
        config: pytest.Config,
        benchmarksession: object,
        machine_info: JsonObject,
        compared_benchmark: JsonMapping,
    ) -> Generator[None, object, object]:
        """The paper's runs (baselines/paper) differ from every machine by design: no warning for them
        (:func:`.compat.paper_machine_info_quiet`)."""
        with compat.paper_machine_info_quiet(compared_benchmark):
            return (yield)


# -- small helpers ----------------------------------------------------------------------------------


def _test_id(item: pytest.Item) -> str:
    """The test's node id, without the ``@group`` suffix pytest-xdist's loadgroup adds to it."""
    groups = [str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")]
    return strip_group(item.nodeid, groups)


@contextlib.contextmanager
def _usage_errors() -> Iterator[None]:
    """What the plain code found wrong with the user's input, raised as pytest's usage error."""
    try:
        yield
    except UsageProblem as exc:
        raise pytest.UsageError(str(exc)) from None


def _command(config: pytest.Config) -> str:
    import shlex

    return "pytest " + " ".join(shlex.quote(str(a)) for a in config.invocation_params.args)


__all__ = ["DnnSession", "RECORDS_KEY", "SESSION_KEY", "session_of"]
