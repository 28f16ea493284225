"""What a user types wrong, or a little off, gets a clear answer (issue 21: items 6 and 11).

Each test here failed on the code before the fix: an overflow deep in a run instead of a usage error,
an error that named the wrong option or no ini key at all, a TOML list read as one model name, an
unbalanced parenthesis in a marker error, a results file that called a run of two modes "eager", and
nine lines of "none fits" where one says it all.
"""

from __future__ import annotations

import pytest
from helpers import FAST, load_json

pytest.importorskip("torch")

RUN = [*FAST, "--dnn-threads=1", "--benchmark-disable", "-p", "no:cacheprovider"]


# -- item 6: durations have an upper bound at parse time ------------------------------------------------


@pytest.mark.parametrize(
    "option",
    ["--dnn-prepare-timeout=100000000000", "--dnn-max-time=100000000000", "--dnn-calm-wait=9999999999"],
)
def test_a_huge_duration_is_a_usage_error_naming_the_option(tiny_project: pytest.Pytester, option: str) -> None:
    result = tiny_project.runpytest(*RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    flag = option.split("=")[0]
    result.stderr.fnmatch_lines([f"*{flag}=*: longer than *. Give seconds such as 20*"])
    assert "OverflowError" not in result.stdout.str() + result.stderr.str()


def test_a_week_is_the_longest_duration() -> None:
    from pytest_dnnbench.settings import MAX_DURATION_S, parse_duration

    assert parse_duration("168h") == MAX_DURATION_S == 7 * 24 * 3600
    assert parse_duration("604800") == MAX_DURATION_S
    with pytest.raises(pytest.UsageError, match="longer than a week"):
        parse_duration("604801")
    with pytest.raises(pytest.UsageError, match=r"--dnn-max-time=1e11: not a duration"):
        parse_duration("1e11")


def test_the_longest_duration_runs_isolated_without_overflow(tiny_project: pytest.Pytester) -> None:
    """``--dnn-max-time`` at its bound reaches the isolated child's timers and the deadline of the preparation."""
    result = tiny_project.runpytest(
        *RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1", "--dnn-isolate=process", "--dnn-prepare-timeout=168h"
    )
    result.assert_outcomes(passed=1)


# -- item 11: the smaller ones ------------------------------------------------------------------------------


def test_an_ini_baseline_that_cannot_be_read_names_the_ini_key(tiny_project: pytest.Pytester) -> None:
    (tiny_project.path / "base").mkdir()
    tiny_project.makeini("[pytest]\ndnn_baseline = base\n")
    result = tiny_project.runpytest(*RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: the ini's dnn_baseline: cannot read baseline file *base*"])
    assert "--dnn-save-baseline" not in result.stderr.str()


@pytest.mark.parametrize(
    ("config", "where"),
    [
        ("[pytest]\ndnn_strict = maybe\n", "pytest.ini"),
        ('[tool.pytest.ini_options]\ndnn_tf32 = "maybe"\n', "pyproject.toml"),
    ],
)
def test_a_boolean_ini_key_set_to_garbage_names_the_key_and_the_file(
    tiny_project: pytest.Pytester, config: str, where: str
) -> None:
    (tiny_project.path / where).write_text(config)
    result = tiny_project.runpytest(*RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    key = config.split("\n")[1].split(" ")[0]
    result.stderr.fnmatch_lines(
        [f"ERROR: ini {key} in *{where}: invalid truth value 'maybe'. Use {key} = true or {key} = false*"]
    )


def test_toml_lists_give_the_models_batch_sizes_and_modes(tiny_project: pytest.Pytester) -> None:
    tiny_project.makepyprojecttoml(
        '[tool.pytest.ini_options]\ndnn_models = ["tiny", "tiny_wide"]\ndnn_batch_sizes = [1, 2]\n'
        'dnn_modes = ["eager"]\n'
    )
    result = tiny_project.runpytest(*RUN, "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    result.stdout.fnmatch_lines(
        ["*test_dnn?tiny-bs1?", "*test_dnn?tiny-bs2?", "*test_dnn?tiny_wide-bs1?", "*test_dnn?tiny_wide-bs2?"]
    )


def test_an_ini_list_may_give_one_item_per_line(tiny_project: pytest.Pytester) -> None:
    tiny_project.makeini("[pytest]\ndnn_models =\n    tiny\n    tiny_wide\ndnn_batch_sizes = 1,2\n")
    result = tiny_project.runpytest(*RUN, "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    result.stdout.fnmatch_lines(["*4 tests collected*"])


def test_a_bad_marker_value_is_quoted_with_balanced_parentheses(tiny_project: pytest.Pytester) -> None:
    tiny_project.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.dnn_constraints(max_memory=[1, 2])
        def test_limited(dnn_bench):
            pass
        """
    )
    result = tiny_project.runpytest(*RUN, "test_marked.py")
    text = result.stdout.str() + result.stderr.str()
    assert "dnn_constraints(max_memory=[1, 2]): " in text, text
    assert "dnn_constraints(max_memory=[1, 2]: " not in text


def test_the_environment_names_every_mode_of_the_run(tiny_project: pytest.Pytester) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    result = tiny_project.runpytest(
        *RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1", "--dnn-modes=eager,onnxruntime", "--dnn-json=r.json"
    )
    result.assert_outcomes(passed=2)
    env = load_json(tiny_project.path / "r.json")["environment"]
    assert env["mode"] == "eager,onnxruntime" and env["modes"] == ["eager", "onnxruntime"]


def test_table3_with_nothing_that_fits_is_one_line() -> None:
    from pytest_dnnbench.report import table3 as T3
    from pytest_dnnbench.report.terminal import render_table3

    record = {"model": "a", "batch_size": 2, "mode": "eager", "fps": 100.0, "memory_bytes": {"total": 10**9}}
    lines = render_table3(T3.table3([record]), 100)
    body = [line for line in lines[1:] if not line.startswith("[")]
    assert body == ["any of the 9 constraints (memory <= 0.7 / 1 / 1.4 GiB; >= 15 / 30 / 60 FPS): none fits[1]"]


def test_a_baseline_to_save_at_a_fifo_is_refused_and_left_alone(tiny_project: pytest.Pytester) -> None:
    """An atomic save would have replaced the FIFO (or a device) with a regular file."""
    import os
    import stat

    fifo = tiny_project.path / "b.json"
    os.mkfifo(fifo)
    result = tiny_project.runpytest(*RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1", f"--dnn-save-baseline={fifo}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dnn-save-baseline=*b.json: *b.json is a FIFO (named pipe), not a regular file*"])
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
