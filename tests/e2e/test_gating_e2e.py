"""Baselines, regression gating and deployment constraints, end to end through pytester.

Timing figures are injected (a conftest hook rewrites each record's latency before the
gate sees it), never raced against the clock, except where only a direction matters
that noise cannot flip (a real run is never ten times faster than itself).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import FAST, TINY_CONFTEST, load_json

from pytest_dnnbench.baseline_store import load_baseline, platform_key

pytest.importorskip("torch")

#: Timings here are faked in this process; fresh processes (--dnn-confirm, tests/e2e/test_confirm.py) would time the
#: real model, so the verdicts below are the first process's.
RUN = [
    *FAST,
    "--dnn-threads=1",
    "--dnn-max-time=0.1",
    "--benchmark-disable",
    "-p",
    "no:cacheprovider",
    "--dnn-confirm=0",
    # The fakes below inject the model's timings as measured; the real reference workload would divide them by
    # the machine's speed of the moment (tests/e2e/test_speed_reference.py tests that path).
    "--dnn-speed-reference=off",
]

#: Fakes measurements from fake.json (next to the conftest): latency, total memory, MACs, Top-1. The
#: record is final once measured (pytest_dnnbench_record cannot change it), so the fakes sit where the
#: figures are made: the measurement, the complexity count and the accuracy evaluation.
FAKE_HOOK = """
import dataclasses
import importlib
import json
import pathlib

import pytest


@pytest.fixture(autouse=True)
def _fake_measurements(monkeypatch):
    path = pathlib.Path(__file__).parent / "fake.json"
    if not path.exists():
        return
    fake = json.loads(path.read_text())
    # The modules the session will import (in-process pytester runs can leave stale package attributes).
    bench = importlib.import_module("pytest_dnnbench.measure.bench")
    flops = importlib.import_module("pytest_dnnbench.measure.flops")
    evaluate = importlib.import_module("pytest_dnnbench.accuracy.evaluate")
    summarize = importlib.import_module("pytest_dnnbench.measure.stats").summarize

    real_measure, real_complexity = bench.measure, flops.measure_complexity

    def measure(model, batch_size, *args, **kwargs):
        m = real_measure(model, batch_size, *args, **kwargs)
        if "ms" in fake:
            call = fake["ms"] * batch_size
            samples = tuple(call * (1 + 0.002 * ((i % 5) - 2)) for i in range(25))
            m = dataclasses.replace(m, timing=dataclasses.replace(m.timing, samples_ms=samples,
                                                                  stats=summarize(samples)))
        # Injected timings are judged as measured on a quiet machine (or as fake.json says).
        m = dataclasses.replace(m, load=fake.get("load", {"busy": False, "reasons": []}))
        return m

    runner = importlib.import_module("pytest_dnnbench.runner")
    real_deployed = runner.Runner._deployed_memory

    def deployed_memory(self, record, *args):
        record = real_deployed(self, record, *args)
        if "total" in fake:
            record = dataclasses.replace(record, memory={**record.memory, "total": fake["total"]})
        return record

    def measure_complexity(*args, **kwargs):
        c = real_complexity(*args, **kwargs)
        return dataclasses.replace(c, macs=c.macs + fake["macs_delta"]) if "macs_delta" in fake else c

    def for_record(self, *args, **kwargs):
        if "top1" in fake:
            return {"top1": fake["top1"], "top5": None, "status": "measured", "source": "fake", "n_images": 100}
        return real_for_record(self, *args, **kwargs)

    real_for_record = evaluate.AccuracyRun.for_record
    monkeypatch.setattr(bench, "measure", measure)
    monkeypatch.setattr(flops, "measure_complexity", measure_complexity)
    monkeypatch.setattr(runner.Runner, "_deployed_memory", deployed_memory)
    monkeypatch.setattr(evaluate.AccuracyRun, "for_record", for_record)
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    from helpers import TINY_MODULE

    pytester.makepyfile(tinymodels=TINY_MODULE)
    pytester.makeconftest(TINY_CONFTEST + FAKE_HOOK)
    pytester.syspathinsert()
    return pytester


def fake(p: pytest.Pytester, **values) -> None:
    (p.path / "fake.json").write_text(json.dumps(values))


def run(p: pytest.Pytester, *args: str, models: str = "tiny", batches: str = "1,2") -> pytest.RunResult:
    return p.runpytest(*RUN, f"--dnn-models={models}", f"--dnn-batch-sizes={batches}", *args)


def only_file(p: pytest.Pytester) -> Path:
    files = sorted((p.path / "baselines").glob("*.json"))
    assert len(files) == 1, files
    return files[0]


def repeat_rounds(path: Path, times: int) -> None:
    """Claim that a saved baseline's rounds were recorded ``times`` times each (as repeated saves would)."""
    doc = json.loads(path.read_text())
    for e in doc["entries"]:
        e["rounds"] = e["rounds"] * times
    path.write_text(json.dumps(doc))


def scale_latency(path: Path, factor: float) -> None:
    """Claim other timings in a saved baseline (every round's median and quantiles, and its latency in units of
    the reference workload: the model, not the machine, was that much faster)."""
    doc = json.loads(path.read_text())
    for e in doc["entries"]:
        for r in e["rounds"]:
            r["median_ms"] *= factor
            if "reference" in r:
                r["reference"]["relative"] *= factor
            r["ci_median_ms"] = [v * factor for v in r["ci_median_ms"]]
            r["quantiles_ms"] = [v * factor for v in r["quantiles_ms"]]
    path.write_text(json.dumps(doc))


def summary(result: pytest.RunResult) -> str:
    out = result.stdout.str()
    start = out.find("dnnbench: baselines and deployment constraints")
    assert start >= 0, out
    return out[start:]


# -- saving and the platform file ---------------------------------------------------------------


def test_save_writes_the_platform_file_and_later_runs_compare_with_it(project: pytest.Pytester) -> None:
    fake(project, ms=2.0)
    out = project.path / "r.json"
    result = run(project, "--dnn-save-baseline", f"--dnn-json={out}")
    result.assert_outcomes(passed=2)
    rec = load_json(out)["records"][0]
    key = platform_key(rec["device"], rec["device_name"], rec["threads"], rec["precision"], rec["mode"])
    path = only_file(project)
    assert path.name == f"{key}.json" and key.startswith("cpu-") and "-1t-fp32-eager" in key
    assert f"baseline saved: baselines/{key}.json (2 entries updated, 0 kept; rounds per updated entry: 1" in summary(
        result
    )
    b = load_baseline(path)
    assert b.platform["device_name"] == rec["device_name"] and b.platform["threads"] == 1
    assert b.platform["environment"]["torch"]
    e = b.entry("tiny", 2)
    assert e["latency_ms"]["median"] == pytest.approx(4.0) and e["per_image_ms"] == pytest.approx(2.0)
    assert e["macs"] == rec["macs"] and e["params"] == rec["params"]
    assert e["memory_bytes"]["total"] > 0 and len(e["rounds"]) == 1

    result = run(project, "--dnn-save-baseline")
    result.assert_outcomes(passed=2)
    text = summary(result)
    assert f"baseline: baselines/{key}.json: 2 of 2 result(s) compared" in text
    assert "rounds per updated entry: 2 of at most 10" in text
    result = run(project, f"--dnn-json={out}")
    result.assert_outcomes(passed=2)
    checks = load_json(out)["records"][0]["checks"]
    assert {c["metric"] for c in checks} == {"latency", "memory", "macs", "params"}
    assert all(c["kind"] == "baseline" and c["passed"] for c in checks)
    assert load_json(out)["records"][0]["baseline"]["status"] == "compared"


def test_saving_twice_with_different_models_keeps_both(project: pytest.Pytester) -> None:
    fake(project, ms=2.0)
    run(project, "--dnn-save-baseline", models="tiny", batches="1").assert_outcomes(passed=1)
    result = run(project, "--dnn-save-baseline", models="tiny_wide", batches="1,2")
    result.assert_outcomes(passed=2)
    assert "(2 entries updated, 1 kept;" in summary(result)
    assert sorted(load_baseline(only_file(project)).entries) == [("tiny", 1), ("tiny_wide", 1), ("tiny_wide", 2)]


def test_explicit_save_path_is_also_what_is_compared(project: pytest.Pytester) -> None:
    fake(project, ms=2.0)
    run(project, "--dnn-save-baseline=ci/base.json", batches="1").assert_outcomes(passed=1)
    assert (project.path / "ci" / "base.json").exists() and not (project.path / "baselines").exists()
    fake(project, ms=20.0)
    result = run(project, "--dnn-save-baseline=ci/base.json", batches="1")
    result.assert_outcomes(failed=1)
    assert "baseline regression (against ci/base.json)" in result.stdout.str()


# -- no baseline ---------------------------------------------------------------------------------


def test_no_baseline_is_said_plainly_and_required_fails(project: pytest.Pytester) -> None:
    result = run(project, batches="1")
    result.assert_outcomes(passed=1)
    text = summary(result)
    assert re.search(r"no baseline applies: no baseline file baselines/cpu-\S+-1t-fp32-eager\.json", text), text
    assert "--dnn-save-baseline, five times or more" in text

    result = run(project, "--dnn-require-baseline", batches="1,2")
    result.assert_outcomes(failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*no baseline applies to tiny at batch 1: no baseline file baselines/cpu-*(--dnn-require-baseline)*"]
    )


def test_baseline_none_turns_checks_off(project: pytest.Pytester) -> None:
    fake(project, ms=2.0)
    run(project, "--dnn-save-baseline", batches="1").assert_outcomes(passed=1)
    fake(project, ms=50.0)
    result = run(project, "--dnn-baseline=none", batches="1")
    result.assert_outcomes(passed=1)
    assert "baseline checks are off (--dnn-baseline=none)" in summary(result)


# -- each check's failure --------------------------------------------------------------------------


def test_baseline_ten_times_faster_than_reality_fails_latency(project: pytest.Pytester) -> None:
    fake(project, ms=2.0)
    run(project, "--dnn-save-baseline", batches="1").assert_outcomes(passed=1)
    path = only_file(project)
    scale_latency(path, 0.1)
    before = path.read_bytes()
    result = run(project, "--dnn-save-baseline", batches="1")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert re.search(
        r"dnnbench: tiny at batch 1 failed 1 check\(s\)\n"
        r"baseline regression \(against baselines/cpu-\S+\.json\):\n"
        r"  - latency of tiny at batch 1: median 2 ms per batch, baseline 0.2 ms "
        r"\(median of 1 round\(s\)\), limit 0.22 ms \(\+10 %\): 10.00x the baseline, over the hard "
        r"ceiling of 2x \(--dnn-max-slowdown\), whatever the baseline's spread; resolves \+\d+ %; "
        r"the baseline is too noisy: it cannot resolve \+20 % \(at best \+\d+ %\): re-record it on a quiet "
        r"machine; t = \+[\d.]+ vs critical 6.96",
        out,
    ), out
    # A regressed run never overwrites the baseline.
    assert path.read_bytes() == before
    assert "baseline not saved: 1 regression(s) in this run" in summary(result)


def test_forced_save_after_a_regression(project: pytest.Pytester) -> None:
    fake(project, ms=1.0)
    run(project, "--dnn-save-baseline", batches="1").assert_outcomes(passed=1)
    fake(project, ms=10.0)
    result = run(project, "--dnn-save-baseline", "--dnn-baseline-force", batches="1")
    result.assert_outcomes(failed=1)
    assert "forced despite regressions" in summary(result)
    rounds = load_baseline(only_file(project)).entry("tiny", 1)["rounds"]
    assert [r["median_ms"] for r in rounds] == pytest.approx([1.0, 10.0])


def test_baseline_ten_times_slower_passes_with_a_stale_note_not_a_warning(project: pytest.Pytester) -> None:
    fake(project, ms=3.0)
    run(project, "--dnn-save-baseline", batches="1").assert_outcomes(passed=1)
    scale_latency(only_file(project), 10.0)
    project.makeini("[pytest]\nfilterwarnings =\n    error\n")
    out = project.path / "r.json"
    result = run(project, "-W", "error", f"--dnn-json={out}", batches="1")
    result.assert_outcomes(passed=1)
    text = summary(result)
    assert re.search(
        r"stale baseline: tiny at batch 1 ran 10\.00x faster than baselines/cpu-\S+\.json "
        r"\(3 ms against 30 ms\): refresh it with --dnn-save-baseline",
        text,
    ), text
    assert "warnings summary" not in result.stdout.str()
    (lat,) = [c for c in load_json(out)["records"][0]["checks"] if c["metric"] == "latency"]
    assert lat["passed"] and lat["stale"] and lat["ratio"] == pytest.approx(0.1)
    assert load_json(out)["records"][0]["baseline"]["stale"] is True


def test_changed_macs_fail(project: pytest.Pytester) -> None:
    run(project, "--dnn-save-baseline", batches="1").assert_outcomes(passed=1)
    fake(project, macs_delta=1)
    result = run(project, batches="1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*baseline regression (against baselines/cpu-*",
            "*- MACs of tiny at batch 1: * against baseline * (limit: no change), changed by +1",
        ]
    )


def test_memory_regression_fails_with_both_figures(project: pytest.Pytester) -> None:
    fake(project, ms=2.0, total=500 * 2**20)
    run(project, "--dnn-save-baseline", batches="1").assert_outcomes(passed=1)
    fake(project, ms=2.0, total=600 * 2**20)
    result = run(project, batches="1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- memory of tiny at batch 1: total 600.0 MiB (629,145,600 bytes), baseline "
            "500.0 MiB, limit 550.0 MiB (+10 %): 1.20x the baseline"
        ]
    )
    run(project, "--dnn-memory-tolerance=25%", batches="1").assert_outcomes(passed=1)


def test_top1_drop_fails_once_measured(project: pytest.Pytester) -> None:
    fake(project, ms=2.0, top1=70.0)
    run(project, "--dnn-save-baseline", batches="1").assert_outcomes(passed=1)
    fake(project, ms=2.0, top1=69.0)
    result = run(project, batches="1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*- Top-1 of tiny at batch 1: 69.00 % against baseline 70.00 %, limit 69.50 % (-0.5 points)"]
    )
    run(project, "--dnn-top1-tolerance=1.5", batches="1").assert_outcomes(passed=1)


def test_latency_regression_and_the_tolerance_marker(project: pytest.Pytester) -> None:
    fake(project, ms=2.0)
    run(project, "--dnn-save-baseline", batches="1").assert_outcomes(passed=1)
    path = only_file(project)
    doc = json.loads(path.read_text())
    doc["entries"][0]["rounds"] *= 5  # five identical rounds, as five saving runs would give with fake timings
    path.write_text(json.dumps(doc))
    project.makepyfile(
        test_mine="""
        import pytest

        def test_default(dnn_bench, dnn_model):
            dnn_bench(dnn_model)

        @pytest.mark.dnn_tolerance(latency="60%")
        def test_loose(dnn_bench, dnn_model):
            dnn_bench(dnn_model)
        """
    )
    fake(project, ms=3.0)  # 50 % slower than five identical rounds
    result = run(project, "test_mine.py", batches="1")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_default*",
            "*latency of tiny at batch 1: median 3 ms per batch, baseline 2 ms "
            "(median of 5 round(s)), limit 2.2 ms (+10 %): 1.50x the baseline*",
        ]
    )
    assert "FAILED test_mine.py::test_default[tiny]" in result.stdout.str()
    run(project, "--dnn-latency-tolerance=0.6", batches="1").assert_outcomes(passed=1)


# -- constraints ---------------------------------------------------------------------------------


def test_constraints_from_options_fail_with_figure_and_limit(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    result = run(project, "--dnn-max-memory=1MB", "--dnn-min-fps=1e12", "--dnn-baseline=none", batches="2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*dnnbench: tiny at batch 2 failed 2 check(s)",
            "*deployment constraint violated (too slow or too big for the device):",
            "*- memory of tiny at batch 2: total * (* MiB) = * bytes > limit 1 MB "
            "(0.9537 MiB) = 1,000,000 bytes (--dnn-max-memory=1MB)",
            "*- FPS of tiny at batch 2: * images/s (median * ms per batch of 2) < minimum "
            "1e+12 FPS (--dnn-min-fps=1e12)",
        ]
    )
    assert "baseline regression" not in result.stdout.str()
    # pytest's one-line short summary says why in a few words
    result.stdout.fnmatch_lines(["FAILED *test_dnn?tiny-bs2? - memory 0.* GB > 0.001 GB; * FPS < 1e+12 FPS"])
    result = run(project, "--dnn-max-memory=1TiB", "--dnn-min-fps=0.001", batches="1")
    result.assert_outcomes(passed=1)
    assert "deployment constraints: 2 check(s) passed" in summary(result)


def test_constraints_marker_on_users_own_tests(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_mine="""
        import pytest
        import torch.nn as nn

        @pytest.mark.dnn_constraints(max_memory=1000, min_fps=0.001)
        def test_too_big(dnn_bench):
            dnn_bench(nn.Conv2d(3, 4, 3), input_size=(3, 16, 16), name="conv")

        @pytest.mark.dnn_constraints(max_memory="1TiB", min_fps="0.001")
        def test_fits(dnn_bench):
            dnn_bench(nn.Conv2d(3, 4, 3), input_size=(3, 16, 16), name="conv")
        """
    )
    result = project.runpytest(*RUN, "test_mine.py", "--dnn-min-fps=1e12")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- memory of conv at batch 1: total * bytes > limit * = 1,000 bytes "
            "(marker dnn_constraints(max_memory=1000))"
        ]
    )
    assert "FAILED test_mine.py::test_too_big" in result.stdout.str()


def test_constraint_and_baseline_failures_are_reported_separately(project: pytest.Pytester) -> None:
    fake(project, ms=1.0)
    run(project, "--dnn-save-baseline", batches="1").assert_outcomes(passed=1)
    fake(project, ms=10.0)
    result = run(project, "--dnn-min-fps=1000", batches="1")  # 10 ms per image = 100 FPS
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert re.search(
        r"failed 2 check\(s\)\ndeployment constraint violated \(too slow or too big for the device\):\n"
        r"  - FPS of tiny at batch 1: 100 images/s .*\n"
        r"baseline regression \(against baselines/\S+\):\n  - latency of tiny at batch 1",
        out,
    ), out
    text = summary(result)
    assert "baseline regressions: 1" in text and "deployment constraint violations: 1" in text


# -- bad files and bad values ------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b'{"schema": "pytest-dnnbench-baseline/1", "platform": {"ke', b"{oops}"])
def test_corrupt_explicit_baseline_is_a_usage_error_and_untouched(project: pytest.Pytester, content: bytes) -> None:
    path = project.path / "base.json"
    path.write_bytes(content)
    result = run(project, f"--dnn-baseline={path}", "--dnn-save-baseline=base.json", batches="1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    what = "truncated" if content.startswith(b'{"schema') else "not valid JSON"
    result.stderr.fnmatch_lines([f"*--dnn-baseline: baseline file {path} is {what}*it was left untouched*"])
    assert path.read_bytes() == content


def test_corrupt_platform_file_is_a_usage_error_and_is_not_overwritten(project: pytest.Pytester) -> None:
    """A corrupt automatic baseline stops the run before any model is built (it used to fail every test)."""
    fake(project, ms=2.0)
    run(project, "--dnn-save-baseline", batches="1").assert_outcomes(passed=1)
    path = only_file(project)
    truncated = path.read_bytes()[:200]
    path.write_bytes(truncated)
    result = run(project, "--dnn-save-baseline", batches="1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"*automatic baseline of this platform is unusable: baseline file {path} is truncated*"
            "(it was left untouched)*"
        ]
    )
    assert "test_dnn" not in result.stdout.str()
    assert path.read_bytes() == truncated


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--dnn-max-memory=lots"], "*--dnn-max-memory=lots: 'lots' is not a size*0.7GB*"),
        (["--dnn-max-memory=1.2XB"], "*--dnn-max-memory=1.2XB: unknown unit 'xb'*"),
        (["--dnn-min-fps=0"], "*--dnn-min-fps=0: frame rate '0' is not positive*15, 30 or 60*"),
        (["--dnn-latency-tolerance=-5%"], "*--dnn-latency-tolerance=-5%: must be zero or more*"),
        (["--dnn-latency-alpha=2"], "*--dnn-latency-alpha=2: must lie between 0 and 0.5*"),
        (["--dnn-baseline-rounds=0"], "*--dnn-baseline-rounds=0: must be at least 1*"),
        (
            ["--dnn-baseline=nowhere.json"],
            "*--dnn-baseline=*nowhere.json: the file does not exist*--dnn-save-baseline=*",
        ),
        (["--dnn-baseline=none", "--dnn-require-baseline"], "*no baseline could ever apply*"),
    ],
)
def test_bad_values_stop_before_any_model_is_built(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list, expected: str
) -> None:
    marker = project.path / "built.txt"
    monkeypatch.setenv("DNN_BUILD_MARKER", str(marker))
    result = project.runpytest("--dnn-models=tiny", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert not marker.exists()


def test_bad_marker_values_stop_before_any_model_is_built(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = project.path / "built.txt"
    monkeypatch.setenv("DNN_BUILD_MARKER", str(marker))
    project.makepyfile(
        test_mine="""
        import pytest

        @pytest.mark.dnn_constraints(max_memory="big")
        def test_a(dnn_bench, dnn_model):
            dnn_bench(dnn_model)
        """
    )
    result = project.runpytest(*RUN, "--dnn-models=tiny", "test_mine.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_mine.py::test_a*dnn_constraints(max_memory=big): 'big' is not a size*"])
    assert not marker.exists()


def test_markers_are_registered(project: pytest.Pytester) -> None:
    result = project.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.dnn_tolerance(latency=None, memory=None, top1=None, max_slowdown=None)*",
            "@pytest.mark.dnn_constraints(max_memory=None, min_fps=None, max_model_memory=None)*",
        ]
    )


def test_under_xdist_the_controller_saves_every_record(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    fake(project, ms=2.0)
    result = project.runpytest_subprocess(
        *RUN,
        "-n",
        "2",
        "--dnn-allow-parallel-cpu",
        "--dnn-models=tiny,tiny_wide",
        "--dnn-batch-sizes=1,2",
        "--dnn-save-baseline",
    )
    result.assert_outcomes(passed=4)
    assert sorted(load_baseline(only_file(project)).entries) == [
        ("tiny", 1),
        ("tiny", 2),
        ("tiny_wide", 1),
        ("tiny_wide", 2),
    ]


def test_ini_settings(project: pytest.Pytester) -> None:
    """Every option has an ini twin; a baseline named in the ini file is read relative to it."""
    fake(project, ms=2.0, total=500 * 2**20)
    run(project, "--dnn-save-baseline=ci/base.json", batches="1").assert_outcomes(passed=1)
    repeat_rounds(project.path / "ci" / "base.json", 5)  # a single round is too noisy to require
    project.makeini(
        "[pytest]\ndnn_baseline = ci/base.json\ndnn_require_baseline = true\n"
        "dnn_memory_tolerance = 50%\ndnn_max_memory = 1.0GB\n"
    )
    fake(project, ms=2.0, total=700 * 2**20)  # +40 % memory: within the ini's 50 %; 734 MB < 1.0 GB
    result = run(project, batches="1")
    result.assert_outcomes(passed=1)
    assert "baseline: ci/base.json: 1 of 1 result(s) compared" in summary(result)
    fake(project, ms=2.0, total=2 * 10**9)
    result = run(project, batches="1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- memory of tiny at batch 1: total 2 GB (1.86 GiB) = 2,000,000,000 bytes > limit "
            "1 GB (0.931 GiB) = 1,000,000,000 bytes (ini dnn_max_memory = 1.0GB)"
        ]
    )
    (project.path / "ci" / "base.json").unlink()
    result = run(project, batches="1")  # a missing file named in the ini: no baseline applies (required: fails)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no baseline applies to tiny at batch 1: no baseline file ci/base.json*"])
