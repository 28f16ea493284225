"""The end of a benchmark run as a user reads it: one summary in a fixed order, the files last;
and the line that says which models a project's own ``dnn_model`` tests got."""

from __future__ import annotations

import pytest
from helpers import FAST

pytest.importorskip("torch")

RUN = [*FAST, "--dnn-threads=1", "-p", "no:cacheprovider"]


def test_the_summary_comes_in_one_order_with_the_files_written_last(
    tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    result = tiny_project.runpytest(
        *RUN,
        "--dnn-models=tiny",
        "--dnn-batch-sizes=1",
        "--dnn-json=out.json",
        "--dnn-report=rep",
        "--dnn-save-baseline",
        "--dnn-max-memory=1MB",
        "--dnn-baseline-force",
    )
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    order = [
        "== dnnbench: cpu (",  # the results table
        "memory: memory of the deployed model",  # the table's notes
        "-- dnnbench: the paper's tables for this run --",
        "Table 3",
        "-- dnnbench: baselines and deployment constraints --",
        "deployment constraint violations: 1",
        "-- dnnbench: files written --",
        "results: ",
        "baseline saved",
        "report: ",
        "short test summary info",
    ]
    at = [out.find(marker) for marker in order]
    assert -1 not in at, [m for m, i in zip(order, at, strict=True) if i < 0]
    assert at == sorted(at), list(zip(order, at, strict=True))
    files = out[out.index("-- dnnbench: files written --") : out.index("short test summary info")]
    lines = [line for line in files.splitlines()[1:] if line.strip() and not line.startswith("=")]
    assert [line.split(":")[0].split(" ")[0] for line in lines] == ["results", "baseline", "report"], lines
    # pytest-benchmark's own tables are not between them
    assert "Name (time in" not in out[: out.index("short test summary info")]
    # the short summary says why in a few words
    result.stdout.fnmatch_lines(["FAILED *test_dnn?tiny-bs1? - memory * GB > 0.001 GB"])


def test_own_tests_that_use_dnn_model_without_dnn_models_are_told_which_models_they_got(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mine="""
        def test_mine(dnn_model, dnn_batch_size):
            pass
        """
    )
    result = pytester.runpytest("--collect-only", "--dnn-batch-sizes=1,8", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        [
            "dnnbench: dnn_model runs the default models (resnet18, mobilenet_v2, squeezenet1_1) at batch sizes "
            "1,8: no --dnn-models was given. Choose with --dnn-models=NAMES and --dnn-batch-sizes=N,M*"
        ]
    )


def test_no_such_line_for_projects_that_do_not_use_dnn_model(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest("--collect-only", "-p", "no:cacheprovider")
    assert "dnnbench:" not in result.stdout.str()
