"""Pins the internals of other plugins that ``compat.py`` relies on (see its docstring for versions).

If an upgrade of pytest-benchmark or pytest-xdist changes one of them, these tests fail instead of
a feature silently going away.
"""

from __future__ import annotations

import inspect
import json
from types import SimpleNamespace

import pytest
from helpers import FAST, TINY_CONFTEST, TINY_MODULE

from pytest_dnnbench import compat


def test_pytest_benchmark_metadata_takes_a_fixture_iterations_and_options() -> None:
    from pytest_benchmark.stats import Metadata

    params = list(inspect.signature(Metadata).parameters)
    assert params[:3] == ["fixture", "iterations", "options"]
    fixture = SimpleNamespace(
        name="t",
        fullname="f::t",
        group="g",
        param=None,
        params=None,
        extra_info={"a": 1},
        cprofile_stats=None,
        has_error=False,
    )
    meta = Metadata(
        fixture,
        iterations=1,
        options={"timer": "x", "min_rounds": 1, "max_time": 1.0, "warmup": 0, "disable_gc": False},
    )
    for s in (0.001, 0.002, 0.003):
        meta.stats.update(s)
    assert meta.stats.median == 0.002 and meta.extra_info == {"a": 1}


def test_pytest_benchmark_session_is_a_named_plugin_with_its_benchmarks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(tinymodels=TINY_MODULE)
    pytester.makeconftest(TINY_CONFTEST)
    pytester.syspathinsert()
    out = pytester.path / "bench.json"
    result = pytester.runpytest(*FAST, "--dnn-models=tiny", "--dnn-batch-sizes=1", f"--benchmark-json={out}")
    result.assert_outcomes(passed=1)
    bench = json.loads(out.read_text())["benchmarks"]
    assert [b["name"] for b in bench] == ["test_dnn[tiny-bs1]"]
    assert bench[0]["group"] == "tiny" and bench[0]["extra_info"]["model"] == "tiny"
    assert "samples" not in bench[0]["extra_info"]["latency_ms"]
    assert bench[0]["stats"]["rounds"] == bench[0]["extra_info"]["latency_ms"]["n"]


def test_xdist_loadscope_calls_split_scope_to_name_a_scope() -> None:
    from xdist.scheduler import LoadScopeScheduling

    for name in (
        "_split_scope",
        "_pending_of",
        "_assign_work_unit",
        "_reschedule",
        "remove_node",
        "schedule",
        "add_node_collection",
    ):
        assert name in vars(LoadScopeScheduling), name  # what ModelGroupScheduling overrides or calls
    config = SimpleNamespace(
        option=SimpleNamespace(maxschedchunk=None, numprocesses=2),
        getvalue=lambda name: ["2*popen"] if name == "tx" else None,
    )
    sched = compat.model_scheduler(config, None, ["tiny", "tiny_wide"])  # type: ignore[arg-type]
    assert isinstance(sched, LoadScopeScheduling)
    suite = "pytest_dnnbench/suite/bench_models.py::test_dnn"
    assert sched._split_scope(f"{suite}[tiny-bs1]") == sched._split_scope(f"{suite}[tiny-bs8]") == "dnn-model:tiny"
    assert sched._split_scope(f"{suite}[tiny_wide-bs1]") == "dnn-model:tiny_wide"


# -- pytest-benchmark: which tests are benchmarks, and its tables ----------------------------------


def test_pytest_benchmark_tells_a_benchmark_test_by_its_benchmark_fixture_name() -> None:
    """What :func:`compat.seen_as_benchmarks` relies on: the hook reads the session's ``only`` and
    ``skip`` and looks for ``"benchmark"`` in ``item.fixturenames``."""
    from pytest_benchmark import plugin

    def run(only: bool, skip: bool) -> tuple[list[pytest.MarkDecorator], list[pytest.MarkDecorator]]:
        bench_marks: list[pytest.MarkDecorator] = []
        other_marks: list[pytest.MarkDecorator] = []
        bs = SimpleNamespace(only=only, skip=skip, note_xdist_benchmark=lambda: None)
        items = [
            SimpleNamespace(fixturenames=["dnn_bench", "benchmark"], add_marker=bench_marks.append),
            SimpleNamespace(fixturenames=["dnn_bench"], add_marker=other_marks.append),
        ]
        plugin.pytest_collection_modifyitems(SimpleNamespace(_benchmarksession=bs), items)
        return bench_marks, other_marks

    bench, other = run(only=True, skip=False)
    assert bench == [] and [m.kwargs["reason"] for m in other] == ["Skipping non-benchmark (--benchmark-only active)."]
    bench, other = run(only=False, skip=True)
    assert [m.kwargs["reason"] for m in bench] == ["Skipping benchmark (--benchmark-skip active)."] and other == []
    assert run(only=False, skip=False) == ([], [])


def test_seen_as_benchmarks_adds_the_name_for_the_hook_alone(pytester: pytest.Pytester) -> None:
    items = pytester.getitems(
        """
        import pytest

        @pytest.mark.parametrize("n", [1, 2])
        def test_a(n):
            pass
        """
    )
    shared = items[0].fixturenames  # type: ignore[attr-defined]  # pytest.Function
    assert items[1].fixturenames is shared and "benchmark" not in shared  # type: ignore[attr-defined]
    for flags in ({"only": True, "skip": False}, {"only": False, "skip": True}):
        bs = SimpleNamespace(**flags)
        config = SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda name, bs=bs: bs))
        with compat.seen_as_benchmarks(config, items):  # type: ignore[arg-type]
            assert all("benchmark" in item.fixturenames for item in items)  # type: ignore[attr-defined]
            assert "benchmark" not in shared
        assert all(item.fixturenames is shared for item in items)  # type: ignore[attr-defined]
    idle = SimpleNamespace(
        pluginmanager=SimpleNamespace(get_plugin=lambda name: SimpleNamespace(only=False, skip=False))
    )
    with compat.seen_as_benchmarks(idle, items):  # type: ignore[arg-type]
        assert "benchmark" not in items[0].fixturenames  # type: ignore[attr-defined]


def test_pytest_benchmark_session_flags_and_its_summary_calls_display(pytester: pytest.Pytester) -> None:
    """The session's ``only``/``skip`` flags, and its ``pytest_terminal_summary`` writing the tables
    through the session's ``display`` (what :func:`compat.benchmark_tables` replaces)."""
    from pytest_benchmark import plugin

    config = pytester.parseconfigure("--benchmark-only")
    bs = config.pluginmanager.get_plugin("pytest-benchmark")
    assert bs is config._benchmarksession  # type: ignore[attr-defined]
    assert bs.only is True and bs.skip is False
    assert pytester.parseconfigure("--benchmark-skip").pluginmanager.get_plugin("pytest-benchmark").skip is True
    seen: list[object] = []
    bs.display = seen.append
    tr = SimpleNamespace(config=config)
    plugin.pytest_terminal_summary(tr)
    assert seen == [tr]


class _Terminal:
    """Collects what is written to it, as a terminal reporter would show it."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str, **markup: object) -> None:
        self.text += text

    def write_line(self, line: str, **markup: object) -> None:
        self.text += line + "\n"

    def ensure_newline(self) -> None:
        pass

    def rewrite(self, line: str, **markup: object) -> None:
        pass

    def section(self, title: str, sep: str = "=", **markup: object) -> None:
        self.text += title + "\n"


def _session_with_a_one_round_benchmark(pytester: pytest.Pytester, *args: str) -> object:
    """pytest-benchmark's session holding two benchmarks of one group: one of a single round (StdDev 0)."""
    from pytest_benchmark.stats import Metadata

    config = pytester.parseconfigure(*args)
    bs = config.pluginmanager.get_plugin("pytest-benchmark")
    for name, samples in (("one", [0.002]), ("three", [0.001, 0.002, 0.004])):
        fixture = SimpleNamespace(
            name=name,
            fullname=f"f::{name}",
            group="g",
            param=None,
            params=None,
            extra_info={},
            cprofile_stats=None,
            has_error=False,
        )
        meta = Metadata(fixture, iterations=1, options={})
        for s in samples:
            meta.stats.update(s)
        bs.benchmarks.append(meta)
    bs.finish()
    return bs


def test_pytest_benchmark_writes_inf_for_a_ratio_to_a_zero_best(pytester: pytest.Pytester) -> None:
    """Its stock tables: ``(inf)`` where a column's best is 0 (``compute_baseline_scale``, looked up in
    its module by ``TableResults.display``). If an upgrade stops this, ``_finite_ratios`` can go."""
    from pytest_benchmark import table

    assert table.compute_baseline_scale(0, 0.5, 10).strip() == "(inf)"
    assert table.compute_baseline_scale(0, 0, 10).strip() == "(1.0)"
    assert "compute_baseline_scale" in table.TableResults.display.__code__.co_names
    bs = _session_with_a_one_round_benchmark(pytester)
    tr = _Terminal()
    bs.display(tr)  # type: ignore[attr-defined]
    assert "Name (time in" in tr.text and "(inf)" in tr.text


def test_benchmark_tables_shown_without_inf_or_hidden(pytester: pytest.Pytester) -> None:
    from pytest_benchmark import table

    stock = table.compute_baseline_scale
    bs = _session_with_a_one_round_benchmark(pytester)
    compat.benchmark_tables(bs.config, show=True)  # type: ignore[attr-defined]
    tr = _Terminal()
    bs.display(tr)  # type: ignore[attr-defined]
    assert table.compute_baseline_scale is stock  # put back after the tables
    rows = [line for line in tr.text.splitlines() if line.startswith(("one", "three"))]
    assert len(rows) == 2 and "inf" not in tr.text, tr.text
    assert "(-)" in next(row for row in rows if row.startswith("three"))  # StdDev and IQR against 0

    bs = _session_with_a_one_round_benchmark(pytester)
    compat.benchmark_tables(bs.config, show=False)  # type: ignore[attr-defined]
    tr = _Terminal()
    bs.display(tr)  # type: ignore[attr-defined]
    assert tr.text == ""
