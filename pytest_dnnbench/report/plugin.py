"""Reports at the end of a run (pytest glue).

- ``--dnn-report=DIR`` (ini ``dnn_report``): at the end of the session, on the controller, write
  ``results.json``, ``results.csv``, ``report.md``, ``report.html`` and the figures' PNGs.
- The paper's Tables 1-3, condensed to the terminal's width, in the terminal summary of a
  benchmark run.
- Progress per model during a benchmark run: which model, its batch sizes, how many tests left.
- Tests that produced no record (a model that could not be built, a batch that ran out of
  memory) are remembered with their reason, so that the tables show the cell as missing with a
  note instead of leaving it out silently.

No torch and no matplotlib at import; matplotlib is imported when the report is written.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from ..state import STATE_KEY, DnnState


@dataclass
class ReportState:
    out: Optional[Path] = None
    missing: dict = field(default_factory=dict)
    #: nodeid -> (model, batch size) of the benchmark tests, in run order.
    plan: dict = field(default_factory=dict)
    announced: Optional[str] = None
    started: set = field(default_factory=set)
    finished: set = field(default_factory=set)
    written: list = field(default_factory=list)
    error: Optional[str] = None


REPORT_KEY = pytest.StashKey[ReportState]()
_ID_RE = re.compile(r"\[(?P<model>.+)-bs(?P<bs>\d+)\]$")


@pytest.hookimpl(trylast=True)
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dnnbench")
    group.addoption(
        "--dnn-report", dest="dnn_report", default=None, metavar="DIR",
        help="write the report into DIR at the end of the run: results.json, results.csv, report.md, "
             "report.html (self-contained) and the paper's figures as PNG.")
    parser.addini("dnn_report", help="default for --dnn-report", default="")


def _state(config: pytest.Config) -> Optional[DnnState]:
    return config.stash.get(STATE_KEY, None)


def pytest_configure(config: pytest.Config) -> None:
    rs = ReportState()
    value = config.getoption("dnn_report", default=None) or config.getini("dnn_report") or None
    if value:
        if not str(value).strip():
            raise pytest.UsageError("--dnn-report=: give a directory, e.g. --dnn-report=dnn-report")
        out = Path(str(value)).expanduser()
        if not out.is_absolute():
            out = Path(config.invocation_params.dir) / out
        if out.exists() and not out.is_dir():
            raise pytest.UsageError(f"--dnn-report={value}: {out} exists and is not a directory. "
                                    "Give a directory (it is created if missing)")
        if not hasattr(config, "workerinput") and importlib.util.find_spec("matplotlib") is None:
            raise pytest.UsageError(f"--dnn-report={value}: the report's figures need matplotlib, which is not "
                                    "installed. pip install matplotlib")
        rs.out = out
    config.stash[REPORT_KEY] = rs
    config.pluginmanager.register(_Hooks(config), "dnnbench-report")


# -- tests that left no record -----------------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    if call.when in ("setup", "call") and report.outcome != "passed":
        params = getattr(getattr(item, "callspec", None), "params", {}) or {}
        if "dnn_model" in params:
            from ..plugin import RECORDS_KEY

            if not item.stash.get(RECORDS_KEY, None):
                report.dnn_missing = _missing_entry(item, call, report, params)
    return report


def _missing_entry(item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport, params: dict) -> dict:
    model = str(params["dnn_model"])
    state = _state(item.config)
    paper_name = None
    if state is not None and model in state.registry:
        paper_name = state.registry.get(model).paper_name
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        reason = str(report.longrepr[2])
    elif call.excinfo is not None:
        reason = call.excinfo.exconly()
    else:
        reason = str(report.longrepr or "")
    reason = reason.strip()
    if reason.startswith("Skipped: "):
        reason = reason[len("Skipped: "):]
    bs = params.get("dnn_batch_size")
    return {"model": model, "paper_name": paper_name, "batch_size": int(bs) if bs is not None else None,
            "outcome": "skipped" if report.skipped else "failed", "when": call.when,
            "reason": reason[:2000], "test": item.nodeid}


# -- progress ------------------------------------------------------------------------------------

def pytest_collection_finish(session: pytest.Session) -> None:
    rs = session.config.stash.get(REPORT_KEY, None)
    if rs is None:
        return
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {}) or {}
        if "dnn_model" in params:
            rs.plan[item.nodeid] = (str(params["dnn_model"]), params.get("dnn_batch_size"))


class _Hooks:
    """Hooks that need the config (registered per config in :func:`pytest_configure`)."""

    def __init__(self, config: pytest.Config):
        self.config = config

    @property
    def rs(self) -> ReportState:
        return self.config.stash[REPORT_KEY]

    @property
    def state(self) -> Optional[DnnState]:
        return _state(self.config)

    # xdist: the controller does not collect; the workers tell it the ids.
    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list) -> None:
        if self.rs.plan:
            return
        for nodeid in ids:
            m = _ID_RE.search(nodeid)
            if m:
                self.rs.plan[nodeid] = (m.group("model"), int(m.group("bs")))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        state, rs = self.state, self.rs
        if state is None or state.is_worker:
            return
        entry = getattr(report, "dnn_missing", None)
        if entry:
            rs.missing[(entry["model"], entry["batch_size"])] = entry
        if report.when == "teardown" and report.nodeid in rs.plan and _xdist_controller(self.config):
            self._model_done(report.nodeid)

    def _model_done(self, nodeid: str) -> None:
        """Under pytest-xdist tests of several models run at once: say when a model is complete."""
        rs = self.rs
        rs.finished.add(nodeid)
        model, _ = rs.plan[nodeid]
        if any(m == model and n not in rs.finished for n, (m, _) in rs.plan.items()):
            return
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None or self.config.get_verbosity() < 0 or not self.state.benchmark_mode:
            return
        models = list(dict.fromkeys(m for m, _ in rs.plan.values()))
        done = sum(1 for m in models if all(n in rs.finished for n, (mm, _) in rs.plan.items() if mm == m))
        if getattr(getattr(tr, "_tw", None), "width_of_current_line", 0):
            tr.write("\n")
        tr.write_line(f"dnnbench: {model} done ({done} of {len(models)} models; "
                      f"{len(rs.plan) - len(rs.finished)} of {len(rs.plan)} tests left)")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        state, rs = self.state, self.rs
        if (state is None or state.is_worker or not state.benchmark_mode or nodeid not in rs.plan
                or _xdist_controller(self.config)):
            return
        rs.started.add(nodeid)
        model, _ = rs.plan[nodeid]
        if model == rs.announced:
            return
        rs.announced = model
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None or self.config.get_verbosity() < 0:
            return
        models = list(dict.fromkeys(m for m, _ in rs.plan.values()))
        sizes = [str(b) for n, (m, b) in rs.plan.items() if m == model]
        left = len(rs.plan) - len(rs.started) + 1
        tr.write_line(
            f"dnnbench: model {models.index(model) + 1}/{len(models)} {model}, batch sizes "
            f"{','.join(sizes)} ({left} of {len(rs.plan)} tests left)")

    # -- the files -------------------------------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        state, rs = self.state, self.rs
        if rs.out is None or state is None or state.is_worker:
            return
        if not state.records and not rs.missing:
            rs.error = "no benchmark ran: nothing to report"
            return
        try:
            from .build import write_report
            from .tables import Platform, platform_label

            state.finish_environment()
            env = dict(state.environment or {})
            records = list(state.records)
            platform = Platform(platform_label(env, records, "this run"), records, env,
                                list(rs.missing.values()), "this run", "results")
            rs.written = write_report([platform], rs.out, command=_command(self.config))
        except Exception as exc:  # a broken report must not hide the test results, but must show
            rs.error = f"{type(exc).__name__}: {exc}"
            if session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        state, rs = self.state, self.rs
        if state is None or state.is_worker:
            return
        if state.records and (state.benchmark_mode or rs.out is not None) and self.config.get_verbosity() > -2:
            from .build import memory_note
            from .terminal import format_paper_tables

            width = self.config.get_terminal_writer().fullwidth
            terminalreporter.write_sep("-", "dnnbench: the paper's tables for this run")
            for line in format_paper_tables(state.records, list(rs.missing.values()), width,
                                            memory_note(state.environment or {}, state.records)):
                terminalreporter.write_line(line)
        if rs.out is not None:
            if rs.error:
                terminalreporter.write_line(f"dnnbench: no report written to {rs.out}: {rs.error}", red=True)
            elif rs.written:
                terminalreporter.write_line(f"dnnbench: report written to {rs.out} ({len(rs.written)} files; "
                                            f"open {rs.out / 'report.html'})")


def _xdist_controller(config: pytest.Config) -> bool:
    return config.pluginmanager.has_plugin("dsession")


def _command(config: pytest.Config) -> str:
    import shlex

    return "pytest " + " ".join(shlex.quote(str(a)) for a in config.invocation_params.args)
