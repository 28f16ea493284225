"""pytest-benchmark's options on the plugin's tests, end to end through pytester.

The tests that call ``dnn_bench`` are benchmarks to pytest-benchmark: ``--benchmark-only`` runs
them, ``--benchmark-skip`` skips them, ``--benchmark-disable`` keeps them out of its session (our
own results are still written). In benchmark mode its end-of-run tables are printed only with
``--dnn-benchmark-tables``, and then without ``inf``; outside benchmark mode it prints them as usual.
"""

from __future__ import annotations

import json

import pytest
from helpers import FAST, load_json

from pytest_dnnbench.session import SUITE_PATH

pytest.importorskip("torch")

RUN = [*FAST, "--dnn-threads=1", "--dnn-baseline=none", "-p", "no:cacheprovider"]
#: In pytest-benchmark's table header alone (``Name (time in us)``).
TABLE_HEADER = "Name (time in"
PLAIN_TEST = "def test_plain():\n    pass\n"
#: A project's own pytest-benchmark test of one round (StdDev and IQR 0) in the model's group.
ONE_ROUND = """
import pytest


def test_tiny(dnn_bench, dnn_model, dnn_batch_size):
    dnn_bench(dnn_model)


@pytest.mark.benchmark(group="tiny")
def test_one_round(benchmark):
    benchmark.pedantic(sum, args=(range(100),), rounds=1, iterations=1)
"""


def table_lines(out: str) -> list[str]:
    """pytest-benchmark's tables: from the first group's title line to the end of its legend."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if TABLE_HEADER in line) - 1
    end = next(i for i, line in enumerate(lines) if "OPS: Operations Per Second" in line)
    assert " benchmark" in lines[start], lines[start]
    return lines[start : end + 1]


def test_benchmark_only_runs_the_dnn_tests_and_skips_the_others(tiny_project: pytest.Pytester) -> None:
    tiny_project.makepyfile(test_plain=PLAIN_TEST)
    result = tiny_project.runpytest(
        *RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1,2", str(SUITE_PATH), "test_plain.py", "--benchmark-only", "-rs"
    )
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_plain.py*Skipping non-benchmark (--benchmark-only active)*"])
    out = result.stdout.str()
    assert "test_dnn" not in "".join(line for line in out.splitlines() if line.startswith("SKIPPED")), out
    # pytest-benchmark's fixture is never set up for them (it would warn that it was not used).
    assert "Benchmark fixture was not used" not in out


def test_benchmark_skip_skips_the_dnn_tests_before_any_model_is_built(
    tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tiny_project.path / "built"
    monkeypatch.setenv("DNN_BUILD_MARKER", str(marker))
    tiny_project.makepyfile(test_plain=PLAIN_TEST)
    ours = tiny_project.path / "ours.json"
    result = tiny_project.runpytest(
        *RUN,
        "--dnn-models=tiny",
        "--dnn-batch-sizes=1,2",
        str(SUITE_PATH),
        "test_plain.py",
        "--benchmark-skip",
        f"--dnn-json={ours}",
        "-rs",
    )
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED [[]2[]] *bench_models.py*Skipping benchmark (--benchmark-skip active)*"])
    assert not marker.exists(), "a model was built for a skipped test"
    assert load_json(ours)["records"] == []


def test_benchmark_disable_measures_without_pytest_benchmark(tiny_project: pytest.Pytester) -> None:
    ours = tiny_project.path / "ours.json"
    bench_json = tiny_project.path / "bench.json"
    result = tiny_project.runpytest(
        *RUN,
        "--dnn-models=tiny",
        "--dnn-batch-sizes=1,2",
        "--benchmark-disable",
        "--dnn-benchmark-tables",
        f"--benchmark-json={bench_json}",
        f"--dnn-json={ours}",
    )
    result.assert_outcomes(passed=2)
    assert [r["batch_size"] for r in load_json(ours)["records"]] == [1, 2]
    out = result.stdout.str()
    assert "dnnbench: cpu" in out  # our end-of-run table
    assert TABLE_HEADER not in out  # nothing in pytest-benchmark's session
    assert not bench_json.exists() or load_json(bench_json)["benchmarks"] == []


@pytest.mark.parametrize("tables", [False, True], ids=["default", "dnn-benchmark-tables"])
def test_pytest_benchmark_tables_only_when_asked_and_its_json_either_way(
    tiny_project: pytest.Pytester, tables: bool
) -> None:
    bench_json = tiny_project.path / "bench.json"
    result = tiny_project.runpytest(
        *RUN,
        "--dnn-models=tiny",
        "--dnn-batch-sizes=1,2",
        f"--benchmark-json={bench_json}",
        *(["--dnn-benchmark-tables"] if tables else []),
    )
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    names = [b["name"] for b in load_json(bench_json)["benchmarks"]]
    assert sorted(names) == ["test_dnn[tiny-bs1]", "test_dnn[tiny-bs2]"]
    if not tables:
        assert TABLE_HEADER not in out and "Legend:" not in out, out
        return
    block = table_lines(out)
    assert "benchmark 'tiny': 2 tests" in block[0]
    assert sum("test_dnn[tiny-bs" in line for line in block) == 2
    assert not [line for line in block if "inf" in line], "\n".join(block)


def test_ini_twin_shows_the_tables(tiny_project: pytest.Pytester) -> None:
    tiny_project.makeini("[pytest]\ndnn_benchmark_tables = true\n")
    result = tiny_project.runpytest(*RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1")
    result.assert_outcomes(passed=1)
    assert TABLE_HEADER in result.stdout.str()


def test_a_ratio_to_a_zero_best_is_not_inf(tiny_project: pytest.Pytester) -> None:
    """A one-round benchmark in a model's group has StdDev and IQR 0: the best of those columns.
    pytest-benchmark writes the other rows' ratios to it as ``(inf)``; here they read ``(-)``."""
    tiny_project.makepyfile(test_mixed=ONE_ROUND)
    bench_json = tiny_project.path / "bench.json"
    result = tiny_project.runpytest(
        *RUN,
        "--dnn-models=tiny",
        "--dnn-batch-sizes=1,2",
        "test_mixed.py",
        "--dnn-benchmark-tables",
        f"--benchmark-json={bench_json}",
    )
    result.assert_outcomes(passed=3)
    stats = {b["name"]: b["stats"] for b in load_json(bench_json)["benchmarks"]}
    assert stats["test_one_round"]["stddev"] == 0 and stats["test_one_round"]["iqr"] == 0
    assert stats["test_tiny[tiny-bs1]"]["stddev"] > 0  # the data is left as measured
    block = table_lines(result.stdout.str())
    assert "benchmark 'tiny': 3 tests" in block[0]
    assert not [line for line in block if "inf" in line], "\n".join(block)
    rows = [line for line in block if line.startswith("test_tiny[")]
    assert len(rows) == 2 and all("(-)" in row for row in rows), "\n".join(block)


def test_hidden_tables_still_make_histograms_and_a_comparison_shows_its_table_and_fails(
    tiny_project: pytest.Pytester,
) -> None:
    """Hidden, pytest-benchmark's display still runs (into nothing): histograms are written. With
    ``--benchmark-compare`` its table is the comparison asked for: shown, and
    ``--benchmark-compare-fail`` still fails the run."""
    pytest.importorskip("pygal")
    common = [*RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1", "--benchmark-storage=storage"]
    hist = tiny_project.path / "hist"
    result = tiny_project.runpytest(*common, "--benchmark-save=first", f"--benchmark-histogram={hist}")
    result.assert_outcomes(passed=1)
    assert TABLE_HEADER not in result.stdout.str()
    assert list(tiny_project.path.glob("hist*.svg")), "no histogram written"
    saved = next((tiny_project.path / "storage").rglob("0001_first.json"))
    doc = json.loads(saved.read_text())
    for bench in doc["benchmarks"]:  # the saved run a thousand times faster
        for key in ("min", "max", "mean", "median", "stddev", "iqr", "q1", "q3", "ld15iqr", "hd15iqr", "total"):
            bench["stats"][key] /= 1000
    saved.write_text(json.dumps(doc))
    result = tiny_project.runpytest_subprocess(*common, "--benchmark-compare=0001", "--benchmark-compare-fail=mean:10%")
    out = result.stdout.str() + result.stderr.str()
    assert TABLE_HEADER in out and "inf" not in "\n".join(table_lines(result.stdout.str()))
    assert "Performance has regressed" in out, out
    assert result.ret != 0


def test_outside_benchmark_mode_pytest_benchmark_prints_its_tables(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_own="""
        def test_sum(benchmark):
            benchmark.pedantic(sum, args=(range(100),), rounds=3, iterations=1)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    block = table_lines(result.stdout.str())
    assert any(line.startswith("test_sum") for line in block)
