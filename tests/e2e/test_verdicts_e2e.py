"""Verdicts a user can trust, end to end through pytester: CPU memory of the deployed model, the
sample floor and ``insufficient``, ratios shown, the hard ceiling, busy machines and ``--dnn-strict``.

The machine's load is injected (a conftest fixture scripts what ``measure.load.load_between``
says), so that no verdict here depends on what else runs on the machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import FAST, TINY_CONFTEST, TINY_MODULE, load_json

pytest.importorskip("torch")

#: Timings may be scaled in this process (timing.json); fresh processes (--dnn-confirm, tests/e2e/test_confirm.py) would
#: time the real model, so the verdicts below are the first process's.
RUN = [
    *FAST,
    "--dnn-threads=1",
    "--benchmark-disable",
    "-p",
    "no:cacheprovider",
    "--dnn-calm-wait=0",
    "--dnn-confirm=0",
]

#: Scripts the load: load.json holds a list of booleans, one per measurement (busy or quiet), the last
#: repeated; measurements.json counts the measurements. Timings may be scaled by timing.json's factor.
LOAD_HOOK = """
import dataclasses
import importlib
import json
import pathlib

import pytest


@pytest.fixture(autouse=True)
def _scripted_load(monkeypatch):
    here = pathlib.Path(__file__).parent
    script = here / "load.json"
    if not script.exists():
        return
    busy = json.loads(script.read_text())
    load = importlib.import_module("pytest_dnnbench.measure.load")
    real = load.load_between
    count = here / "measurements.json"

    def load_between(a, b, cpus, *args, **kwargs):
        n = json.loads(count.read_text()) if count.exists() else 0
        count.write_text(json.dumps(n + 1))
        measured = real(a, b, cpus, *args, **kwargs)
        flag = busy[min(n, len(busy) - 1)]
        reasons = ("CPU pressure 50 % of the time (> 10 %)",) if flag else ()
        return dataclasses.replace(measured, busy=flag, reasons=reasons)

    monkeypatch.setattr(load, "load_between", load_between)
    slow = here / "timing.json"
    if slow.exists():
        factor = json.loads(slow.read_text())
        bench = importlib.import_module("pytest_dnnbench.measure.bench")
        stats = importlib.import_module("pytest_dnnbench.measure.stats")
        real_measure = bench.measure

        def measure(*args, **kwargs):
            m = real_measure(*args, **kwargs)
            samples = tuple(s * factor for s in m.timing.samples_ms)
            timing = dataclasses.replace(m.timing, samples_ms=samples, stats=stats.summarize(samples))
            return dataclasses.replace(m, timing=timing)

        monkeypatch.setattr(bench, "measure", measure)
"""

SLOW_MODULE = """
import time

import torch.nn as nn


class Slow(nn.Module):
    def __init__(self, call_s=0.0, build_s=0.0):
        super().__init__()
        time.sleep(build_s)
        self.call_s = call_s
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        time.sleep(self.call_s)
        return self.conv(x)


def slow_build():
    return Slow(build_s=1.0)


def slow_call():
    return Slow(call_s=0.12)
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(tinymodels=TINY_MODULE, slowmodels=SLOW_MODULE)
    registrations = TINY_CONFTEST + (
        '    registry.register("slow_build", "slowmodels:slow_build", input_size=(3, 16, 16))\n'
        '    registry.register("slow_call", "slowmodels:slow_call", input_size=(3, 16, 16))\n'
    )
    pytester.makeconftest(registrations + LOAD_HOOK)
    pytester.syspathinsert()
    return pytester


def run(p: pytest.Pytester, *args: str, models: str = "tiny", batches: str = "1") -> pytest.RunResult:
    return p.runpytest(*RUN, f"--dnn-models={models}", f"--dnn-batch-sizes={batches}", *args)


def records(p: pytest.Pytester, name: str = "out.json") -> list[dict]:
    return load_json(p.path / name)["records"]


def script_load(p: pytest.Pytester, *busy: bool) -> None:
    (p.path / "load.json").write_text(json.dumps(list(busy)))
    (p.path / "measurements.json").unlink(missing_ok=True)


def measurements(p: pytest.Pytester) -> int:
    return int(json.loads((p.path / "measurements.json").read_text()))


def quiet_baseline(p: pytest.Pytester, rounds: int = 5) -> Path:
    """A baseline of ``rounds`` quiet rounds: one saved run, its round repeated (as identical saves would)."""
    script_load(p, False)
    run(p, "--dnn-save-baseline=base.json").assert_outcomes(passed=1)
    path = p.path / "base.json"
    doc = json.loads(path.read_text())
    for entry in doc["entries"]:
        entry["rounds"] = entry["rounds"] * rounds
    path.write_text(json.dumps(doc))
    return path


# -- CPU memory of the deployed model ---------------------------------------------------------------


def test_cpu_total_is_the_deployed_model_and_the_process_figure_is_kept(project: pytest.Pytester) -> None:
    result = run(project, "--dnn-json=out.json", "--dnn-max-memory=1.0GB", "--dnn-baseline=none")
    result.assert_outcomes(passed=1)
    (rec,) = records(project)
    mem = rec["memory_bytes"]
    assert mem["total"] == mem["runtime_floor"] + mem["model"] + mem["delta"]
    assert mem["process_total"] > mem["total"]  # pytest and its plugins are not the model's memory
    assert mem["model"] == 4 * (8 * 3 * 3 * 3 + 8 + 8 * 10 + 10)  # tiny's fp32 parameters
    assert rec["memory_method"].startswith("runtime floor (RSS of a fresh interpreter with torch and tinymodels")
    environment = load_json(project.path / "out.json")["environment"]
    assert environment["runtime_floor"]["tinymodels"]["bytes"] == mem["runtime_floor"]
    # The machine's load: over the timed calls in the record, over the whole run in the environment.
    for load in (rec["load"], environment["load"]):
        assert {"seconds", "cpu_pressure", "steal", "involuntary_per_s", "busy", "reasons"} <= set(load)
        assert load["seconds"] > 0
    assert "deployment constraints: 1 check(s) passed" in result.stdout.str()
    assert "memory: memory of the deployed model: runtime floor" in result.stdout.str()


# -- enough samples ------------------------------------------------------------------------------


def test_a_slow_build_does_not_cut_the_minimum(project: pytest.Pytester) -> None:
    # The build (1 s) is charged to the 0.5 s budget; the minimum of 5 samples is still taken.
    script_load(project, False)
    args = ("--dnn-json=out.json", "--dnn-max-time=0.5", "--dnn-min-samples=5", "--dnn-baseline=none")
    run(project, *args, models="slow_build").assert_outcomes(passed=1)
    (rec,) = records(project)
    assert rec["build_s"] >= 1.0
    assert rec["latency_ms"]["n"] >= 5 and rec["latency_ms"]["insufficient"] is False


def test_an_insufficient_record_is_shown_and_never_saved_as_a_round(project: pytest.Pytester) -> None:
    # 0.12 s a call, 0.1 s budget: the ceiling (0.3 s) stops sampling after about two calls.
    script_load(project, False)
    args = ("--dnn-json=out.json", "--dnn-max-time=0.1", "--dnn-min-samples=10", "--dnn-save-baseline=base.json")
    result = run(project, *args, models="slow_call")
    result.assert_outcomes(passed=1)
    (rec,) = records(project)
    assert rec["latency_ms"]["insufficient"] is True and rec["latency_ms"]["n"] < 10
    assert rec["latency_ms"]["stop_reason"] == "ceiling"
    out = result.stdout.str()
    assert "insufficient" in out.split("dnnbench: cpu")[1].splitlines()[3]  # the table row's notes
    assert "insufficient: fewer samples than --dnn-min-samples" in out
    assert "not saved as baseline rounds: 1 result(s) with fewer samples than the minimum: slow_call" in out
    assert not (project.path / "base.json").exists()


# -- the gate shows its work ---------------------------------------------------------------------


def test_every_compared_test_shows_its_ratio_and_resolution(project: pytest.Pytester) -> None:
    quiet_baseline(project)
    result = run(project, "--dnn-json=out.json", "--dnn-baseline=base.json")
    # Whatever the verdict (a 0.1 ms model moves by more than 10 % between processes), the table shows it.
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 1
    (rec,) = records(project)
    check = next(c for c in rec["checks"] if c["metric"] == "latency")
    assert check["verdict"] in ("pass", "stale", "fail", "inconclusive") and isinstance(check["resolution"], float)
    out = result.stdout.str()
    assert "vs baseline" in out
    assert f"{check['ratio']:.2f}x res {100 * check['resolution']:.0f}%" in out
    assert rec["tolerances"]["max_slowdown"] == 2.0


def test_a_quiet_ten_times_slower_test_fails_on_the_hard_ceiling(project: pytest.Pytester) -> None:
    quiet_baseline(project)
    # 10x in this process: over the 2x ceiling whatever the drift between processes (a loaded 2-core
    # machine moved a 0.1 ms model 1.4x between the baseline's processes and this one).
    (project.path / "timing.json").write_text("10.0")
    result = run(project, "--dnn-baseline=base.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*over the hard ceiling of 2x (--dnn-max-slowdown)*"])
    # A wider ceiling (option, ini or marker) lets the tolerance test decide.
    result = run(project, "--dnn-baseline=base.json", "--dnn-max-slowdown=100x", "--dnn-latency-tolerance=5000%")
    result.assert_outcomes(passed=1)


def test_max_slowdown_from_ini_and_marker(project: pytest.Pytester) -> None:
    quiet_baseline(project)
    # 10x in this process: far over 1.5x, and under the marker's 50x, whatever the drift between processes
    (project.path / "timing.json").write_text("10.0")
    project.makeini("[pytest]\ndnn_max_slowdown = 1.5\ndnn_latency_tolerance = 5000%\n")
    result = run(project, "--dnn-baseline=base.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*over the hard ceiling of 1.5x*"])
    project.makepyfile(
        test_mine="""
import pytest

@pytest.mark.dnn_tolerance(max_slowdown="50x")
def test_marked(dnn_bench, dnn_model):
    dnn_bench(dnn_model)
"""
    )
    result = project.runpytest(
        *RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1", "--dnn-baseline=base.json", "test_mine.py"
    )
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("value", "why"),
    [("1", "must be above 1"), ("fast", "not a ratio"), ("0.5x", "must be above 1")],
)
def test_a_bad_max_slowdown_is_a_usage_error(project: pytest.Pytester, value: str, why: str) -> None:
    result = run(project, f"--dnn-max-slowdown={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--dnn-max-slowdown={value}: {why}*"])


# -- a busy machine --------------------------------------------------------------------------------


def test_busy_then_calm_is_measured_again_and_judged(project: pytest.Pytester) -> None:
    quiet_baseline(project)
    script_load(project, True, False)
    # Judged, not inconclusive; with tolerances that the between-process noise of a 0.07 ms model cannot
    # cross (its baseline's rounds are identical: no spread to absorb it).
    loose = ("--dnn-latency-tolerance=100%", "--dnn-max-slowdown=10x")
    result = run(project, "--dnn-json=out.json", "--dnn-baseline=base.json", *loose)
    result.assert_outcomes(passed=1)
    assert measurements(project) == 2
    (rec,) = records(project)
    assert rec["load"]["busy"] is False
    assert rec["load"]["retry"]["first_reasons"] == ["CPU pressure 50 % of the time (> 10 %)"]
    check = next(c for c in rec["checks"] if c["metric"] == "latency")
    assert check["verdict"] in ("pass", "stale")


def test_still_busy_is_inconclusive_and_strict_fails_it(project: pytest.Pytester) -> None:
    quiet_baseline(project)
    (project.path / "timing.json").write_text("3.0")  # even over the hard ceiling
    script_load(project, True)
    result = run(project, "--dnn-json=out.json", "--dnn-baseline=base.json")
    result.assert_outcomes(passed=1)
    assert measurements(project) == 2  # measured once more before giving up
    (rec,) = records(project)
    check = next(c for c in rec["checks"] if c["metric"] == "latency")
    assert check["verdict"] == "inconclusive" and check["passed"] is True
    out = result.stdout.str()
    assert "busy, inconclusive" in out
    assert "inconclusive latency comparisons: 1 (passed unless --dnn-strict)" in out
    script_load(project, True)
    result = run(project, "--dnn-baseline=base.json", "--dnn-strict")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*inconclusive comparison (--dnn-strict):*", "*measured on a busy machine*"])


def test_busy_without_a_baseline_is_only_flagged(project: pytest.Pytester) -> None:
    script_load(project, True)
    result = run(project, "--dnn-json=out.json", "--dnn-baseline=none")
    result.assert_outcomes(passed=1)
    assert measurements(project) == 1  # nothing to judge: not measured again
    (rec,) = records(project)
    assert rec["load"]["busy"] is True and "retry" not in rec["load"]
    assert "busy" in result.stdout.str()


def test_a_calm_wait_over_thirty_seconds_is_refused(project: pytest.Pytester) -> None:
    result = run(project, "--dnn-calm-wait=1m")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dnn-calm-wait=1m: longer than the 30 s a test may wait*"])
