"""The only module that uses other plugins' internals, where they offer no public way.

Each use names the versions it was written against; ``tests/e2e/test_compat.py`` pins the behaviour,
so that an upgrade that changes it fails a test instead of silently dropping a feature.

- pytest-benchmark (5.3.1): a benchmark made from samples taken elsewhere. The session object is
  reached publicly (it is registered as the plugin ``"pytest-benchmark"``); its ``disabled`` flag,
  its ``benchmarks`` list and the ``pytest_benchmark.stats.Metadata`` class are internal. Which
  tests are benchmarks (``--benchmark-only``, ``--benchmark-skip``): its
  ``pytest_collection_modifyitems`` looks for ``"benchmark"`` in ``item.fixturenames``, and its
  session's ``only`` and ``skip`` flags are internal. Its end-of-run tables: its
  ``pytest_terminal_summary`` calls the session's ``display(terminalreporter)``, which we replace on
  the instance; the ratio columns come from ``pytest_benchmark.table.compute_baseline_scale``, a
  module function that we replace while the tables are written.
- pytest-xdist (3.8): scheduling by model. ``LoadScopeScheduling`` is public, the ``_split_scope``
  method it calls to name a test's scope is not; we override it. We also override ``remove_node``
  and ``schedule`` (public methods) with its internals (``assigned_work``, ``workqueue``,
  ``registered_collections``, ``_pending_of``, ``_assign_work_unit``), so that a test that kills its
  worker fails once and the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import SimpleNamespace
from typing import TYPE_CHECKING, Protocol

import pytest

from .jsontypes import JsonMapping, JsonObject
from .nodeids import scope_of

if TYPE_CHECKING:
    from xdist.scheduler import LoadScopeScheduling

    from .record import Record

__all__ = ["add_to_benchmark_session", "benchmark_tables", "model_scheduler", "seen_as_benchmarks"]


class _BenchmarkSession(Protocol):
    """What is used of pytest-benchmark's ``BenchmarkSession``."""

    disabled: bool
    benchmarks: list[object]
    #: ``--benchmark-only`` and ``--benchmark-skip`` (``skip`` is False when both are given).
    only: bool
    skip: bool
    #: Writes its tables (and histograms), then checks ``--benchmark-compare-fail``; a method of its class.
    display: Callable[[pytest.TerminalReporter], None]


def _benchmark_session(config: pytest.Config) -> _BenchmarkSession | None:
    """pytest-benchmark's session object, or None (not installed, or ``-p no:benchmark``)."""
    bs: _BenchmarkSession | None = config.pluginmanager.get_plugin("pytest-benchmark")
    return bs


def add_to_benchmark_session(
    config: pytest.Config, node: pytest.Item, finished: Record, min_rounds: int, max_time: float
) -> None:
    """Put one record's samples into pytest-benchmark's session, as one of its benchmarks.

    ``extra_info`` gets the record (as plain JSON: pytest-benchmark writes it into its files) without its
    samples (they are the benchmark's own data); nothing pytest-benchmark keeps is shared with the session's
    record.
    """
    bs = _benchmark_session(config)
    if bs is None or getattr(bs, "disabled", True):
        return
    from pytest_benchmark.stats import Metadata

    record = finished.to_json()  # the boundary: pytest-benchmark's own JSON

    callspec = getattr(node, "callspec", None)
    extra = {k: v for k, v in record.items() if k != "latency_ms"}
    lat = dict(record["latency_ms"])
    extra["latency_ms"] = {k: v for k, v in lat.items() if k != "samples"}
    fixture = SimpleNamespace(
        name=node.name,
        fullname=node.nodeid,
        group=f"{record['model']}",
        param=callspec.id if callspec is not None else None,
        params=dict(callspec.params) if callspec is not None else None,
        extra_info=extra,
        cprofile_stats=None,
        has_error=False,
    )
    meta = Metadata(  # type: ignore[no-untyped-call]  # pytest-benchmark's classes are unannotated
        fixture,
        iterations=1,
        options={
            "timer": "cuda events" if str(record["device"]).startswith("cuda") else "perf_counter_ns",
            "min_rounds": min_rounds,
            "max_time": max_time,
            "warmup": lat["warmup"],
            "disable_gc": False,
        },
    )
    for ms in lat["samples"]:
        meta.stats.update(ms / 1000.0)  # type: ignore[no-untyped-call]  # (same)
    bs.benchmarks.append(meta)


@contextmanager
def seen_as_benchmarks(config: pytest.Config, items: Sequence[pytest.Item]) -> Iterator[None]:
    """While pytest-benchmark's ``pytest_collection_modifyitems`` runs, ``items`` are benchmark tests to it.

    pytest-benchmark (5.3.1) tells a benchmark test by ``"benchmark" in item.fixturenames``: under
    ``--benchmark-only`` it marks every other test skipped ("Skipping non-benchmark"), under
    ``--benchmark-skip`` the benchmark tests ("Skipping benchmark"). Our tests measure without its
    fixture, so for the time of the hook each of ``items`` gets its own copy of its fixture names
    with ``benchmark`` added (pytest's list is shared by the tests of one function); the names are
    put back after it, so pytest never sets that fixture up for them. Only under one of those two
    options: otherwise the hook would only count them for its warning that pytest-xdist disabled
    benchmarks, which is not true of ours (they measure under pytest-xdist).

    Call it around the ``yield`` of a ``wrapper=True`` implementation of that hook.
    """
    bs = _benchmark_session(config)
    if bs is None or not (getattr(bs, "only", False) or getattr(bs, "skip", False)):
        yield
        return
    given: list[tuple[pytest.Function, list[str]]] = []
    for item in items:
        if isinstance(item, pytest.Function) and "benchmark" not in item.fixturenames:
            given.append((item, item.fixturenames))
            item.fixturenames = [*item.fixturenames, "benchmark"]
    try:
        yield
    finally:
        for item, names in given:
            item.fixturenames = names


def benchmark_tables(config: pytest.Config, show: bool) -> None:
    """pytest-benchmark's end-of-run tables for this run: shown without ``inf`` (``show``), or hidden.

    Hidden, its display still runs, into a terminal that writes nothing: it still makes the
    ``--benchmark-histogram`` files and fails the run on a ``--benchmark-compare-fail`` regression
    (``--benchmark-json`` and ``--benchmark-save`` are written before, at session finish).
    Call it once, after pytest-benchmark's ``pytest_configure`` (e.g. at ``pytest_sessionstart``).
    """
    bs = _benchmark_session(config)
    if bs is None:
        return
    display = bs.display

    def shown(tr: pytest.TerminalReporter) -> None:
        with _finite_ratios():
            display(tr)

    def hidden(tr: pytest.TerminalReporter) -> None:
        display(_Discard())  # type: ignore[arg-type]  # every call it makes on a terminal reporter is ignored

    bs.display = shown if show else hidden


class _Discard:
    """A stand-in terminal reporter: every method (``write_line``, ``write``, ``rewrite``, ``section``,
    ``ensure_newline``) writes nothing."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return _nothing


def _nothing(*args: object, **kwargs: object) -> None:
    return None


@contextmanager
def _finite_ratios() -> Iterator[None]:
    """pytest-benchmark's ratio columns without ``(inf)``.

    In a group of several benchmarks each cell is followed by its ratio to the group's best value of
    that column; ``compute_baseline_scale`` writes ``(inf)`` when that best is 0 and the cell is not.
    StdDev is 0 for a benchmark of one round (pytest-benchmark's own convention) or of equal rounds,
    IQR as well, and any benchmark of a group (ours, or a project's own ``benchmark`` test put in a
    model's group, or a saved run it is compared with) can be such a one. The samples are left as they
    are (they are the measurement, also in ``--benchmark-json`` and saved runs): only the display is
    changed, and a ratio to a zero best is written ``(-)``, undefined, instead of ``(inf)``.
    """
    from pytest_benchmark import table

    stock = table.compute_baseline_scale

    def scale(baseline: float, value: float, width: int) -> str:
        if width and baseline == 0 and value != 0:
            return " (-)".ljust(width)
        text: str = stock(baseline, value, width)  # type: ignore[no-untyped-call]  # (unannotated)
        return text

    table.compute_baseline_scale = scale
    try:
        yield
    finally:
        table.compute_baseline_scale = stock


class XdistNode(Protocol):
    """What the session reads of a pytest-xdist worker controller (pytest-xdist ships no types)."""

    config: pytest.Config
    workerinput: JsonObject


@contextmanager
def paper_machine_info_quiet(compared_benchmark: JsonMapping | None) -> Iterator[None]:
    """The paper's runs (baselines/paper) differ from every machine by design: no warning for that.

    pytest-benchmark warns (a Python warning) when the compared run's ``machine_info`` differs
    from this machine's; under ``-W error`` or ``filterwarnings = error`` that warning would stop
    the run before any test. For the paper's files, whose machine is a 2018 Titan Xp or Jetson
    TX1, it says nothing new, so it is silenced for them alone (other files still warn).
    """
    info = (compared_benchmark or {}).get("machine_info") or {}
    if (info.get("dnnbench") or {}).get("source") != "paper":
        yield
        return
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Benchmark machine_info is different")
        yield


class XdistLog(Protocol):
    """pytest-xdist's ``Producer`` logger: an attribute gives a sub-logger of that name."""

    @property
    def modelgroupsched(self) -> object: ...


def model_scheduler(config: pytest.Config, log: XdistLog | None, names: Iterable[str]) -> LoadScopeScheduling:
    """pytest-xdist's ``loadscope`` scheduler where the scope of a benchmark test is its model.

    xdist's own ``loadgroup`` groups by the ``xdist_group`` mark through an ``@group`` suffix that
    its workers add to node ids; under pytest 9 that suffix no longer reaches the node id
    (pytest-xdist 3.8 sets an attribute pytest stopped reading), so tests are grouped by the model
    in their id (:func:`.nodeids.scope_of`). Imported at the controller of an xdist run only.
    """
    from xdist.scheduler import LoadScopeScheduling

    model_names = tuple(names)

    class ModelGroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid, model_names)

        def remove_node(self, node: object) -> str | None:
            """A worker ended: the test it was running fails once (xdist reports it), the rest of its unit runs.

            pytest-xdist's ``remove_node`` puts the whole unit back, the crashed test included, so a test
            that kills its worker is sent again and again until "maximum crashed workers reached".
            """
            workload = self.assigned_work.pop(node)
            if not self._pending_of(workload):
                return None
            crashitem: str | None = None
            for unit in workload.values():
                crashitem = next((nodeid for nodeid, done in unit.items() if not done), None)
                if crashitem is not None:
                    unit[crashitem] = True  # reported failed by xdist: never sent again
                    break
            left = {scope: unit for scope, unit in workload.items() if not all(unit.values())}
            self.workqueue.update(left)
            for other in list(self.assigned_work):
                if other in self.registered_collections:  # a replacement still collecting gets work later
                    self._feed(other)
            return crashitem

        def schedule(self) -> None:
            """Called again when a replacement worker has collected: give work to the workers that have
            collected (pytest-xdist's loop also takes replacements that have not, and fails with a KeyError
            when two workers crash close together)."""
            if self.collection is None:
                super().schedule()
                return
            for node in self.nodes:
                if node in self.registered_collections:
                    self._feed(node)

        def _feed(self, node: object) -> None:
            """Give ``node`` work units until it holds two tests or none are left; then, with none left, tell
            it to shut down. A worker runs a test only once it knows the next one (or is told to stop), so a
            worker holding one test while units wait in the queue would wait forever."""
            if node.shutting_down:  # type: ignore[attr-defined]  # a pytest-xdist WorkerController
                return
            while self.workqueue and self._pending_of(self.assigned_work[node]) < 2:
                self._assign_work_unit(node)
            if not self.workqueue:
                node.shutdown()  # type: ignore[attr-defined]  # (same)

    sched = ModelGroupScheduling(config, log)
    if log is not None:
        sched.log = log.modelgroupsched
    return sched
