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
