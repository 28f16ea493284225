"""The pytest plugin: options, benchmark mode, parametrization, records, the end-of-run table.

Importing this module imports no torch: pytest loads every installed plugin
in every project, and a project that does not ask for benchmarks must not
pay for them. torch is imported when a test that uses the fixtures runs, or
when benchmark mode resolves the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pytest

from . import hookspecs
from .options import addoptions, parse_options
from .registry import REGISTRY, SelectionError
from .results import plain
from .state import RECORDS_KEY, STATE_KEY, DnnState, get_state

# Feature plugins: each adds its own options and hooks; none imports torch at import time.
pytest_plugins = [
    "pytest_dnnbench.fixtures",
    "pytest_dnnbench.accuracy.plugin",
    "pytest_dnnbench.gating",
    "pytest_dnnbench.report.plugin",
]

SUITE_PATH = Path(__file__).parent / "suite" / "bench_models.py"
#: Node id of the shipped suite: the same wherever the package or the rootdir is, so that
#: pytest-benchmark's stored names compare test by test between machines.
SUITE_NODEID = "pytest_dnnbench/suite/bench_models.py"
DNN_FIXTURES = ("dnn_model", "dnn_bench", "dnn_device", "dnn_backend")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    addoptions(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    options = parse_options(config)
    registry = REGISTRY.copy()
    config.hook.pytest_dnnbench_register_models(registry=registry, config=config)
    state = DnnState(options=options, registry=registry)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        state.worker_id = workerinput.get("workerid")
        if workerinput.get("dnn_loadgroup"):
            config.option.loadgroup = True  # what xdist's worker reads to suffix node ids with the group
    if options.models is not None:
        try:
            state.selected = registry.select(options.models)
        except SelectionError as exc:
            raise pytest.UsageError(f"--dnn-models={options.models}: {exc}") from None
        _collect_suite_only(config)
        if not state.is_worker:
            _configure_xdist(config, state)
    config.stash[STATE_KEY] = state
    if not state.is_worker:
        state.open_results(options.json_path)
    config.pluginmanager.register(_Collector(config, state), "dnnbench-collector")


def _xdist_distributes(config: pytest.Config) -> bool:
    """Whether pytest-xdist will run the tests in workers (``-n N`` with N > 0, or ``--tx``)."""
    dist = getattr(config.option, "dist", "no")
    return bool(dist and dist != "no" and getattr(config.option, "tx", None))


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


def _configure_xdist(config: pytest.Config, state: DnnState) -> None:
    """Benchmark mode under pytest-xdist: one worker per model, and no parallel CPU timings unasked.

    Runs at the controller in ``pytest_configure``, after pytest-xdist's ``pytest_cmdline_main``
    has set ``dist`` and before its ``pytest_sessionstart`` starts the workers, which receive the
    controller's options (so they see ``loadgroup`` too).
    """
    if not _xdist_distributes(config):
        return
    tx = [str(t) for t in (config.getoption("tx", None) or [])]
    local_only = all(t.startswith("popen") or t.split("*", 1)[-1].startswith("popen") for t in tx)
    device = state.options.device
    on_cpu = device == "cpu"
    if device == "auto" and local_only:
        on_cpu = state.ensure_device() == "cpu"  # workers on this machine see the same devices
    if on_cpu and not config.getoption("dnn_allow_parallel_cpu", False):
        raise pytest.UsageError(
            f"pytest-dnnbench: {len(tx)} pytest-xdist workers would benchmark on the CPU at the same time "
            "(--dnn-device=" + device + "), and parallel workers disturb each other's timings and memory "
            "figures. Run without -n/--tx, use GPUs (--dnn-device=cuda pins one GPU per worker), or pass "
            "--dnn-allow-parallel-cpu to accept the interference (and consider --dnn-threads to share the cores)"
        )
    if config.option.dist == "load" and not _user_chose_dist(config):
        # All tests of a model on one worker: it is built, profiled and evaluated once.
        config.option.dist = "loadgroup"
        state.group_by_model = True


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """At the controller: schedule the benchmark tests by model (see :mod:`.xdist_sched`)."""
    state = config.stash.get(STATE_KEY, None)
    if state is None or not state.group_by_model:
        return None
    from .xdist_sched import ModelGroupScheduling

    return ModelGroupScheduling(config, log, names=state.model_names())


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Tell each pytest-xdist worker to group by model: workers re-parse the command line, which
    does not carry the ``loadgroup`` the controller chose."""
    if getattr(node.config.option, "dist", None) == "loadgroup":
        node.workerinput["dnn_loadgroup"] = True


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group benchmark tests by model for pytest-xdist's ``loadgroup`` (before xdist reads the marks)."""
    if config.stash.get(STATE_KEY, None) is None or not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {}) or {}
        if "dnn_model" in params and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(str(params["dnn_model"])))


def _collect_suite_only(config: pytest.Config) -> None:
    """In benchmark mode, run the shipped suite instead of the project's tests, unless paths were given."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(SUITE_PATH)]


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> Optional[pytest.Module]:
    if module_path == SUITE_PATH:
        return pytest.Module.from_parent(parent, path=module_path, nodeid=SUITE_NODEID)
    return None


def pytest_cmdline_main(config: pytest.Config) -> Optional[int]:
    if not config.getoption("dnn_list_models"):
        return None
    config._do_configure()
    try:
        tw = config.get_terminal_writer()
        state = get_state(config)
        rows = [("name", "paper name", "source", "input")]
        for spec in state.registry:
            rows.append((spec.name, spec.paper_name or "", spec.describe_source(), "x".join(map(str, spec.input_size))))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for k, row in enumerate(rows):
            tw.line("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip(), bold=(k == 0))
        paper = len(state.registry.paper_names())
        tw.line(f"\n{len(state.registry)} models, {paper} from the paper; default set: {', '.join(state.registry.default)}")
    finally:
        config._ensure_unconfigure()
    return 0


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    state = metafunc.config.stash.get(STATE_KEY, None)
    if state is None:
        return
    taken = {name for m in metafunc.definition.iter_markers("parametrize") for name in _argnames(m)}
    if "dnn_model" in metafunc.fixturenames and "dnn_model" not in taken:
        names = state.model_names()
        metafunc.parametrize("dnn_model", names, indirect=True, ids=names, scope="session")
    if "dnn_batch_size" in metafunc.fixturenames and "dnn_batch_size" not in taken:
        sizes = list(state.options.batch_sizes)
        metafunc.parametrize("dnn_batch_size", sizes, indirect=True, ids=[f"bs{n}" for n in sizes])


def _argnames(marker: pytest.Mark) -> list[str]:
    names = marker.args[0] if marker.args else marker.kwargs.get("argnames", ())
    if isinstance(names, str):
        return [n.strip() for n in names.split(",")]
    return list(names)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Resolve and check the device where tests run, before any model is built."""
    if any(set(DNN_FIXTURES) & set(getattr(item, "fixturenames", ())) for item in session.items):
        state = get_state(session.config)
        state.ensure_device()
        _catch_sigterm(state)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")


def _catch_sigterm(state: DnnState) -> None:
    """While benchmarks run, SIGTERM ends the run as Ctrl-C does: the results so far are kept.

    pytest handles KeyboardInterrupt (summary, session finish, our last flush of the results
    file); the default SIGTERM action would kill the process without any of that. A handler the
    project installed itself is left alone; ours is removed at unconfigure.
    """
    import signal
    import threading

    if state.sigterm_previous is not None or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return
    state.sigterm_previous = signal.signal(signal.SIGTERM, _on_sigterm)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    if call.when != "call":
        return report
    records = item.stash.get(RECORDS_KEY, None)
    if records:
        reason = None
        if report.outcome != "passed" and call.excinfo is not None:
            reason = call.excinfo.exconly()[:2000]
        for rec in records:
            rec["outcome"] = report.outcome
            rec["reason"] = reason
        report.dnn_records = [plain(rec) for rec in records]
        state = get_state(item.config)
        if not state.env_sent and state.environment is not None:
            report.dnn_environment = plain(state.environment)
            state.env_sent = True
    return report


class _Collector:
    """Per-config hooks that need the config: records arrive with the reports."""

    def __init__(self, config: pytest.Config, state: DnnState):
        self.config = config
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        records = getattr(report, "dnn_records", None)
        if records and not self.state.is_worker:  # a worker's reports reach the controller too
            self.state.add_records(records, getattr(report, "dnn_environment", None))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        state = self.state
        if not state.records:
            return
        from .report.terminal import format_table

        state.finish_environment()
        if state.results is not None:
            state.results.set_environment(state.environment or {})
            state.results.flush()
        env = state.environment or {}
        title = f"dnnbench: {env.get('device', '?')} ({env.get('device_name', '?')}), {env.get('precision', '?')}"
        terminalreporter.write_sep("=", title)
        for line in format_table(state.records):
            terminalreporter.write_line(line)
        terminalreporter.write_line("memory: " + _memory_note(env))
        if state.results is not None:
            terminalreporter.write_line(f"results written to {state.results.path}")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state is not None:
        if state.sigterm_previous is not None:
            import signal

            signal.signal(signal.SIGTERM, state.sigterm_previous)
            state.sigterm_previous = None
        state.close()


def _memory_note(env: dict) -> str:
    if str(env.get("device", "")).startswith("cuda"):
        return "process GPU memory (NVML, CUDA context included) at steady state, MiB = 2^20 bytes"
    return "peak RSS of the process during the timed calls (framework included), MiB = 2^20 bytes"


# -- pytest-benchmark --------------------------------------------------------------------------

@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """GPU names, driver, torch/CUDA/cuDNN versions: in benchmark mode only.

    pytest-benchmark asks for this both when it loads a run to compare (at
    configure time, before anything ran) and when it saves one, so the block is
    built from facts that do not need a measurement, and is the same both times.
    """
    state = config.stash.get(STATE_KEY, None)
    if state is None or not state.benchmark_mode:
        return
    if state.machine_info is None:
        from .measure.environment import machine_info as collect_machine_info

        state.machine_info = collect_machine_info(state.options)
    machine_info["dnnbench"] = dict(state.machine_info)


def pytest_report_header(config: pytest.Config) -> Optional[str]:
    state = config.stash.get(STATE_KEY, None)
    if state is None or not state.benchmark_mode:
        return None
    o = state.options
    return (
        f"dnnbench: {len(state.selected or [])} models x {len(o.batch_sizes)} batch sizes, "
        f"device {o.device}, {o.precision}, cudnn.benchmark {'on' if o.cudnn_benchmark else 'off'}, "
        f"seed {o.seed}, budget {o.policy.max_time_s:g} s/test"
    )
